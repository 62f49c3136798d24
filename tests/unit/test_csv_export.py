"""The leaderboard as CSV: one row per trial, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from api.csv_export import leaderboard_csv, neutralise
from api.schemas import TrialOut


def _trial(number: int, **hyperparameters: object) -> TrialOut:
    return TrialOut(
        id=f"trl_{number}",
        number=number,
        status="completed",
        hyperparameters=hyperparameters,
        score=0.5 + number / 10,
        metrics={"final": {"val_accuracy": 0.5 + number / 10, "val_loss": -0.25}},
        diagnostics=None,
        error="=cmd|' /C calc'!A0" if number else None,
        started_at=datetime(2026, 11, 29, tzinfo=UTC),
        finished_at=None,
        worker="worker-1 host:1",
    )


def test_formula_starts_are_neutralised_and_numbers_stay_numbers() -> None:
    for hostile in ("=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(hostile) == "'" + hostile
    assert neutralise("adam") == "adam" and neutralise(-0.5) == -0.5 and neutralise(None) is None


def test_the_leaderboard_has_a_row_per_trial_and_no_live_formula() -> None:
    text = leaderboard_csv([_trial(0, optimizer="adam", units0=8), _trial(1, optimizer="=HYPERLINK(x)")])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["number"] for r in rows] == ["0", "1"]
    assert rows[0]["optimizer"] == "adam" and rows[0]["units0"] == "8" and rows[1]["units0"] == ""
    assert rows[1]["optimizer"] == "'=HYPERLINK(x)" and rows[1]["error"].startswith("'=")
    assert rows[0]["val_loss"] == "-0.25"  # a number, not text: left as is
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value
