"""A per-process memory of which tenant an API key belongs to, so polling skips the key lookup."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cachetools import TTLCache

from models.store import hash_key


class KeyCache:
    """Tenants of recently seen live keys, kept ``ttl_s`` seconds; unknown keys are never kept."""

    def __init__(self, ttl_s: float, maxsize: int = 10_000) -> None:
        self._ttl_s = ttl_s
        # Keyed by the key's hash so the process holds no plaintext keys.
        self._tenants: TTLCache[str, str] = TTLCache(maxsize=maxsize, ttl=max(ttl_s, 1e-6))
        self._lock = threading.Lock()  # TTLCache is not thread-safe; sync routes run in a threadpool.

    def remembered(self, plaintext: str) -> str | None:
        """The key's tenant if it was seen live within the TTL, without touching the database."""
        with self._lock:
            return self._tenants.get(hash_key(plaintext))

    def tenant_for(self, plaintext: str, lookup: Callable[[str], str | None]) -> str | None:
        """The key's tenant from memory, else from ``lookup`` (remembered only when live)."""
        tenant = self.remembered(plaintext)
        if tenant is None:
            tenant = lookup(plaintext)
            if tenant is not None and self._ttl_s > 0:
                with self._lock:
                    self._tenants[hash_key(plaintext)] = tenant
        return tenant
