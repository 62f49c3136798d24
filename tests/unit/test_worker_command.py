"""Worker command lines: training workers yield the CPU to the API and the predictor."""

from __future__ import annotations

from pathlib import Path

from api.embedded import worker_command


def test_trainer_runs_niced_and_predictor_does_not(tmp_path: Path) -> None:
    trainer = worker_command(queue="q", concurrency=1, beat=True, data_dir=tmp_path, nice=10)
    predictor = worker_command(queue="p", concurrency=1, beat=False, data_dir=tmp_path)
    assert trainer[:3] == ["nice", "-n", "10"] and "celery" in trainer
    assert predictor[0] != "nice" and "celery" in predictor
