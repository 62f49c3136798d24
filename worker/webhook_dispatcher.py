"""The webhook dispatcher: inside beat, turns new events into deliveries and sends those that are due.

It runs beside the reaper in the beat process (not on the job queue, where a long training would hold
a ``job.running`` notice for hours), sends on a small thread pool so a slow receiver delays nobody
else, and keeps every decision in the database: a restart loses no delivery and no retry.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog

from models.db import session_scope
from models.webhook_store import DueDelivery, OutboxStore
from worker.runtime import Runtime, runtime
from worker.webhook_sender import attempt

log = structlog.get_logger(__name__)
HOLD_SLACK_S = 30  # past the request timeout, before a claimed delivery counts as lost and is due again


class Dispatcher:
    """One process's dispatcher: ``run_once`` does a pass; sends finish on the pool."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.slots = rt.settings.webhook_concurrency
        self.busy = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="webhook")

    def run_once(self) -> None:
        """Fan out new events, then start as many due deliveries as there are free senders."""
        with session_scope(self.rt.sessions) as session:
            written = OutboxStore(session).fan_out()
        if written:
            log.info("webhook_deliveries_written", count=written)
        with self.lock:
            free = self.slots - self.busy
        if free <= 0:
            return
        hold = timedelta(seconds=self.rt.settings.webhook_timeout_s + HOLD_SLACK_S)
        with session_scope(self.rt.sessions) as session:
            due = OutboxStore(session).claim_due(limit=free, hold=hold)
        for delivery in due:
            with self.lock:
                self.busy += 1
            self.pool.submit(self._deliver, delivery)

    def _deliver(self, due: DueDelivery) -> None:
        settings = self.rt.settings
        try:
            result = attempt(
                due, timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private
            )
            with session_scope(self.rt.sessions) as session:
                delivery = OutboxStore(session).record(
                    due, result, schedule=settings.webhook_retry_schedule_s
                )
            if delivery is None:
                return
            fields = {
                "delivery_id": due.id,
                "event": due.event,
                "url": due.url,
                "attempt": delivery.attempts,
                "status": delivery.status,
                "status_code": result.status_code,
                "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
            }
            if result.ok:
                log.info("webhook_delivered", **fields)
            elif result.error and result.error.startswith("refused"):
                log.warning("webhook_refused", reason=result.error, **fields)
            else:
                log.warning("webhook_attempt_failed", error=result.error, **fields)
        except Exception:  # the database is away: the claim lapses and the delivery is due again
            log.warning("webhook_record_failed", delivery_id=due.id, exc_info=True)
        finally:
            with self.lock:
                self.busy -= 1


def _loop(dispatcher: Dispatcher, interval_s: float, stop: threading.Event) -> None:
    while not stop.wait(interval_s):
        try:
            dispatcher.run_once()
        except Exception:  # the database is away: the next pass tries again
            log.warning("webhook_pass_failed", exc_info=True)


def start_in_beat() -> threading.Event:
    """Run the dispatcher every ``TUNEFORGE_WEBHOOK_POLL_S`` in a daemon thread; set the event to stop."""
    rt = runtime()
    stop = threading.Event()
    args = (Dispatcher(rt), rt.settings.webhook_poll_s, stop)
    threading.Thread(target=_loop, args=args, name="webhooks", daemon=True).start()
    return stop
