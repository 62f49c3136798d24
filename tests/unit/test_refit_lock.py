"""One refit per search: the reaper's repeated nudges must not start the same refit twice."""

from __future__ import annotations

import os
import time
from pathlib import Path

from worker.refit import refit_lock


def test_a_held_refit_is_not_started_again_and_a_lost_one_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "trl_x.refit.lock"
    with refit_lock(lock, stale_after_s=60) as first:
        assert first and lock.exists()
        with refit_lock(lock, stale_after_s=60) as second:
            assert not second, "a second worker nudged meanwhile must leave it"
        assert lock.exists(), "the refusal left the holder's lock alone"
    assert not lock.exists(), "released when the refit ends"
    lock.touch()
    old = time.time() - 120
    os.utime(lock, (old, old))  # its holder died two minutes ago
    with refit_lock(lock, stale_after_s=60) as taken:
        assert taken
