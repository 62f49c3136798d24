"""Fixtures for tests against the real app on Postgres and Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.embedded import create_key
from api.main import create_app
from models.settings import Settings


def settings_from(env: dict[str, str], **overrides: object) -> Settings:
    """Settings equal to what the worker processes read from ``env``."""
    values: dict[str, object] = {k.removeprefix("TUNEFORGE_").lower(): v for k, v in env.items()}
    values["data_dir"] = Path(env["TUNEFORGE_DATA_DIR"])
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(server_env: dict[str, str]) -> Settings:
    """The session's settings (Postgres, Redis, the test queue)."""
    return settings_from(server_env)


@pytest.fixture(scope="session")
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The real app, in process, with its lifespan (engine, producer) running."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def tenant_client(app_client: TestClient, settings: Settings) -> TestClient:
    """A client authenticated as a brand-new tenant: every test sees only its own objects."""
    key = create_key(settings, f"tenant-{secrets.token_hex(6)}")
    client = TestClient(app_client.app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


@pytest.fixture
def client(app_client: TestClient, settings: Settings) -> TestClient:
    """An authenticated client for a fresh tenant."""
    return tenant_client(app_client, settings)


@pytest.fixture
def other_client(app_client: TestClient, settings: Settings) -> TestClient:
    """A second, unrelated tenant."""
    return tenant_client(app_client, settings)
