"""Which program sizes are already compiled, so a population can be cut to reuse them.

A compile costs seconds on a CPU; a program already in the on-disk compilation cache loads in a
fraction of that. Every search meets new trials, so its populations rarely need exactly the sizes the
last one compiled; knowing those sizes lets the split pad a group into one of them when the padding
costs less than a new compile. The record sits beside JAX's cache (``JAX_COMPILATION_CACHE_DIR``) and
is shared by every worker using it; a lost or stale entry only costs a compile, never a wrong result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from models.atomic import write_whole

log = structlog.get_logger(__name__)

Size = tuple[int, int, int]  # hidden layers, units per hidden layer, members (all padded)
RECORD = "tuneforge-programs.json"
MAX_SIZES_PER_FAMILY = 32  # the newest kept: a search's populations meet a handful
MAX_FAMILIES = 64  # a family per dataset shape and training rules: the most recently used kept

# This process's programs (still in memory, or in its cache folder): without a cache folder, the only
# record; forgotten when the in-memory caches are dropped (memory.bound_programs).
_seen: dict[str, list[Size]] = {}


def _record() -> Path | None:
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(folder) / RECORD if folder else None


def _read(path: Path) -> dict[str, list[Size]]:
    try:
        raw = json.loads(path.read_bytes())
        return {family: [(int(d), int(w), int(m)) for d, w, m in sizes] for family, sizes in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # none yet, or unreadable (another format, a partial disk): every size counts as new


def _with(record: dict[str, list[Size]], family: str, size: Size) -> dict[str, list[Size]]:
    """``record`` with ``size`` the newest of ``family`` and ``family`` the most recently used."""
    sizes = [s for s in record.pop(family, []) if s != size] + [size]
    record[family] = sizes[-MAX_SIZES_PER_FAMILY:]
    return dict(list(record.items())[-MAX_FAMILIES:])


def compiled_sizes(family: str) -> set[Size]:
    """Sizes of programs of ``family`` (everything static but the size) compiled before."""
    path = _record()
    known = _read(path) if path is not None else {}
    return set(known.get(family, [])) | set(_seen.get(family, []))


def remember(family: str, size: Size) -> None:
    """Note that a program of ``family`` and ``size`` is compiled (and cached) by this process."""
    global _seen
    _seen = _with(_seen, family, size)
    path = _record()
    if path is None or not path.parent.is_dir():
        return
    # Workers sharing the folder may race: the last writer wins, and a size it drops costs one compile.
    try:
        write_whole(path, json.dumps(_with(_read(path), family, size)).encode())
    except OSError as exc:  # a hint, not a result: training goes on without it
        log.warning("program_record_not_written", path=str(path), error=str(exc))


def forget_in_memory() -> None:
    """This process's in-memory programs were dropped: only the cache folder's record still holds."""
    _seen.clear()
