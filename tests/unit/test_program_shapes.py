"""How a population is cut into compiled programs: a few sizes shared across searches, few on small data,
and programs compiled before reused where padding into them costs less than a compile."""

from __future__ import annotations

import itertools

from models.spec import JobSpec
from worker.training.fast.buckets import split_by_shape


def _net(*units: int, epochs: int = 50) -> JobSpec:
    return JobSpec.model_validate(
        {"model": {"layers": [{"units": u} for u in units]}, "training": {"epochs": epochs}}
    )


def _sizes(specs: list[JobSpec], **kwargs: object) -> list[tuple[int, int, int]]:
    return [size for _, size in split_by_shape(specs, n_features=20, rows=600, **kwargs)]  # type: ignore[arg-type]


def test_a_program_is_sized_by_its_deepest_and_widest_member_on_the_ladders() -> None:
    specs = [_net(128), _net(96, 8, 8), _net(40, *[8] * 9)]
    # depth 10 (a rung of the ladder); every layer as wide as the widest; 3 members
    assert _sizes(specs) == [(10, 128, 3)]
    assert _sizes([_net(20, 20)]) == [(2, 32, 1)]
    assert _sizes([_net(*[20] * 7)]) == [(8, 32, 1)]  # depth 7 padded to 8
    assert _sizes([_net()]) == [(0, 8, 1)]  # no hidden layer: a linear model
    assert _sizes([_net(8)] * 5) == [(1, 8, 6)]  # five members padded to six


def test_searches_with_different_trials_share_a_program() -> None:
    one = [_net(120, 8, 8), _net(72, *[8] * 9), _net(8)]
    other = [_net(104), _net(128, *[8] * 8), _net(16, 8)]
    assert _sizes(one) == _sizes(other) == [(10, 128, 3)]


def test_a_group_runs_in_a_larger_program_compiled_before_rather_than_compile_its_own() -> None:
    specs = [_net(64, 64, 64), _net(32, 32)] * 2
    assert _sizes(specs) == [(3, 64, 4)]
    assert _sizes(specs, compiled=[(6, 128, 6)]) == [(6, 128, 6)]  # padding is cheaper than a compile
    # On large data the padding costs more than a compile: the group gets its own program.
    groups = split_by_shape(specs, n_features=20, rows=500_000, compiled=[(32, 1024, 64)])
    assert [size for _, size in groups] != [(32, 1024, 64)]
    # A linear group never runs in a program with hidden layers (its output reads the inputs).
    assert _sizes([_net(), _net()], compiled=[(1, 8, 2)]) == [(0, 8, 2)]


def test_deep_narrow_members_are_not_padded_to_a_wide_one_on_large_data() -> None:
    specs = [_net(128), _net(*[8] * 10), _net(*[8] * 9)]
    assert [g for g, _ in split_by_shape(specs, n_features=20, rows=600)] == [[0, 1, 2]]  # one compile
    groups = split_by_shape(specs, n_features=20, rows=500_000)
    assert sorted(g for g, _ in groups) == [[0], [1, 2]]
    assert sorted(size for _, size in groups) == [(1, 128, 1), (10, 8, 2)]


def test_small_data_keeps_one_program_and_large_data_splits_by_shape() -> None:
    specs = [_net(8), _net(16), _net(64, 64), _net(64, 64, 64)]
    assert [g for g, _ in split_by_shape(specs, n_features=20, rows=600)] == [[0, 1, 2, 3]]
    groups = [g for g, _ in split_by_shape(specs, n_features=20, rows=500_000)]
    assert len(groups) > 1
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3]
    assert [0, 1] in groups  # the small networks are not padded to the large ones


def test_a_population_of_a_thousand_members_is_split_into_a_few_programs() -> None:
    # A GPU worker's population: the split once took minutes here (cubic in the member count).
    specs = [_net(*[8 * (1 + i % 16)] * (1 + i % 10), epochs=50) for i in range(1024)]
    groups = split_by_shape(specs, n_features=8, rows=100_000)
    assert 1 < len(groups) <= 3
    assert sorted(i for g, _ in groups for i in g) == list(range(1024))
    spans = sorted(
        (min(depths), max(depths)) for g, _ in groups for depths in [[len(specs[i].model.layers) for i in g]]
    )
    # Runs of similar depth: no two programs' depths interleave.
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)) and spans[-1][1] == 10


def test_with_two_lanes_a_group_longer_than_its_share_is_halved_into_one_program_size() -> None:
    deep, shallow = _net(*[128] * 10), _net(8)
    specs = [deep] * 6 + [shallow]
    one_lane = split_by_shape(specs, n_features=20, rows=6_000)
    assert sorted(size for _, size in one_lane) == [(1, 8, 1), (10, 128, 6)]
    groups = split_by_shape(specs, n_features=20, rows=6_000, lanes=2)
    # The deep half of the work in two programs of three (one compile), the longest first.
    assert [size for _, size in groups] == [(10, 128, 3), (10, 128, 3), (1, 8, 1)]
    assert sorted(i for g, _ in groups for i in g) == list(range(7))


def test_a_group_is_not_halved_when_compiling_the_half_costs_more_than_it_saves() -> None:
    specs = [_net(*[128] * 10)] * 3
    # On 60 rows three members train in a fraction of a compile: one program, however many lanes.
    assert [size for _, size in split_by_shape(specs, n_features=20, rows=60, lanes=2)] == [(10, 128, 3)]
    # The half's program compiled before costs nothing to start: halved.
    halved = split_by_shape(specs, n_features=20, rows=60, lanes=2, compiled=[(10, 128, 3), (10, 128, 2)])
    assert [size for _, size in halved] == [(10, 128, 2), (10, 128, 2)]
    assert sorted(i for g, _ in halved for i in g) == [0, 1, 2]
    assert [
        size
        for _, size in split_by_shape(specs, n_features=20, rows=60, compiled=[(10, 128, 3), (10, 128, 2)])
    ] == [(10, 128, 3)]  # one lane: never halved


def test_a_half_that_leaves_the_finish_time_as_it_was_is_not_made() -> None:
    # Two groups of about equal length already fill two lanes: halving the longer gains nothing.
    deep, shallow = _net(*[128] * 10), _net(*[128] * 8)
    groups = split_by_shape([deep] * 4 + [shallow] * 4, n_features=20, rows=600_000, lanes=2)
    assert len(groups) == 2
    # One member alone is never halved.
    assert [size for _, size in split_by_shape([deep], n_features=20, rows=600_000, lanes=4)] == [
        (10, 128, 1)
    ]


def test_with_two_lanes_the_cut_evens_out_the_lanes_rather_than_least_work() -> None:
    # The guide's space draws depths 1-10: cut where the least work is, the deep program kept one core
    # busy while the other idled (7 s against 2 s measured); cut to even the lanes, both finish together.
    specs = [_net(*[128] * depth) for depth in range(1, 11)]
    one_lane = split_by_shape(specs, n_features=8, rows=491)
    two_lanes = split_by_shape(specs, n_features=8, rows=491, lanes=2)
    assert sorted(i for g, _ in two_lanes for i in g) == list(range(10))
    assert two_lanes == [([6, 7, 8, 9], (10, 128, 4)), ([0, 1, 2, 3, 4, 5], (6, 128, 6))]
    assert one_lane != two_lanes

    def lane_load(size: tuple[int, int, int]) -> int:
        return size[0] * size[2]  # layers x members: the multiply-adds of these equal-width programs

    loads = [lane_load(size) for _, size in two_lanes]
    assert max(loads) <= 1.2 * min(loads)
