"""Riding out database outages in a worker: a transaction that fails on a lost connection is run again."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import structlog
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_delay, wait_exponential

from models.db import is_transient

P = ParamSpec("P")
R = TypeVar("R")
log = structlog.get_logger(__name__)
# Long enough for a Postgres restart or failover; past it the work is left for the reaper to requeue.
RETRY_FOR_S = 90.0


def _note(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("database_unavailable_retrying", attempt=state.attempt_number, error=type(error).__name__)


def retry_transient(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-run ``fn`` (one whole transaction) with backoff while the database is unreachable."""
    decorated: Callable[P, R] = retry(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(RETRY_FOR_S),
        before_sleep=_note,
        reraise=True,
    )(fn)
    return decorated
