"""A job's live stream (SSE) through a real server and the SDK: every epoch in order, resumable."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.embedded import create_key
from models.settings import Settings
from tests.faults.services import live_api
from tuneforge_client import Client, NotFoundError, ValidationError

EPOCHS = 12


@pytest.fixture
def api(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A server that closes each stream after a second: the SDK must resume on its own."""
    env = server_env | {"TUNEFORGE_STREAM_MAX_S": "1", "TUNEFORGE_STREAM_POLL_S": "0.1"}
    with live_api(env, tmp_path / "api.log") as base:
        yield base


def test_every_epoch_arrives_in_order_across_drops_and_resumes(
    api: str, worker: subprocess.Popen[bytes], settings: Settings, csvs: dict[str, Path]
) -> None:
    """A client that drops after 3 epochs and resumes from its last id, and one that streams the whole
    job through the server's periodic closes, both see each epoch once, in order, then ``end``."""
    client = Client(api_key=create_key(settings, f"tenant-{secrets.token_hex(4)}"), base_url=api)
    dataset = client.datasets.upload(csvs["iris"])
    spec = {"training": {"epochs": EPOCHS, "early_stopping": None, "engine": "reference"}}
    job = client.jobs.train(dataset.id, "target", spec)

    first = []
    for event in client.jobs.stream(job.id):
        first.append(event)
        if sum(e.event == "epoch" for e in first) == 3:
            break  # the connection drops here
    rest = list(client.jobs.stream(job.id, last_event_id=first[-1].id))
    whole = list(job.stream())  # from the start, across the server's one-second closes

    for events in (first + rest, whole):
        assert [e.data["epoch"] for e in events if e.event == "epoch"] == list(range(1, EPOCHS + 1))
        statuses = [e.data["to"] for e in events if e.event == "status" and e.data["from"] != e.data["to"]]
        assert statuses == ["queued", "running", "succeeded"]
        assert events[-1].event == "end" and events[-1].data == {"status": "succeeded"}
        assert len({e.id for e in events[:-1]}) == len(events) - 1, "no event twice"
    stored = client.jobs.metrics(job.id)
    streamed = [e.data for e in whole if e.event == "epoch"]
    assert [round(e["val_loss"], 6) for e in streamed] == [round(m.val_loss, 6) for m in stored]  # type: ignore[attr-defined]
    assert {"dense_0", "dense_1", "output"} <= set(streamed[0]["grad_norms"])
    trial_changes = [e.data["to"] for e in whole if e.event == "trial"]
    assert trial_changes[-1] == "completed"


def test_a_stream_of_an_unknown_or_foreign_job_is_404_and_a_bad_id_is_422(
    api: str, settings: Settings, csvs: dict[str, Path]
) -> None:
    key = create_key(settings, f"tenant-{secrets.token_hex(4)}")
    owner = Client(api_key=key, base_url=api)
    stranger = Client(api_key=create_key(settings, f"tenant-{secrets.token_hex(4)}"), base_url=api)
    job = owner.jobs.train(owner.datasets.upload(csvs["iris"]).id, "target")
    for client, job_id in ((owner, "job_doesnotexist"), (stranger, job.id)):
        with pytest.raises(NotFoundError):
            next(iter(client.jobs.stream(job_id)))
    with pytest.raises(ValidationError, match="Last-Event-ID"):
        next(iter(owner.jobs.stream(job.id, last_event_id="not-a-cursor")))
    response = httpx.get(
        f"{api}/v1/jobs/{job.id}/stream",
        headers={"Authorization": f"Bearer {key}"},
        params={"after": "e0.t0.m0"},
        timeout=10,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
