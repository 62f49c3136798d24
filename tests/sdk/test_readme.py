"""The README's SDK example, executed exactly as written, from a client-only virtual environment."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PIMA_COLUMNS = [
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
]


def readme_python_example() -> str:
    """The first ```python block of the README's SDK section."""
    section = (ROOT / "README.md").read_text().split("## Python SDK and CLI", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's SDK section has a python example"
    return match.group(1)


def write_pima_like(folder: Path) -> None:
    """A generated stand-in with Pima's columns (tests never read ../shared)."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(300, len(PIMA_COLUMNS))) * 10 + 50, columns=PIMA_COLUMNS).round(1)
    frame["Outcome"] = ((frame["Glucose"] + frame["BMI"] - 100 + rng.normal(0, 5, 300)) > 0).astype(int)
    frame.to_csv(folder / "pima-indians-diabetes.csv", index=False)


def test_readme_sdk_example_runs_as_written(
    client_only_python: Path,
    working_base_url: str,
    api_key: str,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    """Upload, the guide's 10-trial search, wait, leaderboard, predict: the README's code, unchanged."""
    write_pima_like(tmp_path)
    script = tmp_path / "readme_example.py"
    script.write_text(readme_python_example())
    env = os.environ | {"TUNEFORGE_BASE_URL": working_base_url, "TUNEFORGE_API_KEY": api_key}
    result = subprocess.run(
        [str(client_only_python), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert sum(1 for line in lines if "'num_layers'" in line) == 10
    assert lines[-1].startswith("[{'label': ")
