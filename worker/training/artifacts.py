"""Saving a model as one ``.keras`` file and fingerprinting it."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import keras


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: keras.Model, path: Path) -> str:
    """Write the model atomically (temp file then rename) and return its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: two steps of one search may write the same final file at once.
    partial = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.partial.keras")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # The fast engine trains outside Keras, so the model's optimizer never made its slots: saved
        # so, load_model warns it skips them. Built (at zero, as a fresh optimizer starts), it loads quietly.
        optimizer.build(model.trainable_variables)
    try:
        model.save(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return sha256_file(path)
