"""A job's live stream: Server-Sent Events of status changes, trial results and epochs, resumable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.orm import Session, sessionmaker

from api.deps import SettingsDep, TenantDep
from models.job_stream import Cursor, StreamRead, read_after

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

EVENTS = {
    "status": "a job status change (or a note): {at, from, to, reason}",
    "trial": "a trial status change: {at, trial, from, to, score, reason}",
    "epoch": "one epoch of one trial: {trial, execution, epoch, loss, val_loss, ..., grad_norms}",
    "end": "the job has ended and everything was sent: {status}; the stream closes",
}


def _read(sessions: sessionmaker[Session], tenant_id: str, job_id: str, cursor: Cursor) -> StreamRead:
    with sessions() as session:
        return read_after(session, tenant_id, job_id, cursor)


def first_read(
    tenant_id: TenantDep,
    request: Request,
    job_id: str,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    after: Annotated[
        str | None, Query(max_length=64, description="A Last-Event-ID, for clients that cannot send one")
    ] = None,
) -> StreamRead:
    """The first read, before the response starts: an unknown or foreign job is a 404, a bad id a 422."""
    return _read(request.app.state.sessions, tenant_id, job_id, Cursor.parse(last_event_id or after))


@router.get(
    "/{job_id}/stream",
    response_class=EventSourceResponse,
    responses={200: {"description": "Events: " + "; ".join(f"`{k}` {v}" for k, v in EVENTS.items())}},
)
async def stream_job(
    first: Annotated[StreamRead, Depends(first_read)],
    tenant_id: TenantDep,
    settings: SettingsDep,
    request: Request,
    job_id: str,
) -> AsyncIterator[ServerSentEvent]:
    """The job's events from the start, or after ``Last-Event-ID`` (each event carries its id).

    Ends with an ``end`` event once the job has ended and everything was sent, or after
    ``TUNEFORGE_STREAM_MAX_S`` while it runs (reconnect with the last id: nothing is missed).
    """
    sessions: sessionmaker[Session] = request.app.state.sessions
    deadline = time.monotonic() + settings.stream_max_s
    read = first
    while True:
        for item in read.items:
            yield ServerSentEvent(event=item.kind, id=str(item.cursor), data=item.data)
        if read.ended:
            yield ServerSentEvent(event="end", id=str(read.last), data={"status": read.status})
            return
        if time.monotonic() > deadline or await request.is_disconnected():
            return
        if not read.items:
            await asyncio.sleep(settings.stream_poll_s)
        read = await run_in_threadpool(_read, sessions, tenant_id, job_id, read.last)
