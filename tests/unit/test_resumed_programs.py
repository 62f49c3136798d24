"""A run resuming a fast-engine checkpoint goes back into the program size that wrote it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.spec import JobSpec
from worker.training.checkpoints import Checkpoint
from worker.training.fast.population import Member, _resumed_groups


class Silent:
    """A reporter nobody reads."""


def _member(tmp_path: Path, name: str, meta: dict | None) -> Member:
    checkpoint = Checkpoint(tmp_path / f"{name}.npz")
    if meta is not None:
        checkpoint.save({"leaf_0": np.zeros(3)}, meta)
    spec = JobSpec.model_validate({"model": {"layers": [{"units": 8}]}})
    return Member(spec=spec, reporter=Silent(), checkpoint=checkpoint)  # type: ignore[arg-type]


def test_resumed_members_keep_their_program_size_and_the_rest_start_afresh(tmp_path: Path) -> None:
    members = [
        _member(tmp_path, "a", {"engine": "fast", "size": [12, 128, 6]}),
        _member(tmp_path, "b", None),  # no checkpoint yet
        _member(tmp_path, "c", {"engine": "fast", "size": [12, 128, 6]}),
        _member(tmp_path, "d", {"engine": "reference", "epoch": 3}),  # the other engine's
        _member(tmp_path, "e", {"engine": "fast", "size": [2, 32, 1]}),
    ]
    groups, fresh = _resumed_groups(members, [0, 1, 2, 3, 4])
    assert sorted(groups) == [([0, 2], (12, 128, 6)), ([4], (2, 32, 1))]
    assert fresh == [1, 3]
