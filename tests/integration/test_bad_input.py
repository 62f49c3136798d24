"""Bad input gets a 422 problem naming it, and nothing is stored: no row, no file, no job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.settings import Settings
from tests.support import upload

pytestmark = pytest.mark.integration

BAD_FILES = [
    (b"", "empty_file", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not_csv", "binary"),
    (b"a,b\n1,\xff\xfe\n", "invalid_encoding", "UTF-8"),
    (b"only\n1\n2\n", "too_few_columns", "column"),
    (b"a,b,c\n1,2,3\n4,5,6,7,8\n", "invalid_csv", "CSV"),
    (b"a,b\n", "no_rows", "rows"),
]


def _stored_files(settings: Settings) -> set[Path]:
    return {p for sub in ("datasets", "tmp") for p in (settings.data_dir / sub).glob("*")}


def _assert_problem(response: Any, status: int, code: str, word: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert word.lower() in body["detail"].lower(), body


@pytest.mark.parametrize(("content", "code", "word"), BAD_FILES)
def test_bad_upload_is_422_and_stores_nothing(
    client: TestClient, settings: Settings, content: bytes, code: str, word: str
) -> None:
    """Each kind of broken file is refused with its code; no dataset row or file appears."""
    before = _stored_files(settings)
    response = client.post("/v1/datasets", files={"file": ("data.csv", content, "text/csv")})
    _assert_problem(response, 422, code, word)
    assert client.get("/v1/datasets").json()["items"] == []
    assert _stored_files(settings) == before


def _job_body(dataset_id: str, target: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "train", "dataset_id": dataset_id, "target": target, "spec": spec or {}}


@pytest.mark.parametrize(
    ("csv", "target", "spec", "code", "word"),
    [
        (b"x,y\n1,0\n2,1\n3,0\n", "nope", {}, "unknown_target", "nope"),
        (b"x,y\n1,1\n2,1\n3,1\n", "y", {}, "target_single_class", "'y'"),
        (b"x,y\n1,a\n2,b\n3,c\n", "y", {"task": "regression"}, "target_not_numeric", "numeric"),
        (b"x,y\n1,0\n2,1\n3,0\n", "y", {"bogus": 1}, "invalid_spec", "spec.bogus"),
        (b"x,y\n1,0\n2,1\n3,0\n", "y", {"model": {"layers": [{"units": 0}]}}, "invalid_spec", "units"),
        (b"x,y\n1,0\n2,1\n3,0\n", "y", {"model": {"layers": [{"dropout": 1.5}]}}, "invalid_spec", "dropout"),
        (b"x,y\n1,0\n2,1\n3,0\n", "y", {"training": {"optimizer": "adamw"}}, "invalid_spec", "optimizer"),
        (b"x,y\n1,0\n2,1\n3,0\n", "y", {"training": {"clipnorm": 0}}, "invalid_spec", "clipnorm"),
    ],
)
def test_bad_job_is_422_and_creates_no_job(
    client: TestClient,
    tmp_path: Path,
    csv: bytes,
    target: str,
    spec: dict[str, Any],
    code: str,
    word: str,
) -> None:
    """Unknown target, one class, non-numeric regression target, bad spec: 422, no job."""
    path = tmp_path / "d.csv"
    path.write_bytes(csv)
    dataset = upload(client, path)
    response = client.post("/v1/jobs", json=_job_body(dataset["id"], target, spec))
    _assert_problem(response, 422, code, word)
    assert response.json()["errors"], "field errors locate the problem"
    assert client.get("/v1/jobs").json()["items"] == []


def test_unknown_dataset_and_unknown_top_level_field(client: TestClient) -> None:
    """A job naming a missing dataset, or with an unknown field, is a 422 naming it."""
    response = client.post("/v1/jobs", json=_job_body("ds_missing", "y"))
    _assert_problem(response, 422, "dataset_not_found", "ds_missing")
    response = client.post("/v1/jobs", json=_job_body("ds_missing", "y") | {"colour": "red"})
    _assert_problem(response, 422, "invalid_request", "colour")
    assert client.get("/v1/jobs").json()["items"] == []
