"""Training checkpoints: a run's state on disk, so a re-claimed run resumes instead of restarting.

One ``.npz`` file per run: named arrays (weights, optimizer slots, early-stopping state, RNG) and a
JSON ``meta`` entry (epoch, history, probe readings, which program wrote it). Written to a temporary
file and renamed, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

META = "__meta__"


@dataclass
class Checkpoint:
    """Where one run keeps its state, saved at most every ``every_s`` seconds (at epoch boundaries)."""

    path: Path
    every_s: float = 10.0
    _last: float = field(default_factory=time.monotonic, repr=False)

    def due(self) -> bool:
        """Whether enough time passed since the run started or last saved."""
        return time.monotonic() - self._last >= self.every_s

    def save(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Write atomically; a save that took long spaces the next ones out (at most ~10% of the time)."""
        started = time.monotonic()
        partial = self.path.with_name(self.path.name + ".partial")
        payload: dict[str, Any] = arrays | {META: np.frombuffer(json.dumps(meta).encode(), np.uint8)}
        with partial.open("wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)
        took = time.monotonic() - started
        self.every_s = max(self.every_s, 10 * took)
        self._last = time.monotonic()

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The saved arrays and meta, or None when there is no (readable) checkpoint."""
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files if name != META}
                meta = json.loads(archive[META].tobytes())
        except (OSError, ValueError, KeyError):
            return None
        return arrays, meta

    def meta(self) -> dict[str, Any] | None:
        """The saved meta alone (the arrays stay on disk), or None when there is no readable checkpoint."""
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                return dict(json.loads(archive[META].tobytes()))
        except (OSError, ValueError, KeyError):
            return None

    def epoch(self) -> int:
        """The last epoch the checkpoint holds (0 when there is none)."""
        meta = self.meta()  # the arrays are not needed to say which epoch it holds
        return int(meta["epoch"]) if meta else 0

    def discard(self) -> None:
        """Delete it (the run ended: nothing to resume)."""
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".partial").unlink(missing_ok=True)
