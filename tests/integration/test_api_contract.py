"""The HTTP contract: auth, tenants, pagination, idempotency, ETags, cancel, delete, operations."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from models.settings import Settings
from tests.integration.conftest import settings_from
from tests.support import submit, upload, wait_job

pytestmark = pytest.mark.integration


def test_every_route_needs_a_valid_key(app_client: TestClient) -> None:
    """No key or a wrong key is a 401 problem; operations routes stay open."""
    missing = app_client.get("/v1/jobs")
    assert missing.status_code == 401 and missing.json()["code"] == "missing_api_key"
    wrong = app_client.get("/v1/datasets", headers={"Authorization": "Bearer tfg_wrong"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/readyz").json() == {"status": "ready"}
    assert "tuneforge_http_requests" in app_client.get("/metrics").text


def test_another_tenants_objects_are_not_found(
    client: TestClient, other_client: TestClient, csvs: dict[str, Path]
) -> None:
    """A dataset of one tenant is a 404 for another, and absent from its listing."""
    dataset = upload(client, csvs["iris"])
    response = other_client.get(f"/v1/datasets/{dataset['id']}")
    assert response.status_code == 404 and response.json()["code"] == "dataset_not_found"
    assert other_client.get("/v1/datasets").json()["items"] == []


def test_every_id_taking_route_and_list_hides_another_tenants_objects(
    client: TestClient,
    other_client: TestClient,
    worker: subprocess.Popen[bytes],
    csvs: dict[str, Path],
) -> None:
    """Job, its events, trials, metrics, stream, its model and the lists: 404 or empty for another tenant."""
    dataset = upload(client, csvs["iris"])
    job = wait_job(client, submit(client, dataset["id"], "target", {"training": {"epochs": 3}})["id"])
    assert job["status"] == "succeeded", job
    model = job["best"]["model_id"]
    reads = [
        f"/v1/datasets/{dataset['id']}",
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/events",
        f"/v1/jobs/{job['id']}/trials",
        f"/v1/jobs/{job['id']}/metrics",
        f"/v1/jobs/{job['id']}/stream",  # the job has ended: the whole stream, then it closes
        f"/v1/models/{model}",
        f"/v1/models/{model}/download",
    ]
    for path in reads:
        assert other_client.get(path).status_code == 404, path
        assert client.get(path).status_code == 200, path
    assert other_client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert other_client.post(f"/v1/models/{model}/predict", json={"rows": [{}]}).status_code == 404
    assert other_client.delete(f"/v1/datasets/{dataset['id']}").status_code == 404
    for listing in ("/v1/datasets", "/v1/jobs"):
        assert other_client.get(listing).json()["items"] == [], listing


@pytest.fixture
def parked(client: TestClient, settings: Settings, redis_url: str) -> Iterator[TestClient]:
    """The app publishing to a queue no worker consumes, so jobs stay queued."""
    queue = f"{settings.queue}-parked"
    with TestClient(create_app(settings.model_copy(update={"queue": queue}))) as app:
        app.headers.update(client.headers)
        yield app
    redis.Redis.from_url(redis_url).delete(queue)


def test_cursor_pagination_walks_every_job_newest_first(
    parked: TestClient, csvs: dict[str, Path], settings: Settings
) -> None:
    """Five queued jobs, pages of two: every job exactly once, newest first, status filter."""
    dataset = upload(parked, csvs["iris"])
    ids = [submit(parked, dataset["id"], "target")["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = parked.get("/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert parked.get("/v1/jobs", params={"status": "succeeded"}).json()["items"] == []
    bad = parked.get("/v1/jobs", params={"cursor": "!!"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
    # A queued job is cancelled at once, with its event.
    cancelled = parked.post(f"/v1/jobs/{ids[0]}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    events = parked.get(f"/v1/jobs/{ids[0]}/events").json()
    assert [e["to"] for e in events] == ["queued", "cancelled"]
    # Deleting a dataset that queued jobs use is refused.
    busy = parked.delete(f"/v1/datasets/{dataset['id']}")
    assert busy.status_code == 409 and busy.json()["code"] == "dataset_in_use"
    for job_id in ids[1:]:
        parked.post(f"/v1/jobs/{job_id}/cancel")
    assert parked.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert parked.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert not (settings.data_dir / "datasets" / f"{dataset['id']}.csv").exists()


def test_idempotency_key_makes_one_job(parked: TestClient, csvs: dict[str, Path]) -> None:
    """The same Idempotency-Key returns the first job; reused for another body is a 409."""
    app = parked
    dataset = upload(app, csvs["iris"])
    body = {"kind": "train", "dataset_id": dataset["id"], "target": "target"}
    first = app.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc"})
    second = app.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc"})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert len(app.get("/v1/jobs").json()["items"]) == 1
    other = app.post("/v1/jobs", json=body | {"name": "x"}, headers={"Idempotency-Key": "abc"})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    # ETag and Retry-After while queued; 304 when nothing changed.
    got = app.get(f"/v1/jobs/{first.json()['id']}")
    assert got.headers["retry-after"] == "1"
    again = app.get(f"/v1/jobs/{first.json()['id']}", headers={"If-None-Match": got.headers["etag"]})
    assert again.status_code == 304
    app.post(f"/v1/jobs/{first.json()['id']}/cancel")


def test_cancel_running_job_stops_it_within_seconds(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """A long training is cancelled mid-run: cancelling, then cancelled, trial stopped."""
    dataset = upload(client, csvs["breast_cancer"])
    job = submit(
        client,
        dataset["id"],
        "target",
        {"training": {"epochs": 5000, "early_stopping": None, "batch_size": 8}},
    )
    running = wait_job(client, job["id"], until={"running"}, timeout=120)
    assert running["status"] == "running"
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] in {"cancelling", "cancelled"}
    done = wait_job(client, job["id"], timeout=10)
    assert done["status"] == "cancelled"
    history = client.get(f"/v1/jobs/{job['id']}/events").json()
    events = [e["to"] for e in history if e["from"] != e["to"]]
    assert events == ["queued", "running", "cancelling", "cancelled"]
    # Notes (from == to) say which engine trained the job and why.
    assert any("fast engine" in (e["reason"] or "") for e in history if e["from"] == e["to"])
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert trials[0]["status"] == "stopped"
    finished = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert finished.status_code == 202 and finished.json()["status"] == "cancelled"


def test_readyz_reports_an_unreachable_broker(settings: Settings, server_env: dict[str, str]) -> None:
    """With the broker down, /readyz is a 503 naming the broker."""
    broken = settings_from(server_env, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(broken)) as app:
        response = app.get("/readyz")
    assert response.status_code == 503 and "broker" in response.json()["detail"]
