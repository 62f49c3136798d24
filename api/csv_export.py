"""CSV the service emits (a job's leaderboard), safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from api.schemas import TrialOut

# A text cell starting with one of these is read as a formula by spreadsheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula, prefixed with ``'``; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    return neutralise(value)


def leaderboard_csv(trials: list[TrialOut]) -> str:
    """One row per trial: its number, status, score, every hyperparameter and final metric."""
    hyperparameters = sorted({name for t in trials for name in t.hyperparameters})
    metrics = sorted({name for t in trials for name in ((t.metrics or {}).get("final") or {})})
    header = ["number", "id", "status", "score", *hyperparameters, *metrics, "error", "worker"]
    header += ["started_at", "finished_at"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([neutralise(name) for name in header])
    for t in trials:
        final = (t.metrics or {}).get("final") or {}
        row = [t.number, t.id, t.status, t.score]
        row += [t.hyperparameters.get(name) for name in hyperparameters]
        row += [final.get(name) for name in metrics]
        row += [t.error, t.worker, t.started_at.isoformat(), t.finished_at and t.finished_at.isoformat()]
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()
