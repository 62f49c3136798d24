"""Run the real training engine in process (real Keras, no database) on generated CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.spec import resolve_spec
from models.status import JobKind
from models.tabular import parse_csv
from tests.support import generate_csvs
from worker.training.baselines import forget_baselines
from worker.training.fast import programs
from worker.training.reporting import Epochs
from worker.training.train import TrainResult, run_training


class Collector:
    """A Reporter that keeps every epoch, as the recorder would store them."""

    def __init__(self) -> None:
        self.epochs: Epochs = []

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        self.epochs.append((epoch, values, grad_norms))

    def on_epochs(self, epochs: Epochs) -> None:
        self.epochs.extend(epochs)

    def should_stop(self) -> bool:
        return False

    def handing_back(self) -> bool:
        return False


def train(csv: Path, target: str, spec: dict[str, Any], tmp: Path) -> tuple[TrainResult, Collector]:
    """Resolve ``spec`` against the CSV as the API does, then train as the worker does."""
    table = parse_csv(csv.read_bytes())
    resolved = resolve_spec(spec, kind=JobKind.TRAIN, target=target, columns=table.columns)
    collector = Collector()
    result = run_training(
        csv_path=csv,
        has_header=table.has_header,
        target=target,
        spec=resolved,
        reporter=collector,
        model_path=tmp / "model.keras",
    )
    return result, collector


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-learn's datasets plus a synthetic one whose features differ by orders of magnitude."""
    folder = tmp_path_factory.mktemp("training-data")
    files = generate_csvs(folder)
    rng = np.random.default_rng(3)
    n = 600
    # Two informative features on scales 1e-3 and 1e3, plus a loud noise feature on 1e5.
    small, big, noise = rng.normal(0, 1e-3, n), rng.normal(0, 1e3, n), rng.normal(0, 1e5, n)
    label = ((small / 1e-3 + big / 1e3) > 0).astype(int)
    frame = pd.DataFrame({"small": small, "big": big, "noise": noise, "label": label})
    files["scales"] = folder / "scales.csv"
    frame.to_csv(files["scales"], index=False)
    return files


@pytest.fixture(autouse=True)
def no_compiled_program_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's populations are split as if nothing was compiled before: a program another test
    compiled would pad members differently and hide what the test checks."""
    monkeypatch.setattr(programs, "_seen", {})
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)


@pytest.fixture(autouse=True)
def no_kept_baselines() -> None:
    """Each test fits its own baselines: one kept by another test on the same file and split would hide
    what the test checks (how often they are fitted, or a stale score)."""
    forget_baselines()
