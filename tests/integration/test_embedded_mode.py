"""Embedded mode: the README's first command (SQLite, a local broker folder, a real worker)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from models.db import make_engine, make_sessionmaker
from models.store import JobStore, TrialStore

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_trains_on_sqlite_without_redis(tmp_path: Path) -> None:
    """examples/quickstart.py: val accuracy >= 0.95, every epoch stored in SQLite, model loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    env["TUNEFORGE_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    accuracy = float(re.search(r"validation accuracy: ([0-9.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.95

    key_file = tmp_path / "api_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700, "the data folder is the owner's only"
    assert stat.S_IMODE((tmp_path / "tuneforge.db").stat().st_mode) == 0o600
    assert not list(tmp_path.glob("tmp/*")), "no partial files left behind"
    engine = make_engine(f"sqlite:///{tmp_path / 'tuneforge.db'}")
    with make_sessionmaker(engine)() as session:
        from sqlalchemy import select

        from models.tables import Job

        job = session.scalars(select(Job)).one()
        assert job.status == "succeeded"
        epochs = TrialStore(session).epochs(job.id)
        assert [row.epoch for _, row in epochs] == list(range(1, len(epochs) + 1))
        assert len(epochs) == job.epoch
        changes = [e.to_status for e in JobStore(session).events(job.id) if e.from_status != e.to_status]
        assert changes == ["queued", "running", "succeeded"]
        model_id = job.best["model_id"] if job.best else None
    engine.dispose()
    model = keras.saving.load_model(tmp_path / "examples" / f"{model_id}.keras", safe_mode=True)
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize("command", [["keys", "create", "--tenant", "acme"], ["migrate"]])
def test_cli_commands_work_on_the_embedded_default(tmp_path: Path, command: list[str]) -> None:
    """`tuneforge migrate` and `tuneforge keys create` run against the embedded SQLite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    env["TUNEFORGE_DATA_DIR"] = str(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "api.cli", "migrate"], env=env, check=True, timeout=60, capture_output=True
    )
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *command], env=env, timeout=60, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    if command[0] == "keys":
        assert re.fullmatch(r"tfg_[A-Za-z0-9_-]{40,}\n", result.stdout)
