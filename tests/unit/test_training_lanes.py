"""How many programs of a population train at once: configured, else one per usable core."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.training.fast import lanes


def test_a_configured_count_wins() -> None:
    assert lanes.training_lanes(3) == 3


def test_one_lane_per_core_capped_by_a_container_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes.os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(lanes, "CGROUP_CPU_MAX", quota)
    assert lanes.training_lanes(None) == 4  # no quota file: the affinity
    quota.write_text("max 100000\n")
    assert lanes.training_lanes(None) == 4  # no limit
    quota.write_text("200000 100000\n")
    assert lanes.training_lanes(None) == 2  # two CPUs' worth
    quota.write_text("50000 100000\n")
    assert lanes.training_lanes(None) == 1  # half a CPU: still one lane
