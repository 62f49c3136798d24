"""Files written whole: a reader sees either no file or all of it, never a half-written one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

# A name no reader looks for: the broker takes only ``*.msg`` files, the workers only ``*.json`` cards.
PARTIAL_SUFFIX = ".partial"


def write_whole(path: str | bytes | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a name of its own, then rename it into place (atomic)."""
    target = os.fsdecode(path)
    partial = os.path.join(os.path.dirname(target), f".{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
