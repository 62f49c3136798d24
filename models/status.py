"""Job and trial statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrialStatus(StrEnum):
    """Where one trial (one model fit) is; names follow keras-tuner's."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


class JobKind(StrEnum):
    """What a job produces: one model, or a search over many."""

    TRAIN = "train"
    SEARCH = "search"


TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# to-status -> the statuses it may be reached from. A retry after a lost worker is
# running -> queued; a queued job the reaper gives up on may fail directly; running -> running is a
# takeover of a lost worker's lease (allowed only when the lease is stale, see JobStore.claim).
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING}),
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELLING: frozenset({JobStatus.RUNNING}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLING}),
}


TRIAL_TERMINAL: frozenset[TrialStatus] = frozenset(
    {TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.STOPPED}
)
# The same table for trials: a lost trial goes back to queued; running -> running is a takeover.
TRIAL_ALLOWED_FROM: dict[TrialStatus, frozenset[TrialStatus]] = {
    TrialStatus.QUEUED: frozenset({TrialStatus.RUNNING}),
    TrialStatus.RUNNING: frozenset({TrialStatus.QUEUED, TrialStatus.RUNNING}),
    TrialStatus.COMPLETED: frozenset({TrialStatus.RUNNING}),
    TrialStatus.FAILED: frozenset({TrialStatus.QUEUED, TrialStatus.RUNNING}),
    TrialStatus.STOPPED: frozenset({TrialStatus.QUEUED, TrialStatus.RUNNING}),
}


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    """Whether the status machine allows ``source -> target``."""
    return source in ALLOWED_FROM[target]
