"""Checks on request values that the database or the serializer would otherwise fail on (as a 500)."""

from __future__ import annotations

import math
from typing import Any

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL; a name or id with one is never valid
MAX_NESTING = 32  # the deepest real spec is 5 levels; JSON nested hundreds deep breaks serializers


def check_storable(value: Any) -> None:
    """Raise ValueError if ``value`` nests deeper than MAX_NESTING or holds a non-finite number."""
    stack: list[tuple[Any, int]] = [(value, 1)]  # iterative: deep input must not exhaust the stack
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                raise ValueError(f"the spec is nested more than {MAX_NESTING} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("the spec holds NaN or an infinity; every number must be finite")
        elif isinstance(item, str) and "\x00" in item:
            raise ValueError("the spec holds a NUL character")
