"""Per-tenant quotas: active jobs, stored bytes, webhook endpoints; 429 with Retry-After past them."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.embedded import create_key
from api.main import create_app
from models.settings import Settings

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 7},{i % 2}\n".encode() for i in range(60))


@pytest.fixture
def quota_app(settings: Settings) -> Iterator[TestClient]:
    """Two active jobs, 1.5 uploads' worth of bytes and two webhook endpoints per tenant; a queue no
    worker reads (jobs wait)."""
    small = settings.model_copy(
        update={
            "queue": f"{settings.queue}-quotas-{secrets.token_hex(3)}",
            "max_active_jobs_per_tenant": 2,
            "max_stored_bytes_per_tenant": len(CSV) * 3 // 2,
            "max_webhooks_per_tenant": 2,
        }
    )
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        yield client


def _tenant(client: TestClient, settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(settings, f'tenant-{secrets.token_hex(4)}')}"}


def _upload(client: TestClient, headers: dict[str, str]) -> Any:
    return client.post("/v1/datasets", files={"file": ("d.csv", CSV, "text/csv")}, headers=headers)


def _submit(client: TestClient, headers: dict[str, str], dataset_id: str) -> Any:
    body = {"kind": "train", "dataset_id": dataset_id, "target": "label"}
    return client.post("/v1/jobs", json=body, headers=headers)


def _refused(answer: Any, code: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code and int(answer.headers["retry-after"]) >= 1


def test_active_jobs_past_the_quota_are_429_until_one_ends(quota_app: TestClient, settings: Settings) -> None:
    me, other = _tenant(quota_app, settings), _tenant(quota_app, settings)
    dataset = _upload(quota_app, me).json()
    first, second = (_submit(quota_app, me, dataset["id"]).json() for _ in range(2))
    assert first["status"] == second["status"] == "queued"
    _refused(_submit(quota_app, me, dataset["id"]), "quota_active_jobs")
    # Another tenant is not affected.
    assert _submit(quota_app, other, _upload(quota_app, other).json()["id"]).status_code == 202
    # An ended job frees its slot; the idempotent replay of an accepted job is never refused.
    assert quota_app.post(f"/v1/jobs/{first['id']}/cancel", headers=me).json()["status"] == "cancelled"
    keyed = me | {"Idempotency-Key": "k1"}
    assert _submit(quota_app, keyed, dataset["id"]).status_code == 202
    assert _submit(quota_app, keyed, dataset["id"]).status_code == 202
    _refused(_submit(quota_app, me, dataset["id"]), "quota_active_jobs")


def test_concurrent_submits_cannot_both_take_the_last_slot(quota_app: TestClient, settings: Settings) -> None:
    me = _tenant(quota_app, settings)
    dataset = _upload(quota_app, me).json()
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda: codes.append(_submit(quota_app, me, dataset["id"]).status_code))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [202, 202, 429, 429, 429, 429]
    listed = quota_app.get("/v1/jobs", headers=me).json()["items"]
    assert len(listed) == 2


def test_stored_bytes_past_the_quota_are_429_until_a_delete(
    quota_app: TestClient, settings: Settings
) -> None:
    me = _tenant(quota_app, settings)
    first = _upload(quota_app, me)
    assert first.status_code == 201
    _refused(_upload(quota_app, me), "quota_storage")
    assert len(quota_app.get("/v1/datasets", headers=me).json()["items"]) == 1  # nothing half-stored
    assert quota_app.delete(f"/v1/datasets/{first.json()['id']}", headers=me).status_code == 204
    assert _upload(quota_app, me).status_code == 201


def test_webhook_endpoints_past_the_quota_are_429_until_a_delete(
    quota_app: TestClient, settings: Settings
) -> None:
    me, other = _tenant(quota_app, settings), _tenant(quota_app, settings)
    body = {"url": "https://example.com/hooks", "events": ["job.succeeded"]}
    made = [quota_app.post("/v1/webhooks", json=body, headers=me) for _ in range(2)]
    assert [m.status_code for m in made] == [201, 201], [m.text for m in made]
    _refused(quota_app.post("/v1/webhooks", json=body, headers=me), "quota_webhooks")
    assert quota_app.post("/v1/webhooks", json=body, headers=other).status_code == 201  # per tenant
    gone = quota_app.delete(f"/v1/webhooks/{made[0].json()['id']}", headers=me)
    assert gone.status_code == 204, gone.text
    assert quota_app.post("/v1/webhooks", json=body, headers=me).status_code == 201
