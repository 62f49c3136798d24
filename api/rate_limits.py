"""Per-key request rate limits and a per-address limit on failed authentication (the ``limits`` library).

Counters live in Redis when the broker is Redis (shared by every API process), else in memory. A
limiter whose storage is unreachable lets requests through: rate limiting must never take the API down.
"""

from __future__ import annotations

import time

import structlog
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from models.errors import RateLimited
from models.settings import Settings
from models.store import hash_key

log = structlog.get_logger(__name__)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimits:
    """The API's limiters: reads and writes per API key, failed authentication per client address."""

    def __init__(self, settings: Settings) -> None:
        broker = settings.resolved_broker_url()
        url = broker if broker.startswith(("redis://", "rediss://")) else "memory://"
        options = {"socket_timeout": 0.2, "socket_connect_timeout": 0.2} if url != "memory://" else {}
        self.limiter = FixedWindowRateLimiter(storage_from_string(url, **options))
        self.namespace = f"tuneforge:{settings.queue}"
        self.reads = parse(settings.rate_limit_reads)
        self.writes = parse(settings.rate_limit_writes)
        self.failed_auth = parse(settings.rate_limit_failed_auth)

    def _hit(self, limit: object, *keys: str) -> float | None:
        """Count one request; seconds until the window resets when over the limit, else None."""
        try:
            if self.limiter.hit(limit, self.namespace, *keys):  # type: ignore[arg-type]
                return None
            reset = self.limiter.get_window_stats(limit, self.namespace, *keys).reset_time  # type: ignore[arg-type]
        except Exception:  # storage unreachable: fail open
            log.warning("rate_limit_storage_unavailable", exc_info=True)
            return None
        return max(1.0, reset - time.time())

    def check_key(self, plaintext: str, method: str) -> None:
        """Raise RateLimited when this key sent too many reads or writes in the window."""
        write = method not in READ_METHODS
        wait = self._hit(
            self.writes if write else self.reads, "writes" if write else "reads", hash_key(plaintext)
        )
        if wait is not None:
            kind = "write" if write else "read"
            detail = f"too many {kind} requests for this API key; retry later"
            raise RateLimited("rate_limited", detail, retry_after_s=wait)

    def check_failed_auth(self, address: str) -> None:
        """Count a failed authentication from ``address``; raise RateLimited past the limit."""
        wait = self._hit(self.failed_auth, "failed-auth", address)
        if wait is not None:
            detail = "too many requests with a missing or wrong API key from this address"
            raise RateLimited("too_many_failed_auth", detail, retry_after_s=wait)
