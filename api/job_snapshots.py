"""Recently read job bodies per API process, so many pollers of one job cost one database read."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(frozen=True)
class Snapshot:
    """A job's serialized body and the headers that go with it (ETag, Retry-After)."""

    body: bytes
    headers: dict[str, str]


class JobSnapshots:
    """Snapshots kept ``ttl_s`` seconds; concurrent misses for one job share a single load."""

    def __init__(self, ttl_s: float, maxsize: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._snapshots: TTLCache[tuple[str, str], Snapshot] = TTLCache(maxsize=maxsize, ttl=max(ttl_s, 1e-6))
        self._lock = threading.Lock()  # forget() is called from threadpool routes (cancel)
        self._loading: dict[tuple[str, str], asyncio.Future[Snapshot]] = {}

    async def get(self, tenant_id: str, job_id: str, load: Callable[[], Awaitable[Snapshot]]) -> Snapshot:
        """The tenant's job from memory, else from ``load`` (one load per job at a time)."""
        key = (tenant_id, job_id)
        with self._lock:
            snapshot = self._snapshots.get(key)
        if snapshot is not None:
            return snapshot
        pending = self._loading.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the load it waited for
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            snapshot = await load()
        except asyncio.CancelledError:
            future.cancel()  # waiters load for themselves
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # marked retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[key]
        future.set_result(snapshot)
        if self._ttl_s > 0:
            with self._lock:
                self._snapshots[key] = snapshot
        return snapshot

    def forget(self, tenant_id: str, job_id: str) -> None:
        """Drop a job's snapshot after this process changed it."""
        with self._lock:
            self._snapshots.pop((tenant_id, job_id), None)
