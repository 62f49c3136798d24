"""A worker's Prometheus metrics: its children's counts summed by the main process, read over HTTP."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.embedded import create_key
from api.main import create_app
from models.settings import Settings
from tests.conftest import start_worker, stop_process
from tests.faults.services import free_port
from tests.support import submit, upload, wait_job


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def own_queue(server_env: dict[str, str], settings: Settings, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A worker with metrics and JSON logs on, alone on a queue of its own (its jobs and predictions)."""
    queue, port = f"{settings.queue}-metrics-{secrets.token_hex(3)}", free_port()
    extra = {
        "TUNEFORGE_QUEUE": queue,
        "TUNEFORGE_WORKER_METRICS_PORT": str(port),
        "TUNEFORGE_LOG_JSON": "true",
    }
    process = start_worker(
        server_env, "metrics-worker", tmp_path / "worker.log", extra, queue=f"{queue},{queue}.predict"
    )
    yield queue, port
    stop_process(process)


def test_a_workers_metrics_count_its_jobs_trials_epochs_and_predictions(
    own_queue: tuple[str, int], settings: Settings, csvs: dict[str, Path], tmp_path: Path
) -> None:
    queue, port = own_queue
    with TestClient(create_app(settings.model_copy(update={"queue": queue}))) as client:
        client.headers["Authorization"] = f"Bearer {create_key(settings, f'tenant-{secrets.token_hex(4)}')}"
        before = _samples(port)
        assert before[("tuneforge_queue_depth", (("queue", queue),))] == 0
        spec = {"training": {"epochs": 6, "early_stopping": None}}
        job = wait_job(client, submit(client, upload(client, csvs["iris"])["id"], "target", spec)["id"])
        assert job["status"] == "succeeded", job
        row = {
            "sepal length (cm)": 5.1,
            "sepal width (cm)": 3.5,
            "petal length (cm)": 1.4,
            "petal width (cm)": 0.2,
        }
        predicted = client.post(f"/v1/models/{job['best']['model_id']}/predict", json={"rows": [row]})
        assert predicted.status_code == 200, predicted.text
    found = _samples(port)
    assert found[("tuneforge_worker_jobs_total", (("kind", "train"), ("outcome", "succeeded")))] == 1
    assert found[("tuneforge_worker_trials_total", (("outcome", "completed"),))] == 1
    assert found[("tuneforge_worker_epoch_seconds_count", ())] == 6
    assert found[("tuneforge_worker_trial_seconds_count", ())] == 1
    assert found[("tuneforge_worker_predict_seconds_count", ())] == 1
    assert ("tuneforge_worker_heartbeats_total", ()) in found
    assert found[("tuneforge_queue_depth", (("queue", queue),))] == 0

    # JSON logs: every line about the job, Celery's own included, is JSON naming it and its attempt.
    about = [line for line in (tmp_path / "worker.log").read_text().splitlines() if job["id"] in line]
    assert about
    for line in about:
        record = json.loads(line)
        assert record["job_id"] == job["id"] and record["attempt"] == 1, record
    events = {json.loads(line)["event"] for line in about}
    assert {"job_claimed"} <= events, events
