"""The API's job snapshots: one database read per interval for any number of pollers."""

from __future__ import annotations

import asyncio

import pytest

from api.job_snapshots import JobSnapshots, Snapshot
from models.errors import NotFound


def _loader(calls: list[int], body: bytes = b"{}", delay_s: float = 0.05):
    async def load() -> Snapshot:
        calls.append(1)
        await asyncio.sleep(delay_s)
        return Snapshot(body, {"ETag": '"x"'})

    return load


def test_concurrent_pollers_share_one_read() -> None:
    snapshots, calls = JobSnapshots(ttl_s=5), []

    async def storm() -> list[Snapshot]:
        return await asyncio.gather(*(snapshots.get("t", "job", _loader(calls)) for _ in range(50)))

    results = asyncio.run(storm())
    assert len(calls) == 1
    assert {r.body for r in results} == {b"{}"}
    asyncio.run(snapshots.get("t", "job", _loader(calls)))
    assert len(calls) == 1  # still fresh


def test_tenants_and_jobs_are_kept_apart() -> None:
    snapshots, calls = JobSnapshots(ttl_s=5), []
    asyncio.run(snapshots.get("t1", "job", _loader(calls, b"one")))
    other = asyncio.run(snapshots.get("t2", "job", _loader(calls, b"two")))
    assert other.body == b"two" and len(calls) == 2


def test_forget_and_expiry_read_again() -> None:
    snapshots, calls = JobSnapshots(ttl_s=0.2), []
    asyncio.run(snapshots.get("t", "job", _loader(calls)))
    snapshots.forget("t", "job")
    asyncio.run(snapshots.get("t", "job", _loader(calls)))
    assert len(calls) == 2
    asyncio.run(asyncio.sleep(0.25))
    asyncio.run(snapshots.get("t", "job", _loader(calls)))
    assert len(calls) == 3


def test_zero_ttl_reads_every_time() -> None:
    snapshots, calls = JobSnapshots(ttl_s=0), []
    for _ in range(3):
        asyncio.run(snapshots.get("t", "job", _loader(calls)))
    assert len(calls) == 3


def test_a_failed_read_reaches_every_waiter_and_is_not_kept() -> None:
    snapshots, calls = JobSnapshots(ttl_s=5), []

    async def missing() -> Snapshot:
        calls.append(1)
        await asyncio.sleep(0.05)
        raise NotFound("job_not_found", "job 'job' does not exist")

    async def storm() -> list[object]:
        return await asyncio.gather(
            *(snapshots.get("t", "job", missing) for _ in range(5)), return_exceptions=True
        )

    outcomes = asyncio.run(storm())
    assert len(calls) == 1 and all(isinstance(o, NotFound) for o in outcomes)
    with pytest.raises(NotFound):
        asyncio.run(snapshots.get("t", "job", missing))
    assert len(calls) == 2


def test_a_cancelled_read_lets_waiters_read_for_themselves() -> None:
    snapshots, calls = JobSnapshots(ttl_s=5), []

    async def scenario() -> Snapshot:
        first = asyncio.create_task(snapshots.get("t", "job", _loader(calls, delay_s=0.5)))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(snapshots.get("t", "job", _loader(calls, b"mine", delay_s=0.01)))
        await asyncio.sleep(0.01)
        first.cancel()
        return await waiter

    assert asyncio.run(scenario()).body == b"mine"
    assert len(calls) == 2
