"""How many training rows the gradient probe reads each epoch (both engines read the same ones)."""

from __future__ import annotations

from worker.training.diagnostics import MIN_PROBE_ROWS, PROBE_ROWS, probe_rows


def test_the_probe_costs_a_fraction_of_a_small_epoch_and_is_capped_on_large_data() -> None:
    assert probe_rows(614) == 153  # Pima's training split: a quarter, not 512 of 614
    assert probe_rows(100_000) == PROBE_ROWS
    assert probe_rows(300) == MIN_PROBE_ROWS  # enough rows for a steady norm on small data
    assert probe_rows(90) == 90  # never more rows than there are
