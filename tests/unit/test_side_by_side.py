"""Programs of a population trained side by side: results in order, a failure stops the others."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from worker.training.fast.population import Program, _side_by_side


def _programs(n: int) -> list[Program]:
    return [Program([i], None, 1, compiled_before=True) for i in range(n)]  # type: ignore[arg-type]


def test_results_come_back_in_the_programs_order_from_several_threads() -> None:
    threads: set[int] = set()
    ready = threading.Barrier(3, timeout=10)  # all three run at once, or this times out

    def train(program: Program) -> list[Any]:
        threads.add(threading.get_ident())
        ready.wait()
        return [program.indices[0] * 10]

    assert _side_by_side(train, _programs(3), 3, threading.Event()) == [[0], [10], [20]]
    assert len(threads) == 3


def test_one_lane_trains_on_the_calling_thread() -> None:
    caller = threading.get_ident()
    seen = []
    _side_by_side(lambda p: seen.append(threading.get_ident()) or [], _programs(2), 1, threading.Event())
    assert seen == [caller, caller]


def test_a_failing_program_stops_the_others_at_once() -> None:
    abort = threading.Event()

    def train(program: Program) -> list[Any]:
        if program.indices == [0]:
            time.sleep(0.1)
            raise RuntimeError("program 0 broke")
        # A long program: trains until told to stop (as _train_bucket checks at each chunk).
        assert abort.wait(timeout=30), "never told to stop"
        return []

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="program 0 broke"):
        _side_by_side(train, _programs(2), 2, abort)
    assert abort.is_set() and time.monotonic() - started < 5
