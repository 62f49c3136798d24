"""The API when its database or broker is away: quick 503s and 202s, never a hang, nothing lost."""

from __future__ import annotations

import time

from tests.faults.conftest import api, start
from tests.faults.services import Cluster, OwnPostgres, OwnRedis
from tests.support import generate_csvs, upload, wait_job


def test_redis_down_post_answers_within_2_s_and_the_job_runs_once_the_broker_is_back(
    cluster: Cluster, own_redis: OwnRedis, tmp_path
) -> None:
    client = start(cluster, workers=1)
    dataset = upload(client, generate_csvs(tmp_path)["breast_cancer"])
    own_redis.stop()

    started = time.monotonic()
    response = client.post(
        "/v1/jobs", json={"kind": "train", "dataset_id": dataset["id"], "target": "target", "spec": {}}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert elapsed < 2.0, f"POST took {elapsed:.1f} s with the broker down"
    healthz_started = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert time.monotonic() - healthz_started < 1.0
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "broker" in ready.json()["detail"]

    own_redis.start()  # empty: the message never reached it
    job = wait_job(client, response.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job


def test_database_down_answers_503_with_retry_after_and_recovers(
    cluster: Cluster, own_postgres: OwnPostgres, tmp_path
) -> None:
    cluster.start_api()
    client = api(cluster)
    dataset = upload(client, generate_csvs(tmp_path)["iris"])
    own_postgres.stop("fast")
    try:
        for path in ("/v1/jobs", f"/v1/datasets/{dataset['id']}"):
            response = client.get(path)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "database_unavailable"
            assert int(response.headers["retry-after"]) >= 1
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database" in ready.json()["detail"]
        assert client.get("/healthz").status_code == 200
    finally:
        own_postgres.start()
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200
