"""The prediction task: raw rows in, labels and probabilities (or values) out, from the saved file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.app import app
from worker.metrics import PREDICT_SECONDS
from worker.protocol import PREDICT, ModelFileMismatch
from worker.runtime import runtime

# model storage key + sha256 -> loaded keras.Model: prediction workers keep hot models in memory.
_loaded: dict[tuple[str, str], Any] = {}
MAX_LOADED = 8


def loaded_model(path: Path, sha256: str) -> Any:
    """The model at ``path``, loaded once per process, only if its bytes match ``sha256``."""
    import keras  # TensorFlow loads here, in the worker's child process, on first use

    from worker.training.artifacts import sha256_file

    key = (str(path), sha256)
    if key not in _loaded:
        # Loaded only if the bytes are the ones recorded when the model was saved.
        if sha256_file(path) != sha256:
            raise ModelFileMismatch(f"{path.name} does not match its recorded sha256")
        if len(_loaded) >= MAX_LOADED:
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = keras.saving.load_model(path, safe_mode=True)
    return _loaded[key]


@app.task(name=PREDICT, ignore_result=False, acks_late=False)
def predict(
    storage_key: str, sha256: str, input_schema: dict[str, Any], rows: list[dict[str, Any]]
) -> list[Any]:
    """Predict raw rows with the stored model exactly as a user would with the downloaded file."""
    from worker.training.predictions import predict_rows

    with PREDICT_SECONDS.time():
        model = loaded_model(runtime().settings.data_dir / storage_key, sha256)
        return predict_rows(model, input_schema, rows)
