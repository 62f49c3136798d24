"""An ensemble of trials: one saved model, raw rows in, the mean of its members' outputs out."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from models.tabular import parse_csv
from tests.training.conftest import train
from worker.training.ensemble import build_ensemble, select_members
from worker.training.inputs import frame_to_inputs, to_tensors


def test_the_ensemble_averages_its_members_on_raw_rows(data: dict[str, Path], tmp_path: Path) -> None:
    """Three differently seeded models of a dataset with categories and blanks, joined as one file."""
    paths = []
    for seed in (1, 2, 3):
        folder = tmp_path / f"member{seed}"
        folder.mkdir()
        result, _ = train(data["mixed"], "label", {"training": {"epochs": 5, "seed": seed}}, folder)
        paths.append(folder / "model.keras")
    sha = build_ensemble(paths, tmp_path / "ensemble.keras")
    assert len(sha) == 64
    ensemble = keras.saving.load_model(tmp_path / "ensemble.keras", safe_mode=True)
    rows = parse_csv(data["mixed"].read_bytes()).frame.head(40)  # strings, blanks and NaNs as uploaded
    inputs = to_tensors(frame_to_inputs(rows, result.input_schema["inputs"]))
    members = [keras.saving.load_model(p, safe_mode=True).predict(inputs, verbose=0) for p in paths]
    averaged = ensemble.predict(inputs, verbose=0)
    np.testing.assert_allclose(averaged, np.mean(members, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(members[0], members[1]), "the members differ, so the mean is not one of them"


def test_selection_adds_a_member_only_while_the_average_improves() -> None:
    """A complementary trial joins the best one; a poor trial is left out rather than averaged in."""
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    best = np.array([0.3, 0.9, 0.2, 0.4, 0.1, 0.8, 0.6, 0.7])  # wrong-ish on rows 3 and 6
    complementary = np.array([0.2, 0.6, 0.4, 0.9, 0.3, 0.7, 0.2, 0.6])  # right where best is weak
    poor = 1.0 - y * 0.9 - 0.05  # confidently wrong everywhere
    chosen = select_members([best, poor, complementary], y, task="binary", n_classes=2, most=3)
    assert chosen == [0, 2]
    assert select_members([best, poor], y, task="binary", n_classes=2, most=3) == [0]
    values = np.array([1.0, 2.0, 3.0])
    over, under = values + 0.5, values - 0.5  # each off by a constant; their mean is exact
    assert select_members([over, under], values, task="regression", n_classes=0, most=2) == [0, 1]
