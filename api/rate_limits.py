"""Per-key request rate limits and a per-address limit on failed authentication (the ``limits`` library).

Counters live in Redis when the broker is Redis (shared by every API process), else in memory. A
limiter whose storage is unreachable lets requests through: rate limiting must never take the API down.
"""

from __future__ import annotations

import asyncio
import time
import weakref

import structlog
from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from models.errors import RateLimited
from models.settings import Settings
from models.store import hash_key

log = structlog.get_logger(__name__)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimits:
    """The API's limiters: reads and writes per API key, failed authentication per client address."""

    def __init__(self, settings: Settings) -> None:
        broker = settings.resolved_broker_url()
        # The asyncio clients: a limiter round trip must not block the event loop every request.
        redis = broker.startswith(("redis://", "rediss://"))
        url = f"async+{broker}" if redis else "async+memory://"
        options: dict[str, float | str | bool] = (
            {"implementation": "redispy", "socket_timeout": 0.2, "socket_connect_timeout": 0.2}
            if redis
            else {}
        )
        self._url, self._options = url, options
        # Redis' asyncio connections belong to the event loop that opened them: one limiter per loop
        # (one loop per API process when served; a test client may run several). Memory is shared.
        self._shared = None if redis else FixedWindowRateLimiter(storage_from_string(url))
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FixedWindowRateLimiter] = (
            weakref.WeakKeyDictionary()
        )
        self.namespace = f"tuneforge:{settings.queue}"
        self.reads = parse(settings.rate_limit_reads)
        self.writes = parse(settings.rate_limit_writes)
        self.failed_auth = parse(settings.rate_limit_failed_auth)

    def _limiter(self) -> FixedWindowRateLimiter:
        if self._shared is not None:
            return self._shared
        loop = asyncio.get_running_loop()
        limiter = self._per_loop.get(loop)
        if limiter is None:
            limiter = FixedWindowRateLimiter(storage_from_string(self._url, **self._options))
            self._per_loop[loop] = limiter
        return limiter

    async def _hit(self, limit: object, *keys: str) -> float | None:
        """Count one request; seconds until the window resets when over the limit, else None."""
        limiter = self._limiter()
        try:
            if await limiter.hit(limit, self.namespace, *keys):  # type: ignore[arg-type]
                return None
            stats = await limiter.get_window_stats(limit, self.namespace, *keys)  # type: ignore[arg-type]
            reset = stats.reset_time
        except Exception:  # storage unreachable: fail open
            log.warning("rate_limit_storage_unavailable", exc_info=True)
            return None
        return max(1.0, reset - time.time())

    async def check_key(self, plaintext: str, method: str) -> None:
        """Raise RateLimited when this key sent too many reads or writes in the window."""
        write = method not in READ_METHODS
        wait = await self._hit(
            self.writes if write else self.reads, "writes" if write else "reads", hash_key(plaintext)
        )
        if wait is not None:
            kind = "write" if write else "read"
            detail = f"too many {kind} requests for this API key; retry later"
            raise RateLimited("rate_limited", detail, retry_after_s=wait)

    async def check_failed_auth(self, address: str) -> None:
        """Count a failed authentication from ``address``; raise RateLimited past the limit."""
        wait = await self._hit(self.failed_auth, "failed-auth", address)
        if wait is not None:
            detail = "too many requests with a missing or wrong API key from this address"
            raise RateLimited("too_many_failed_auth", detail, retry_after_s=wait)
