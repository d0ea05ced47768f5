"""The test clock: every module starts at the pinned instant, however long earlier ones took."""

from __future__ import annotations

from datetime import timedelta

from sync_pipelines import clock
from sync_pipelines_tests.pinned_clock import pinned_instant


def test_a_module_starts_at_the_instant():
    # The first test of the module: the per-module re-pin put it back at the instant, so at
    # 23:55 a slow run's later modules still run before midnight.
    assert timedelta(0) <= clock.now() - pinned_instant() < timedelta(minutes=1)


def test_restart_goes_back_to_the_instant(pinned_clock):
    pinned_clock.release()
    pinned_clock.pin()  # as after a wall-clock test: time has moved on since the start
    pinned_clock.restart()
    assert timedelta(0) <= clock.now() - pinned_instant() < timedelta(seconds=30)
    assert clock.now().date() == pinned_instant().date()
