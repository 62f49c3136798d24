"""What a job's live stream sends: status changes, trial results and epochs after a cursor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import InvalidInput
from models.status import TERMINAL, JobStatus
from models.store import JobStore
from models.tables import EpochMetric, JobEvent, Trial, TrialEvent

CURSOR = re.compile(r"e(\d{1,18})\.t(\d{1,18})\.m(\d{1,18})")
BATCH_ROWS = 500  # rows of each kind per read: a long history streams in several reads, not one


@dataclass(frozen=True)
class Cursor:
    """The last status event, trial event and epoch row sent (0: none yet); the SSE event id."""

    event: int = 0
    trial_event: int = 0
    epoch: int = 0

    def __str__(self) -> str:
        return f"e{self.event}.t{self.trial_event}.m{self.epoch}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """A cursor from a ``Last-Event-ID`` (None or empty: from the start)."""
        if not text:
            return cls()
        found = CURSOR.fullmatch(text.strip())
        if found is None:
            raise InvalidInput(
                "invalid_cursor",
                f"Last-Event-ID {text[:64]!r} is not an id this stream sent (e<n>.t<n>.m<n>)",
            )
        return cls(*(int(group) for group in found.groups()))


@dataclass
class StreamItem:
    """One event to send: its SSE event name, payload and the cursor after it."""

    kind: str
    data: dict[str, Any]
    cursor: Cursor


@dataclass
class StreamRead:
    """New rows after a cursor, and whether the job had ended before they were read (so none follow)."""

    items: list[StreamItem]
    status: JobStatus
    ended: bool
    last: Cursor  # the cursor after the last item (the one read after, when there is none)


def read_after(session: Session, tenant_id: str, job_id: str, cursor: Cursor) -> StreamRead:
    """The job's rows after ``cursor``, oldest first within each kind.

    The status is read first: when it is terminal, every row the job will ever have was committed
    before it, so an empty read after it means the stream is complete.
    """
    status = JobStatus(JobStore(session).get(tenant_id, job_id).status)
    items: list[StreamItem] = []
    position = cursor
    events = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > cursor.event)
        .order_by(JobEvent.id)
        .limit(BATCH_ROWS)
    ).all()
    data: dict[str, Any]
    for event in events:
        position = Cursor(event.id, position.trial_event, position.epoch)
        data = {
            "at": event.at.isoformat(),
            "from": event.from_status,
            "to": event.to_status,
            "reason": event.reason,
        }
        items.append(StreamItem("status", data, position))
    trial_rows = session.execute(
        select(TrialEvent, Trial.number, Trial.score)
        .join(Trial, Trial.id == TrialEvent.trial_id)
        .where(Trial.job_id == job_id, TrialEvent.id > cursor.trial_event)
        .order_by(TrialEvent.id)
        .limit(BATCH_ROWS)
    ).all()
    for change, number, score in trial_rows:
        position = Cursor(position.event, change.id, position.epoch)
        data = {
            "at": change.at.isoformat(),
            "trial": number,
            "from": change.from_status,
            "to": change.to_status,
        }
        items.append(StreamItem("trial", data | {"score": score, "reason": change.reason}, position))
    epochs = session.execute(
        select(EpochMetric, Trial.number)
        .join(Trial, Trial.id == EpochMetric.trial_id)
        .where(Trial.job_id == job_id, EpochMetric.id > cursor.epoch)
        .order_by(EpochMetric.id)
        .limit(BATCH_ROWS)
    ).all()
    for row, number in epochs:
        position = Cursor(position.event, position.trial_event, row.id)
        data = {"trial": number, "execution": row.execution, "epoch": row.epoch, **row.values}
        items.append(StreamItem("epoch", data | {"grad_norms": row.grad_norms}, position))
    full = max(len(events), len(trial_rows), len(epochs)) >= BATCH_ROWS
    return StreamRead(items, status, ended=status in TERMINAL and not full, last=position)
