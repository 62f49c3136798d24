"""Client and AsyncClient: the same resources, executed over httpx with retries."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from . import _calls as calls
from ._base import RETRYABLE_STATUSES, Call, backoff, resolve_api_key, resolve_base_url, retry_after
from ._errors import APIConnectionError, APITimeoutError, JobFailed, TuneforgeError, error_for
from ._progress import JobProgress
from ._webhooks import AsyncWebhooks, Webhooks
from .types import Dataset, EpochMetrics, Event, Export, Job, Model, StreamEvent, Trial

DEFAULT_POLL_S = 2.0


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "tuneforge-client/0.1.0"}


def _failure(error: Exception) -> TuneforgeError:
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"request timed out: {error}")
    return APIConnectionError(f"could not reach the server: {error}")


def _retry_delay(
    call: Call, attempt: int, max_retries: int, outcome: httpx.Response | httpx.TransportError
) -> float | None:
    """Seconds to wait before sending ``call`` again, or None to settle on this outcome."""
    if attempt >= max_retries:
        return None
    if isinstance(outcome, httpx.TransportError):
        return backoff(attempt, None) if call.may_retry(outcome) else None
    if outcome.status_code in RETRYABLE_STATUSES and call.may_retry(None):
        return backoff(attempt, retry_after(outcome))
    return None


def _settle(call: Call, outcome: httpx.Response | httpx.TransportError) -> Any:
    """The parsed answer, or the exception the outcome means."""
    if isinstance(outcome, httpx.TransportError):
        raise _failure(outcome) from outcome
    if outcome.is_error:
        raise error_for(outcome)
    return call.parse(outcome)


def _finished(job: Job) -> Job:
    if job.status != "succeeded":
        raise JobFailed(job)
    return job


def _verified(content: bytes, model: Model, path: Path) -> Path:
    return _checked(content, model.sha256, path, what=f"downloaded model {model.id}")


def _checked(content: bytes, sha256: str, path: Path, *, what: str = "the download") -> Path:
    """Write ``content`` to ``path`` only if it is the file whose sha256 the service recorded."""
    if hashlib.sha256(content).hexdigest() != sha256:
        raise TuneforgeError(f"{what} does not match its sha256")
    path.write_bytes(content)
    return path


class Client:
    """Synchronous client: ``client.datasets``, ``client.jobs``, ``client.models``, ``client.webhooks``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.max_retries = max_retries
        self._http = httpx.Client(
            base_url=resolve_base_url(base_url),
            timeout=timeout,
            headers=_headers(resolve_api_key(api_key)),
            transport=transport,
        )
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.webhooks = Webhooks(self)

    def call(self, call: Call) -> Any:
        """Send ``call``, retrying connection errors, 408, 429 and 5xx with backoff (Retry-After first)."""
        attempt = 0
        while True:
            try:
                outcome: httpx.Response | httpx.TransportError = self._http.request(
                    call.method, call.path, **call.request_kwargs()
                )
            except httpx.TransportError as exc:
                outcome = exc
            delay = _retry_delay(call, attempt, self.max_retries, outcome)
            if delay is None:
                return _settle(call, outcome)
            time.sleep(delay)
            attempt += 1

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated listing, fetching pages as they are needed."""
        cursor = None
        while True:
            page = self.call(calls.list_page(path, params | {"cursor": cursor}))
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def close(self) -> None:
        """Close connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Datasets:
    """``/v1/datasets``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def upload(self, file: calls.FileInput, *, name: str | None = None, header: str = "auto") -> Dataset:
        """Upload a CSV (path, bytes or binary file)."""
        return self._c.call(calls.upload_dataset(file, name=name, header=header))  # type: ignore[no-any-return]

    def list(self, *, limit: int = 50) -> Iterator[Dataset]:
        """All datasets, newest first (pages fetched lazily)."""
        return (Dataset.model_validate(item) for item in self._c.pages("/v1/datasets", {"limit": limit}))

    def get(self, dataset_id: str) -> Dataset:
        """One dataset."""
        return self._c.call(calls.get_dataset(dataset_id))  # type: ignore[no-any-return]

    def delete(self, dataset_id: str) -> None:
        """Delete a dataset no active job uses."""
        self._c.call(calls.delete_dataset(dataset_id))


class Jobs:
    """``/v1/jobs``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(
        self,
        *,
        kind: str,
        dataset_id: str,
        target: str,
        spec: dict[str, Any] | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job (with an Idempotency-Key, so retries never duplicate it)."""
        job: Job = self._c.call(calls.create_job(kind, dataset_id, target, spec, name, idempotency_key))
        return job._bind(self)

    def train(self, dataset_id: str, target: str, spec: dict[str, Any] | None = None, **options: Any) -> Job:
        """Submit a train job."""
        return self.create(kind="train", dataset_id=dataset_id, target=target, spec=spec, **options)

    def search(self, dataset_id: str, target: str, spec: dict[str, Any], **options: Any) -> Job:
        """Submit a hyperparameter search."""
        return self.create(kind="search", dataset_id=dataset_id, target=target, spec=spec, **options)

    def get(self, job_id: str) -> Job:
        """One job."""
        job, _ = self._c.call(calls.get_job(job_id))
        return job._bind(self)  # type: ignore[no-any-return]

    def list(self, *, status: str | None = None, kind: str | None = None, limit: int = 50) -> Iterator[Job]:
        """All jobs, newest first, optionally filtered (pages fetched lazily)."""
        params = {"status": status, "kind": kind, "limit": limit}
        return (Job.model_validate(item)._bind(self) for item in self._c.pages("/v1/jobs", params))

    def cancel(self, job_id: str) -> Job:
        """Ask for cancellation."""
        return self._c.call(calls.cancel_job(job_id))._bind(self)  # type: ignore[no-any-return]

    def events(self, job_id: str) -> builtins.list[Event]:
        """Status history."""
        return self._c.call(calls.job_events(job_id))  # type: ignore[no-any-return]

    def trials(self, job_id: str) -> builtins.list[Trial]:
        """The leaderboard of a search (one trial for a train job)."""
        return self._c.call(calls.job_trials(job_id))  # type: ignore[no-any-return]

    def metrics(self, job_id: str, *, trial: int | None = None) -> builtins.list[EpochMetrics]:
        """Per-epoch metrics."""
        return self._c.call(calls.job_metrics(job_id, trial))  # type: ignore[no-any-return]

    def stream(
        self, job_id: str, *, last_event_id: str | None = None, max_reconnects: int = 10
    ) -> Iterator[StreamEvent]:
        """The job's events (Server-Sent Events) until it ends, the final one ``end``.

        A dropped connection, or a stream the server closes while the job runs, is resumed from the
        last event received (``Last-Event-ID``): nothing is missed or repeated.
        """
        reconnects = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with connect_sse(
                    self._c._http, "GET", f"/v1/jobs/{job_id}/stream", headers=headers
                ) as source:
                    if source.response.is_error:
                        source.response.read()
                        raise error_for(source.response)
                    for sse in source.iter_sse():
                        event = StreamEvent(event=sse.event, id=sse.id, data=sse.json())
                        last_event_id = event.id
                        reconnects = 0
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError:
                if reconnects >= max_reconnects:
                    raise
            reconnects += 1
            time.sleep(min(2.0, 0.1 * 2**reconnects))

    def wait(self, job_id: str, *, timeout: float | None = None, progress: bool | None = None) -> Job:
        """Poll (as often as Retry-After says) until the job ends; raise JobFailed unless it succeeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = JobProgress(job_id, progress)
        try:
            while True:
                job, after = self._c.call(calls.get_job(job_id))
                bar.update(job)
                if job.done:
                    return _finished(job._bind(self))
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
                time.sleep(float(after) if after else DEFAULT_POLL_S)
        finally:
            bar.close()


class Models:
    """``/v1/models``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def get(self, model_id: str) -> Model:
        """A model's card."""
        return self._c.call(calls.get_model(model_id))  # type: ignore[no-any-return]

    def download(self, model_id: str, path: str | Path | None = None) -> Path:
        """Save the ``.keras`` file (checked against its sha256) and return where."""
        model = self.get(model_id)
        target = Path(path or f"{model_id}.keras")
        return _verified(self._c.call(calls.download_model(model_id)), model, target)

    def predict(self, model_id: str, rows: list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Predictions for raw rows: ``{label, probabilities}`` or ``{value}`` each."""
        return self._c.call(calls.predict(model_id, rows))  # type: ignore[no-any-return]

    def export(self, model_id: str, format: str = "saved_model", path: str | Path | None = None) -> Path:
        """Have the service make (and check) another format; save its archive and return where."""
        made: Export = self._c.call(calls.export_model(model_id, format))
        target = Path(path or (f"{model_id}.onnx" if format == "onnx" else f"{model_id}.{format}.tar.gz"))
        return _checked(self._c.call(calls.download_export(model_id, format)), made.sha256, target)


class AsyncClient:
    """Asynchronous twin of ``Client``: the same resources, awaited."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_retries = max_retries
        self._http = httpx.AsyncClient(
            base_url=resolve_base_url(base_url),
            timeout=timeout,
            headers=_headers(resolve_api_key(api_key)),
            transport=transport,
        )
        self.datasets = AsyncDatasets(self)
        self.jobs = AsyncJobs(self)
        self.models = AsyncModels(self)
        self.webhooks = AsyncWebhooks(self)

    async def call(self, call: Call) -> Any:
        """Send ``call`` with the same retry policy as ``Client.call``."""
        attempt = 0
        while True:
            try:
                outcome: httpx.Response | httpx.TransportError = await self._http.request(
                    call.method, call.path, **call.request_kwargs()
                )
            except httpx.TransportError as exc:
                outcome = exc
            delay = _retry_delay(call, attempt, self.max_retries, outcome)
            if delay is None:
                return _settle(call, outcome)
            await asyncio.sleep(delay)
            attempt += 1

    async def pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paginated listing."""
        cursor = None
        while True:
            page = await self.call(calls.list_page(path, params | {"cursor": cursor}))
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def close(self) -> None:
        """Close connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class AsyncDatasets:
    """``/v1/datasets``, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def upload(
        self, file: calls.FileInput, *, name: str | None = None, header: str = "auto"
    ) -> Dataset:
        """Upload a CSV."""
        return await self._c.call(calls.upload_dataset(file, name=name, header=header))  # type: ignore[no-any-return]

    async def list(self, *, limit: int = 50) -> AsyncIterator[Dataset]:
        """All datasets, newest first."""
        async for item in self._c.pages("/v1/datasets", {"limit": limit}):
            yield Dataset.model_validate(item)

    async def get(self, dataset_id: str) -> Dataset:
        """One dataset."""
        return await self._c.call(calls.get_dataset(dataset_id))  # type: ignore[no-any-return]

    async def delete(self, dataset_id: str) -> None:
        """Delete a dataset."""
        await self._c.call(calls.delete_dataset(dataset_id))


class AsyncJobs:
    """``/v1/jobs``, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        *,
        kind: str,
        dataset_id: str,
        target: str,
        spec: dict[str, Any] | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job."""
        job: Job = await self._c.call(calls.create_job(kind, dataset_id, target, spec, name, idempotency_key))
        return job._bind(self)

    async def train(
        self, dataset_id: str, target: str, spec: dict[str, Any] | None = None, **options: Any
    ) -> Job:
        """Submit a train job."""
        return await self.create(kind="train", dataset_id=dataset_id, target=target, spec=spec, **options)

    async def search(self, dataset_id: str, target: str, spec: dict[str, Any], **options: Any) -> Job:
        """Submit a hyperparameter search."""
        return await self.create(kind="search", dataset_id=dataset_id, target=target, spec=spec, **options)

    async def get(self, job_id: str) -> Job:
        """One job."""
        job, _ = await self._c.call(calls.get_job(job_id))
        return job._bind(self)  # type: ignore[no-any-return]

    async def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 50
    ) -> AsyncIterator[Job]:
        """All jobs, newest first."""
        async for item in self._c.pages("/v1/jobs", {"status": status, "kind": kind, "limit": limit}):
            yield Job.model_validate(item)._bind(self)

    async def cancel(self, job_id: str) -> Job:
        """Ask for cancellation."""
        return (await self._c.call(calls.cancel_job(job_id)))._bind(self)  # type: ignore[no-any-return]

    async def events(self, job_id: str) -> builtins.list[Event]:
        """Status history."""
        return await self._c.call(calls.job_events(job_id))  # type: ignore[no-any-return]

    async def trials(self, job_id: str) -> builtins.list[Trial]:
        """The leaderboard."""
        return await self._c.call(calls.job_trials(job_id))  # type: ignore[no-any-return]

    async def metrics(self, job_id: str, *, trial: int | None = None) -> builtins.list[EpochMetrics]:
        """Per-epoch metrics."""
        return await self._c.call(calls.job_metrics(job_id, trial))  # type: ignore[no-any-return]

    async def wait(self, job_id: str, *, timeout: float | None = None, progress: bool | None = None) -> Job:
        """Poll until the job ends; raise JobFailed unless it succeeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = JobProgress(job_id, progress)
        try:
            while True:
                job, after = await self._c.call(calls.get_job(job_id))
                bar.update(job)
                if job.done:
                    return _finished(job._bind(self))
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
                await asyncio.sleep(float(after) if after else DEFAULT_POLL_S)
        finally:
            bar.close()


class AsyncModels:
    """``/v1/models``, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def get(self, model_id: str) -> Model:
        """A model's card."""
        return await self._c.call(calls.get_model(model_id))  # type: ignore[no-any-return]

    async def download(self, model_id: str, path: str | Path | None = None) -> Path:
        """Save the ``.keras`` file (checked against its sha256)."""
        model = await self.get(model_id)
        target = Path(path or f"{model_id}.keras")
        return _verified(await self._c.call(calls.download_model(model_id)), model, target)

    async def predict(self, model_id: str, rows: list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Predictions for raw rows."""
        return await self._c.call(calls.predict(model_id, rows))  # type: ignore[no-any-return]

    async def export(
        self, model_id: str, format: str = "saved_model", path: str | Path | None = None
    ) -> Path:
        """Have the service make (and check) another format; save its archive."""
        made: Export = await self._c.call(calls.export_model(model_id, format))
        target = Path(path or (f"{model_id}.onnx" if format == "onnx" else f"{model_id}.{format}.tar.gz"))
        return _checked(await self._c.call(calls.download_export(model_id, format)), made.sha256, target)
