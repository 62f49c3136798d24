"""Task names and messages shared by producers (the API) and workers: the API's only worker import."""

from __future__ import annotations

RUN_JOB = "tuneforge.run_job"
PREDICT = "tuneforge.predict"
SEARCH_STEP = "tuneforge.search_step"
RUN_TRIAL = "tuneforge.run_trial"
RUN_POPULATION = "tuneforge.run_population"
EXPORT = "tuneforge.export"


def export_suffix(fmt: str) -> str:
    """How an export's file name ends: SavedModel, a .tar.gz of its folder; ONNX, one file."""
    return ".onnx" if fmt == "onnx" else f".{fmt}.tar.gz"


class ModelFileMismatch(Exception):
    """Raised by a prediction worker when a model file's sha256 is not the one recorded for it."""


def run_job_args(job_id: str) -> list[str]:
    """Positional arguments of a ``RUN_JOB`` message: ids only, never ORM objects."""
    return [job_id]
