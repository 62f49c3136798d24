"""The API's memory of live keys: hits skip the lookup, unknown keys are never remembered, TTL ends it."""

from __future__ import annotations

import time

from api.key_cache import KeyCache


class Lookups:
    """A key table that counts how often it is asked."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table, self.calls = table, 0

    def __call__(self, plaintext: str) -> str | None:
        self.calls += 1
        return self.table.get(plaintext)


def test_a_live_key_is_looked_up_once_within_the_ttl() -> None:
    lookups = Lookups({"tfg_a": "tenant-a"})
    cache = KeyCache(ttl_s=60)
    assert [cache.tenant_for("tfg_a", lookups) for _ in range(5)] == ["tenant-a"] * 5
    assert lookups.calls == 1


def test_unknown_keys_are_asked_every_time_so_a_new_key_works_at_once() -> None:
    lookups = Lookups({})
    cache = KeyCache(ttl_s=60)
    assert cache.tenant_for("tfg_x", lookups) is None
    lookups.table["tfg_x"] = "tenant-x"
    assert cache.tenant_for("tfg_x", lookups) == "tenant-x"
    assert lookups.calls == 2


def test_a_revoked_key_stops_working_once_the_ttl_passes() -> None:
    lookups = Lookups({"tfg_a": "tenant-a"})
    cache = KeyCache(ttl_s=0.2)
    assert cache.tenant_for("tfg_a", lookups) == "tenant-a"
    del lookups.table["tfg_a"]  # revoked by another process
    time.sleep(0.3)
    assert cache.tenant_for("tfg_a", lookups) is None


def test_ttl_zero_turns_the_memory_off() -> None:
    lookups = Lookups({"tfg_a": "tenant-a"})
    cache = KeyCache(ttl_s=0)
    cache.tenant_for("tfg_a", lookups)
    cache.tenant_for("tfg_a", lookups)
    assert lookups.calls == 2
