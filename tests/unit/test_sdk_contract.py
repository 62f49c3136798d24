"""The SDK's models and the server's OpenAPI schema agree, field for field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from api.main import create_app
from models.settings import Settings
from tuneforge_client import types

PAIRS = [
    (types.Column, "ColumnOut"),
    (types.Dataset, "DatasetOut"),
    (types.Progress, "Progress"),
    (types.Job, "JobOut"),
    (types.Event, "EventOut"),
    (types.Trial, "TrialOut"),
    (types.EpochMetrics, "EpochOut"),
    (types.Model, "ModelOut"),
    (types.Webhook, "WebhookOut"),
    (types.WebhookCreated, "WebhookCreated"),
    (types.DeliveryAttempt, "AttemptOut"),
    (types.Delivery, "DeliveryOut"),
]


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The server's OpenAPI component schemas."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    return dict(app.openapi()["components"]["schemas"])


@pytest.mark.parametrize(("sdk_model", "server_name"), PAIRS, ids=[name for _, name in PAIRS])
def test_sdk_model_matches_the_server_schema(
    schemas: dict[str, Any], sdk_model: type[BaseModel], server_name: str
) -> None:
    """Same field names; every field the SDK requires is one the server always sends."""
    schema = schemas[server_name]
    sdk_fields = {field.alias or name: field for name, field in sdk_model.model_fields.items()}
    assert set(sdk_fields) == set(schema["properties"])
    sdk_required = {name for name, field in sdk_fields.items() if field.is_required()}
    assert sdk_required <= set(schema.get("required", []))


def test_every_list_endpoint_pages_with_items_and_next_cursor(schemas: dict[str, Any]) -> None:
    """The pages the SDK walks have exactly items and next_cursor."""
    for page in ("DatasetPage", "JobPage", "WebhookPage", "DeliveryPage"):
        assert set(schemas[page]["properties"]) == {"items", "next_cursor"}
