"""The embedded producer (filesystem broker, file result backend), without any worker running."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.queue import JobQueue
from models.errors import ServiceUnavailable
from models.settings import Settings


def test_a_predict_nobody_answers_is_a_503_not_a_crash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, predict_timeout_s=0.5)
    queue = JobQueue(settings)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            queue.predict(storage_key="models/x.keras", sha256="0" * 64, input_schema={}, rows=[{"a": 1}])
        assert raised.value.code == "prediction_timeout"
    finally:
        queue.close()


def test_the_broker_keeps_its_control_folder_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    queue = JobQueue(Settings(data_dir=data))
    try:
        queue.send_run_job("job_x")
    finally:
        queue.close()
    assert not (tmp_path / "control").exists(), "kombu wrote ./control in the working directory"
    assert (data / "broker" / "control").is_dir()
