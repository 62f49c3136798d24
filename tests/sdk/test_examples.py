"""The SDK example, run as written, from a virtual environment holding only tuneforge-client."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_client_installs_without_the_server_stack(client_only_python: Path) -> None:
    """Only httpx, httpx-sse, pydantic and tqdm come with it: no TensorFlow, SQLAlchemy, FastAPI or Celery."""
    code = (
        "import importlib.util, tuneforge_client; "
        "print([m for m in ('tensorflow', 'keras', 'sqlalchemy', 'fastapi', 'celery') "
        "if importlib.util.find_spec(m)])"
    )
    result = subprocess.run([str(client_only_python), "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sdk_example_runs_a_search_end_to_end(
    client_only_python: Path,
    working_base_url: str,
    api_key: str,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    mode: str,
) -> None:
    """examples/sdk_search.py: upload, the guide's search (2 trials here), leaderboard, predictions."""
    env = os.environ | {"TUNEFORGE_BASE_URL": working_base_url, "TUNEFORGE_API_KEY": api_key}
    command = [
        str(client_only_python),
        str(ROOT / "examples" / "sdk_search.py"),
        str(csvs["breast_cancer"]),
        "--target",
        "target",
        "--max-trials",
        "2",
    ] + (["--async"] if mode == "async" else [])
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "succeeded" in lines[0]
    assert sum(1 for line in lines if "'num_layers'" in line) == 2
    assert sum(1 for line in lines if line.startswith("prediction: {'label'")) == 3
