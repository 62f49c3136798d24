"""How a population is cut into compiled programs: narrow where its members are, few on small data."""

from __future__ import annotations

from models.spec import JobSpec
from worker.training.fast.buckets import layer_widths, split_by_shape


def _net(*units: int, epochs: int = 50) -> JobSpec:
    return JobSpec.model_validate(
        {"model": {"layers": [{"units": u} for u in units]}, "training": {"epochs": epochs}}
    )


def test_a_shallow_wide_member_does_not_widen_the_deeper_layers() -> None:
    # The guide's search early on: a wide first layer, then layers of 8, at depths 1 to 10.
    specs = [_net(128), _net(96, 8, 8), _net(40, *[8] * 9)]
    widths, last = layer_widths(specs)
    assert widths == (128, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8)  # depth 10 padded to 12, each layer narrow
    assert last == 128  # the output reads each member's own last layer, the widest of them fits


def test_searches_with_different_trials_share_a_program() -> None:
    one = [_net(120, 8, 8), _net(72, *[8] * 9)]
    other = [_net(104), _net(128, *[8] * 8), _net(16, 8)]
    assert layer_widths(one) == layer_widths(other)


def test_small_data_keeps_one_program_and_large_data_splits_by_shape() -> None:
    specs = [_net(8), _net(16), _net(64, 64), _net(64, 64, 64)]
    assert split_by_shape(specs, n_features=20, rows=600) == [[0, 1, 2, 3]]
    groups = split_by_shape(specs, n_features=20, rows=500_000)
    assert len(groups) > 1
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3]
    assert [0, 1] in groups  # the small networks are not padded to the large ones
