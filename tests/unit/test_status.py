"""Unit tests for the job status machine in models.status."""

from __future__ import annotations

import itertools

import pytest

from models.status import TERMINAL, TRIAL_ALLOWED_FROM, TRIAL_TERMINAL, JobStatus, TrialStatus, can_transition

Q, R, CI, S, F, CD = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.CANCELLING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)

# The whole table: API.md's transitions plus the reaper's failures of stuck queued/cancelling jobs.
ALLOWED = {
    (Q, R),
    (Q, CD),
    (Q, F),
    (R, S),
    (R, F),
    (R, CI),
    (R, Q),
    (R, R),  # a takeover: a new worker's lease replaces a lost one's (an event, from == to)
    (CI, CD),
    (CI, F),
}


@pytest.mark.parametrize(
    ("source", "target"),
    [(Q, R), (R, S), (R, F), (R, CI), (CI, CD), (Q, CD), (R, Q)],
    ids=lambda status: str(status),
)
def test_documented_transitions_are_allowed(source: JobStatus, target: JobStatus) -> None:
    """Every transition API.md describes, including the retry running -> queued, is allowed."""
    assert can_transition(source, target)


def test_running_cannot_jump_to_cancelled() -> None:
    """Cancelling a running job must pass through cancelling so the worker can stop."""
    assert not can_transition(R, CD)


@pytest.mark.parametrize("source", sorted(TERMINAL))
@pytest.mark.parametrize("target", list(JobStatus))
def test_nothing_leaves_a_terminal_status(source: JobStatus, target: JobStatus) -> None:
    """A succeeded, failed or cancelled job stays that way."""
    assert not can_transition(source, target)


def test_terminal_statuses_are_exactly_succeeded_failed_cancelled() -> None:
    """The terminal set matches API.md."""
    assert {S, F, CD} == TERMINAL


def test_only_a_takeover_transitions_to_itself() -> None:
    """A no-op change is not a transition; running -> running is a lease changing hands."""
    assert [status for status in JobStatus if can_transition(status, status)] == [R]


def test_trial_table_ends_every_trial_and_lets_nothing_leave_an_end() -> None:
    """Trials: queued and running may end; completed, failed and stopped never change again."""
    for target, sources in TRIAL_ALLOWED_FROM.items():
        assert not sources & TRIAL_TERMINAL, target
    assert {t for t, sources in TRIAL_ALLOWED_FROM.items() if TrialStatus.RUNNING in sources} == {
        TrialStatus.QUEUED,
        TrialStatus.RUNNING,
        *TRIAL_TERMINAL,
    }
    assert TrialStatus.COMPLETED in TRIAL_TERMINAL and TrialStatus.QUEUED not in TRIAL_TERMINAL


def test_allowed_pairs_are_exactly_the_table() -> None:
    """Nothing outside the table is allowed, e.g. cancelling -> running, queued -> succeeded."""
    allowed = {
        (source, target)
        for source, target in itertools.product(JobStatus, repeat=2)
        if can_transition(source, target)
    }
    assert allowed == ALLOWED


def test_every_non_terminal_status_can_reach_a_terminal_one() -> None:
    """No job can get stuck: each live status has a path to an end."""
    reachable = set(TERMINAL)
    changed = True
    while changed:
        changed = False
        for source, target in itertools.product(JobStatus, repeat=2):
            if target in reachable and source not in reachable and can_transition(source, target):
                reachable.add(source)
                changed = True
    assert reachable == set(JobStatus)
