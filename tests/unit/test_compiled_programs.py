"""The record of compiled program sizes: shared through the compilation cache folder, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.training.fast import programs


@pytest.fixture(autouse=True)
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(programs, "_seen", {})
    return tmp_path


def test_sizes_one_worker_compiled_are_known_to_others(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs.remember("family-a", (6, 128, 4))
    programs.remember("family-a", (12, 128, 6))
    programs.remember("family-b", (1, 8, 1))
    monkeypatch.setattr(programs, "_seen", {})  # another process: only the folder's record
    assert programs.compiled_sizes("family-a") == {(6, 128, 4), (12, 128, 6)}
    assert programs.compiled_sizes("family-b") == {(1, 8, 1)}
    assert programs.compiled_sizes("family-c") == set()


def test_an_unreadable_record_counts_sizes_as_new(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cache_folder / programs.RECORD).write_text("{not json")
    assert programs.compiled_sizes("family-a") == set()
    programs.remember("family-a", (2, 32, 3))  # and is replaced by a good one
    monkeypatch.setattr(programs, "_seen", {})
    assert programs.compiled_sizes("family-a") == {(2, 32, 3)}


def test_the_record_keeps_the_newest_sizes(cache_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for members in range(1, programs.MAX_SIZES_PER_FAMILY + 6):
        programs.remember("family-a", (1, 8, members))
    monkeypatch.setattr(programs, "_seen", {})
    known = programs.compiled_sizes("family-a")
    assert len(known) == programs.MAX_SIZES_PER_FAMILY
    assert (1, 8, programs.MAX_SIZES_PER_FAMILY + 5) in known and (1, 8, 1) not in known


def test_a_record_of_another_shape_counts_every_size_as_new(cache_folder: Path) -> None:
    for content in ("[]", "null", "7", '{"family-a": 3}'):
        (cache_folder / programs.RECORD).write_text(content)
        assert programs.compiled_sizes("family-a") == set()


def test_an_unwritable_record_does_not_stop_training(cache_folder: Path) -> None:
    (cache_folder / programs.RECORD).mkdir()  # a folder where the file should be: every write fails
    programs.remember("family-a", (1, 8, 1))  # no exception: the record is a hint
    assert programs.compiled_sizes("family-a") == {(1, 8, 1)}  # this process still knows


def test_the_record_keeps_the_most_recently_used_families(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(programs.MAX_FAMILIES + 3):
        programs.remember(f"family-{i}", (1, 8, 1))
    programs.remember("family-0", (2, 8, 1))  # used again: kept
    monkeypatch.setattr(programs, "_seen", {})
    assert programs.compiled_sizes("family-0") == {(2, 8, 1)}  # (1, 8, 1) went with the oldest families
    assert programs.compiled_sizes("family-1") == set()
    assert programs.compiled_sizes(f"family-{programs.MAX_FAMILIES + 2}") == {(1, 8, 1)}
