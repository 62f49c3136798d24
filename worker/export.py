"""The export task: a stored model in another format, made and checked by a prediction worker."""

from __future__ import annotations

from typing import Any

from models.spec import JobSpec
from worker.app import app
from worker.coordinator import search_parts
from worker.predict import loaded_model
from worker.protocol import EXPORT, export_suffix
from worker.runtime import runtime


@app.task(name=EXPORT, ignore_result=False, acks_late=False)
def export(
    storage_key: str, sha256: str, input_schema: dict[str, Any], fmt: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Export the model (its sha256 checked first) and check it on the job's validation rows."""
    from worker.training.data import load_prepared
    from worker.training.exports import export_onnx, export_saved_model
    from worker.training.inputs import frame_to_inputs, to_tensors

    settings = runtime().settings
    model = loaded_model(settings.data_dir / storage_key, sha256)
    # A search's stored spec holds its distributions: its base spec splits the rows the same way.
    spec = search_parts(data["spec"])[0] if data["kind"] == "search" else JobSpec.model_validate(data["spec"])
    rows = load_prepared(
        settings.data_dir / data["dataset_key"],
        has_header=data["has_header"],
        target=data["target"],
        spec=spec,
    ).x_val
    inputs = frame_to_inputs(rows, input_schema["inputs"])
    key = storage_key.removesuffix(".keras") + export_suffix(fmt)
    if fmt == "onnx":  # numeric inputs only: the API refuses models with categorical columns
        return {"storage_key": key, **export_onnx(model, settings.data_dir / key, inputs)}
    return {"storage_key": key, **export_saved_model(model, settings.data_dir / key, to_tensors(inputs))}
