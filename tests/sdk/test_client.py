"""The SDK against the real API: errors, retries, idempotency, Retry-After, paging, async twin."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import tuneforge_client._base as base
from tuneforge_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)

pytestmark = pytest.mark.integration
CSV = b"a,b,y\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(40))


class Flaky(httpx.HTTPTransport):
    """Forwards to the real server but misbehaves first: drops the answer, or answers 429/503."""

    def __init__(
        self, *, drop_after_send: int = 0, statuses: list[int] | None = None, retry_after: str = "0"
    ) -> None:
        super().__init__()
        self.drop_after_send = drop_after_send
        self.statuses = list(statuses or [])
        self.retry_after = retry_after
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers.get("idempotency-key", ""))
        if self.statuses:
            status = self.statuses.pop(0)
            return httpx.Response(
                status,
                headers={"Retry-After": self.retry_after},
                json={"code": "slow_down", "detail": "injected", "status": status},
            )
        response = super().handle_request(request)
        if self.drop_after_send:
            self.drop_after_send -= 1
            response.read()
            raise httpx.ReadError("connection dropped after the server answered", request=request)
        return response


def test_each_error_class_comes_from_a_real_answer(base_url: str, api_key: str) -> None:
    """401, 404, 409 and 422 from the server map to their exception, with code, detail and errors."""
    with pytest.raises(AuthenticationError) as unauthenticated:
        Client(api_key="tfg_wrong", base_url=base_url).datasets.get("ds_x")
    assert unauthenticated.value.code == "invalid_api_key"
    client = Client(api_key=api_key, base_url=base_url)
    with pytest.raises(NotFoundError) as missing:
        client.datasets.get("ds_missing")
    assert missing.value.code == "dataset_not_found" and "ds_missing" in missing.value.detail
    dataset = client.datasets.upload(CSV, name="d.csv")
    with pytest.raises(ValidationError) as invalid:
        client.jobs.train(dataset.id, "y", {"model": {"layers": [{"dropout": 1.5}]}})
    assert invalid.value.code == "invalid_spec"
    assert invalid.value.errors[0]["loc"][:3] == ["spec", "model", "layers"]
    client.jobs.train(dataset.id, "y")
    with pytest.raises(ConflictError) as busy:
        client.datasets.delete(dataset.id)
    assert busy.value.code == "dataset_in_use"


def test_a_submit_retried_after_a_dropped_connection_makes_one_job(base_url: str, api_key: str) -> None:
    """The server made the job, the answer was lost, the SDK retried: still exactly one job."""
    dataset = Client(api_key=api_key, base_url=base_url).datasets.upload(CSV)
    flaky = Flaky(drop_after_send=1)
    client = Client(api_key=api_key, base_url=base_url, transport=flaky)
    job = client.jobs.train(dataset.id, "y")
    assert len(flaky.sent) == 2 and flaky.sent[0] == flaky.sent[1] != ""
    assert [j.id for j in client.jobs.list()] == [job.id]


def test_retry_after_is_honoured(base_url: str, api_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """429 and 503 with Retry-After: the SDK waits exactly that long, then succeeds."""
    waits: list[float] = []
    monkeypatch.setattr(base.time, "time", time.time)
    monkeypatch.setattr("tuneforge_client._client.time.sleep", waits.append)
    client = Client(
        api_key=api_key, base_url=base_url, transport=Flaky(statuses=[429, 503], retry_after="1.5")
    )
    assert list(client.datasets.list()) == []
    assert waits == [1.5, 1.5]
    gives_up = Client(
        api_key=api_key,
        base_url=base_url,
        max_retries=1,
        transport=Flaky(statuses=[429, 429], retry_after="0"),
    )
    with pytest.raises(RateLimitError):
        gives_up.datasets.get("ds_x")


def test_pagination_walks_every_page(base_url: str, api_key: str) -> None:
    """Seven jobs listed two per page: all seven, newest first, each once."""
    client = Client(api_key=api_key, base_url=base_url)
    dataset = client.datasets.upload(CSV)
    ids = [client.jobs.train(dataset.id, "y").id for _ in range(7)]
    assert [j.id for j in client.jobs.list(limit=2)] == ids[::-1]
    assert [j.id for j in client.jobs.list(status="succeeded")] == []


def test_async_client_has_the_same_surface(base_url: str, api_key: str, tmp_path: Path) -> None:
    """Upload, submit, page, cancel and wait (JobFailed for a cancelled job) through AsyncClient."""
    from tuneforge_client import JobFailed

    async def scenario() -> dict[str, Any]:
        async with AsyncClient(api_key=api_key, base_url=base_url) as client:
            dataset = await client.datasets.upload(CSV)
            job = await client.jobs.train(dataset.id, "y")
            listed = [j.id async for j in client.jobs.list(limit=1)]
            await client.jobs.cancel(job.id)
            with pytest.raises(JobFailed) as failed:
                await job.wait(timeout=10, progress=False)
            events = await client.jobs.events(job.id)
            return {"job": job, "listed": listed, "failed": failed.value, "events": events}

    outcome = asyncio.run(scenario())
    assert outcome["listed"] == [outcome["job"].id]
    assert outcome["failed"].job.status == "cancelled"
    assert [e.to for e in outcome["events"]] == ["queued", "cancelled"]
