"""Requests that used to crash the API (500) now get a 4xx naming the problem (issue 10's reproductions)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.embedded import create_key
from api.main import create_app
from models.settings import Settings
from tests.support import upload


def _problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def _dataset(client: TestClient, csvs: dict[str, Path]) -> dict[str, Any]:
    return upload(client, csvs["iris"])  # type: ignore[arg-type]


def test_a_trial_number_beyond_any_integer_column_is_422(client: TestClient, csvs: dict[str, Path]) -> None:
    dataset = _dataset(client, csvs)
    job = client.post(
        "/v1/jobs", json={"kind": "train", "dataset_id": dataset["id"], "target": "target"}
    ).json()
    for trial in ("2147483648", "9223372036854775808"):
        _problem(client.get(f"/v1/jobs/{job['id']}/metrics", params={"trial": trial}))


def test_a_spec_nested_hundreds_deep_is_422(client: TestClient, csvs: dict[str, Path]) -> None:
    dataset = _dataset(client, csvs)
    spec: dict[str, Any] = {}
    for _ in range(300):
        spec = {"a": spec}
    body = {"kind": "train", "dataset_id": dataset["id"], "target": "target", "spec": spec}
    problem = _problem(
        client.post("/v1/jobs", content=json.dumps(body), headers={"content-type": "application/json"})
    )
    assert "nest" in problem["detail"]


def test_non_finite_numbers_in_a_spec_are_422(client: TestClient, csvs: dict[str, Path]) -> None:
    dataset = _dataset(client, csvs)
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = (
            f'{{"kind": "train", "dataset_id": "{dataset["id"]}", "target": "target",'
            f' "spec": {{"training": {{"learning_rate": {literal}}}}}}}'
        )
        problem = _problem(client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"}))
        assert "finite" in problem["detail"]


def test_a_cursor_holding_a_naive_datetime_is_422(client: TestClient) -> None:
    for path in ("/v1/jobs", "/v1/datasets"):
        problem = _problem(client.get(path, params={"cursor": "MjAyNi0wMS0wMVQwMDowMDowMHxqb2JfeA"}))
        assert problem["code"] == "invalid_cursor"


def test_nul_bytes_in_ids_and_names_are_4xx(client: TestClient, csvs: dict[str, Path]) -> None:
    dataset = _dataset(client, csvs)
    for path in (
        "/v1/jobs/job_%00x",
        "/v1/datasets/ds_%00x",
        "/v1/models/mdl_%00x",
        "/v1/jobs/job_%00x/events",
    ):
        assert 400 <= client.get(path).status_code < 500, path
    assert client.get("/v1/jobs", params={"cursor": "a\x00b"}).status_code == 422
    named = {"kind": "train", "dataset_id": dataset["id"], "target": "target", "name": "a\x00b"}
    _problem(client.post("/v1/jobs", json=named))
    with csvs["iris"].open("rb") as handle:
        response = client.post(
            "/v1/datasets", files={"file": ("iris.csv", handle, "text/csv")}, data={"name": "a\x00b"}
        )
    _problem(response)


def test_an_upload_file_name_over_255_characters_is_422(client: TestClient, csvs: dict[str, Path]) -> None:
    with csvs["iris"].open("rb") as handle:
        response = client.post("/v1/datasets", files={"file": ("x" * 300 + ".csv", handle, "text/csv")})
    assert "255" in _problem(response)["detail"]


def test_a_grid_over_a_thousand_layers_is_422_at_once(client: TestClient, csvs: dict[str, Path]) -> None:
    dataset = _dataset(client, csvs)
    for high in (1000, 10_000_000):
        spec = {"search": {"algorithm": "grid", "num_layers": {"int": [1, high]}}}
        body = {"kind": "search", "dataset_id": dataset["id"], "target": "target", "spec": spec}
        problem = _problem(client.post("/v1/jobs", json=body))
        assert "num_layers" in problem["detail"] and "64" in problem["detail"]


def _submit(client: TestClient, dataset: dict[str, Any], kind: str, spec: dict[str, Any]) -> Any:
    return client.post(
        "/v1/jobs", json={"kind": kind, "dataset_id": dataset["id"], "target": "target", "spec": spec}
    )


def test_specs_no_worker_could_run_are_422_at_submit(client: TestClient, csvs: dict[str, Path]) -> None:
    dataset = _dataset(client, csvs)
    huge = {"model": {"layers": [{"units": 4096}] * 64}}
    assert _problem(_submit(client, dataset, "train", huge))["code"] == "network_too_large"
    searched = {"search": {"num_layers": {"int": [1, 64]}, "layer": {"units": {"int": [8, 4096]}}}}
    assert _problem(_submit(client, dataset, "search", searched))["code"] == "network_too_large"
    many = {
        "search": {"max_trials": 500, "executions_per_trial": 10},
        "model": {"layers": [{"units": 4096}] * 64},
    }
    _problem(_submit(client, dataset, "search", many))
    markers = {"preprocessing": {"missing_values": {"sepal length (cm)": [str(i) for i in range(200_000)]}}}
    _problem(_submit(client, dataset, "train", markers))
    wide_choice = {"training": {"batch_size": {"choice": list(range(1, 200_001))}}}
    _problem(_submit(client, dataset, "search", wide_choice))
    for seed in (-1, 2**32, 2**70):
        _problem(_submit(client, dataset, "train", {"training": {"seed": seed}}))
        _problem(_submit(client, dataset, "train", {"split": {"seed": seed}}))


@pytest.fixture
def capped(settings: Settings) -> Iterator[TestClient]:
    """An app whose uploads may hold 100 rows, 10 columns and 50 characters per cell."""
    small = settings.model_copy(update={"max_rows": 100, "max_columns": 10, "max_cell_chars": 50})
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {create_key(settings, f'tenant-{secrets.token_hex(6)}')}"
        yield client


def _csv(rows: int, columns: int, cell: str = "1") -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    return (header + "\n" + "\n".join(",".join([cell] * columns) for _ in range(rows)) + "\n").encode()


def test_uploads_past_the_row_column_and_cell_caps_are_422(capped: TestClient) -> None:
    def send(raw: bytes) -> Any:
        return capped.post("/v1/datasets", files={"file": ("d.csv", raw, "text/csv")})

    assert send(_csv(100, 10, "x" * 50)).status_code == 201  # exactly at every cap
    assert _problem(send(_csv(101, 3)))["code"] == "too_many_rows"
    assert _problem(send(_csv(3, 11)))["code"] == "too_many_columns"
    long_cell = _problem(send(_csv(3, 3, "y" * 51)))
    assert long_cell["code"] == "cell_too_long" and "51 characters" in long_cell["detail"]
    # A long line of short cells is fine: the cap is per cell.
    assert send(_csv(3, 10, "z" * 40)).status_code == 201


def test_rows_to_predict_past_the_cell_and_column_caps_are_422(client: TestClient) -> None:
    for row in ({"a": "x" * 4097}, {f"c{i}": 1 for i in range(1001)}):
        answer = client.post("/v1/models/mdl_missing/predict", json={"rows": [row]})
        _problem(answer)
    assert (
        client.post("/v1/models/mdl_missing/predict", json={"rows": [{"a": "x" * 4096}]}).status_code == 404
    )


def test_a_job_beyond_the_work_cap_is_422_naming_its_size(settings: Settings, csvs: dict[str, Path]) -> None:
    """epochs x rows x trials x network, estimated at submit: refused before any worker is tied up."""
    small = settings.model_copy(update={"max_job_flops": 1e8})
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {create_key(settings, f'tenant-{secrets.token_hex(6)}')}"
        dataset = _dataset(client, csvs)  # 150 rows, 4 features: the 10-10 net has 171 weights
        body = {"kind": "train", "dataset_id": dataset["id"], "target": "target"}
        assert client.post("/v1/jobs", json=body | {"spec": {"training": {"epochs": 100}}}).status_code == 202
        problem = _problem(client.post("/v1/jobs", json=body | {"spec": {"training": {"epochs": 1000}}}))
        assert problem["code"] == "job_too_large" and "1,000 epochs" in problem["detail"]
        search = body | {"kind": "search", "spec": {"search": {"max_trials": 50}}}
        assert _problem(client.post("/v1/jobs", json=search))["code"] == "job_too_large"
