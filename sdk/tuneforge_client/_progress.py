"""The progress bar of wait(): trials or epochs, and the best score so far, on a terminal only."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from .types import Job


class JobProgress:
    """A tqdm bar fed with successive states of one job."""

    def __init__(self, job_id: str, enabled: bool | None) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = tqdm(desc=job_id, disable=not show, unit="step", leave=True)

    def update(self, job: Job) -> None:
        """Redraw for ``job``: trials for a search, epochs for a train job."""
        searching = job.kind == "search"
        total = job.progress.trials_total if searching else job.progress.epochs
        done = job.progress.trials_done if searching else job.progress.epoch
        self.bar.unit = "trial" if searching else "epoch"
        self.bar.total = total or None
        self.bar.n = done
        postfix: dict[str, str] = {"status": job.status}
        if job.best and job.best.get("score") is not None:
            postfix["best"] = f"{job.best['score']:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        """Leave the final state on screen."""
        self.bar.close()
