"""rollout/record.py: the run record on the stack's tag says who runs what, since when, and when it last moved.

`canary status` shows these times to tell a live run from a stale one, so every change of the
record must stamp `updated`, while `started` stays the run's start.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from rollout import record as record_module
from rollout.gate import Progress
from rollout.outcome import RunPhase
from rollout.record import RunRecord


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`now()` answers each stamp in turn."""
    stamps = ["2026-11-29T06:00:00Z", "2026-11-29T06:01:00Z", "2026-11-29T06:02:00Z", "2026-11-29T06:03:00Z"]
    monkeypatch.setattr(record_module, "now", lambda: stamps.pop(0))
    yield stamps


def test_a_new_record_starts_now_at_its_first_step(clock: list[str]) -> None:
    record = RunRecord.begin((10, 50, 100))
    assert re.fullmatch(r"[0-9a-f]{8}", record.id)
    assert (record.started, record.updated) == ("2026-11-29T06:00:00Z", "2026-11-29T06:00:00Z")
    assert (record.steps, record.progress, record.phase) == ((10, 50, 100), Progress(0, 0, 0), RunPhase.STEPPING)
    assert RunRecord.begin((100,), RunPhase.PROMOTING).phase is RunPhase.PROMOTING


def test_each_change_of_the_record_stamps_it(clock: list[str]) -> None:
    record = RunRecord.begin((10, 50))
    moved = record.moved_to(Progress(1, 2, 1))
    assert (moved.progress, moved.started, moved.updated) == (Progress(1, 2, 1), record.started, "2026-11-29T06:01:00Z")
    rolling_back = moved.entering(RunPhase.ROLLING_BACK)
    assert (rolling_back.phase, rolling_back.updated) == (RunPhase.ROLLING_BACK, "2026-11-29T06:02:00Z")
    assert rolling_back.taken_over().updated == "2026-11-29T06:03:00Z"


def test_the_stamp_is_utc_to_the_second_wherever_the_machine_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9 all year: a local time would be nine hours off
    time.tzset()
    try:
        before, stamp, after = (datetime.now(UTC).replace(microsecond=0), record_module.now(), datetime.now(UTC))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert before <= datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) <= after


def test_a_long_host_name_is_cut_so_the_record_fits_its_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "h" * 24 + "-cut-off.example")
    assert record_module.this_host() == "h" * 24
    assert RunRecord.begin((10, 50)).host == "h" * 24


def test_a_run_taken_over_is_this_hosts_and_this_processes() -> None:
    elsewhere = replace(RunRecord.begin((10, 50)), host="other-host", pid=2**22 + 1)
    taken = elsewhere.taken_over()
    assert (taken.id, taken.host, taken.pid) == (elsewhere.id, record_module.this_host(), os.getpid())
