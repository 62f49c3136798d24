"""How a population is cut into compiled programs: a few sizes shared across searches, few on small data."""

from __future__ import annotations

from models.spec import JobSpec
from worker.training.fast.buckets import program_size, split_by_shape


def _net(*units: int, epochs: int = 50) -> JobSpec:
    return JobSpec.model_validate(
        {"model": {"layers": [{"units": u} for u in units]}, "training": {"epochs": epochs}}
    )


def test_a_program_is_sized_by_its_deepest_and_widest_member_on_the_ladders() -> None:
    specs = [_net(128), _net(96, 8, 8), _net(40, *[8] * 9)]
    assert program_size(specs) == (12, 128)  # depth 10 padded to 12; every layer as wide as the widest
    assert program_size([_net(20, 20)]) == (2, 32)
    assert program_size([_net()])[0] == 0  # no hidden layer: a linear model


def test_searches_with_different_trials_share_a_program() -> None:
    one = [_net(120, 8, 8), _net(72, *[8] * 9)]
    other = [_net(104), _net(128, *[8] * 8), _net(16, 8)]
    assert program_size(one) == program_size(other)


def test_deep_narrow_members_are_not_padded_to_a_wide_one_on_large_data() -> None:
    specs = [_net(128), _net(*[8] * 10), _net(*[8] * 9)]
    assert split_by_shape(specs, n_features=20, rows=600) == [[0, 1, 2]]  # one compile pays more
    assert sorted(split_by_shape(specs, n_features=20, rows=500_000)) == [[0], [1, 2]]


def test_small_data_keeps_one_program_and_large_data_splits_by_shape() -> None:
    specs = [_net(8), _net(16), _net(64, 64), _net(64, 64, 64)]
    assert split_by_shape(specs, n_features=20, rows=600) == [[0, 1, 2, 3]]
    groups = split_by_shape(specs, n_features=20, rows=500_000)
    assert len(groups) > 1
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3]
    assert [0, 1] in groups  # the small networks are not padded to the large ones


def test_a_population_of_a_thousand_members_is_split_into_a_few_programs() -> None:
    # A GPU worker's population: the split once took minutes here (cubic in the member count).
    specs = [_net(*[8 * (1 + i % 16)] * (1 + i % 10), epochs=50) for i in range(1024)]
    groups = split_by_shape(specs, n_features=8, rows=100_000)
    assert 1 < len(groups) <= 3
    assert sorted(i for g in groups for i in g) == list(range(1024))
    deepest = [max(len(specs[i].model.layers) for i in g) for g in groups]
    assert sorted(deepest) == deepest and deepest[-1] == 10  # runs of similar depth, shallowest first
