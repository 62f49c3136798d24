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

from models.atomic import write_whole

Size = tuple[int, int, int]  # hidden layers, units per hidden layer, members (all padded)
RECORD = "tuneforge-programs.json"
MAX_SIZES_PER_FAMILY = 32  # the newest kept: a search's populations meet a handful

_seen: dict[str, list[Size]] = {}  # this process's, when no cache folder is set


def _record() -> Path | None:
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(folder) / RECORD if folder else None


def _read(path: Path) -> dict[str, list[Size]]:
    try:
        raw = json.loads(path.read_bytes())
        return {family: [(int(d), int(w), int(m)) for d, w, m in sizes] for family, sizes in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}  # none yet, or unreadable: every size counts as new


def compiled_sizes(family: str) -> set[Size]:
    """Sizes of programs of ``family`` (everything static but the size) compiled before."""
    path = _record()
    known = _read(path) if path is not None else {}
    return set(known.get(family, [])) | set(_seen.get(family, []))


def remember(family: str, size: Size) -> None:
    """Note that a program of ``family`` and ``size`` has been compiled (and cached)."""
    _seen[family] = ([s for s in _seen.get(family, []) if s != size] + [size])[-MAX_SIZES_PER_FAMILY:]
    path = _record()
    if path is None or not path.parent.is_dir():
        return
    known = _read(path)
    sizes = [s for s in known.get(family, []) if s != size] + [size]
    known[family] = sizes[-MAX_SIZES_PER_FAMILY:]
    # Workers sharing the folder may race: the last writer wins, and a size it drops costs one compile.
    write_whole(path, json.dumps(known).encode())
