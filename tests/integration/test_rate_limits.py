"""Per-key and failed-authentication rate limits: 429 problem+json with Retry-After, per key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.embedded import create_key
from api.main import create_app
from models.settings import Settings


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    """An app with tight limits, counting in its own Redis namespace."""
    tight = settings.model_copy(
        update={
            "queue": f"{settings.queue}-limits-{secrets.token_hex(3)}",
            "rate_limit_reads": "5/minute",
            "rate_limit_writes": "2/minute",
            "rate_limit_failed_auth": "3/minute",
        }
    )
    with TestClient(create_app(tight), raise_server_exceptions=False) as client:
        yield client


def _as(client: TestClient, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_past_its_read_limit_gets_429_and_another_key_does_not(
    limited: TestClient, settings: Settings
) -> None:
    noisy, quiet = (create_key(settings, f"tenant-{secrets.token_hex(4)}") for _ in range(2))
    codes = [limited.get("/v1/jobs", headers=_as(limited, noisy)).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = limited.get("/v1/jobs", headers=_as(limited, noisy))
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
    assert limited.get("/v1/jobs", headers=_as(limited, quiet)).status_code == 200


def test_writes_have_their_own_tighter_limit(limited: TestClient, settings: Settings) -> None:
    key = create_key(settings, f"tenant-{secrets.token_hex(4)}")
    codes = [
        limited.delete("/v1/datasets/ds_missing", headers=_as(limited, key)).status_code for _ in range(3)
    ]
    assert codes == [404, 404, 429]
    assert limited.get("/v1/jobs", headers=_as(limited, key)).status_code == 200, "reads are counted apart"


def test_wrong_keys_from_one_address_are_cut_off(limited: TestClient) -> None:
    codes = [limited.get("/v1/jobs", headers=_as(limited, f"tfg_wrong{i}")).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert limited.get("/v1/jobs").json()["code"] == "too_many_failed_auth"
    assert limited.get("/healthz").status_code == 200
