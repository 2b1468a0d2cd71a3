"""The gate's decision at its edges, the steps and durations accepted, and who owns a run record."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from rollout.checks import CheckResult, builtin_checks, parse_duration
from rollout.gate import Gate, Progress, Verdict, judge, parse_steps
from rollout.outcome import RunPhase
from rollout.record import RunRecord, this_host

SUCCESS, LATENCY = builtin_checks()
GATE = Gate(steps=(10, 50, 100), threshold=3, error_limit=2)
OK = [CheckResult(SUCCESS, 100.0), CheckResult(LATENCY, 10.0)]
FAILED = [CheckResult(SUCCESS, 10.0), CheckResult(LATENCY, 10.0)]
UNANSWERED = [CheckResult(SUCCESS, None, "no data"), CheckResult(LATENCY, 10.0)]


def test_the_threshold_and_the_error_limit_are_reached_not_passed() -> None:
    assert judge(GATE, Progress(failed_checks=1), FAILED) == (Verdict.HOLD, Progress(failed_checks=2))
    assert judge(GATE, Progress(failed_checks=2), FAILED) == (Verdict.ROLLBACK, Progress(failed_checks=3))
    assert judge(GATE, Progress(), UNANSWERED) == (Verdict.HOLD, Progress(consecutive_errors=1))
    assert judge(GATE, Progress(consecutive_errors=1), UNANSWERED) == (Verdict.ROLLBACK, Progress(consecutive_errors=2))


def test_an_analysis_that_both_fails_and_errs_counts_both() -> None:
    both = [CheckResult(SUCCESS, 10.0), CheckResult(LATENCY, None, "no data")]
    assert judge(GATE, Progress(step=1), both) == (
        Verdict.HOLD,
        Progress(step=1, failed_checks=1, consecutive_errors=1),
    )


def test_no_results_hold_and_change_no_counter() -> None:
    assert judge(GATE, Progress(step=1, failed_checks=1), []) == (Verdict.HOLD, Progress(step=1, failed_checks=1))


def test_only_the_last_step_completes() -> None:
    assert judge(GATE, Progress(step=1), OK) == (Verdict.ADVANCE, Progress(step=2))
    assert judge(GATE, Progress(step=2), OK) == (Verdict.COMPLETE, Progress(step=2))
    assert judge(Gate((100,), 1, 1), Progress(), OK)[0] is Verdict.COMPLETE


def test_a_passing_analysis_keeps_earlier_failures_but_clears_errors_in_a_row() -> None:
    assert judge(GATE, Progress(failed_checks=2, consecutive_errors=1), OK) == (
        Verdict.ADVANCE,
        Progress(step=1, failed_checks=2),
    )


@pytest.mark.parametrize(
    ("text", "steps"), [("1", (1,)), ("100", (100,)), (" 5, 50 ", (5, 50)), (",".join(map(str, range(1, 21))), None)]
)
def test_the_edges_of_steps(text: str, steps: tuple[int, ...] | None) -> None:
    assert parse_steps(text) == (steps or tuple(range(1, 21)))


def test_durations_at_their_minimum_and_in_every_unit() -> None:
    assert parse_duration("500ms", "--poll", 0.5) == 0.5
    assert parse_duration(" 1h ", "--interval", 1) == 3600
    assert parse_duration("1s", "--interval", 1) == 1
    with pytest.raises(ValueError, match=r"--interval '999ms': must be a duration like 60s or 1m, at least 1s"):
        parse_duration("999ms", "--interval", 1)


def test_an_error_never_passes_even_with_a_value() -> None:
    assert not CheckResult(SUCCESS, 100.0, "stale").passed
    assert CheckResult(SUCCESS, 100.0).passed


def test_a_record_is_alive_only_for_another_live_process_on_this_host() -> None:
    record = RunRecord.begin((10, 50))
    assert not record.is_alive_here(), "this very process is not another run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert replace(record, pid=sleeper.pid).is_alive_here()
        assert sleeper.poll() is None
        assert not replace(record, pid=sleeper.pid, host=this_host() + "-elsewhere").is_alive_here()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not replace(record, pid=sleeper.pid).is_alive_here(), "a finished process owns nothing"


def test_asking_whether_a_run_is_alive_sends_it_no_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signal 0 only checks that the process exists; any other would reach the run (SIGHUP stops it)."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr("rollout.record.os.kill", lambda pid, signal: sent.append((pid, signal)))
    assert replace(RunRecord.begin((10, 50)), pid=4242).is_alive_here()
    assert sent == [(4242, 0)]


def test_a_run_of_another_user_is_alive_though_it_cannot_be_signalled(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_permitted(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("rollout.record.os.kill", not_permitted)
    assert replace(RunRecord.begin((10, 50)), pid=1).is_alive_here()


def test_a_record_describes_where_the_run_is() -> None:
    record = replace(RunRecord.begin((10, 50, 100)), id="abc12345", pid=42, host="ci", started="S", updated="U", step=1)
    assert record.describe() == "run abc12345 (pid 42 on ci, started S, last update U) at step 2 of 3, weight 50"
    said = "run abc12345 (pid 42 on ci, started S, last update U)"
    assert replace(record, step=3).describe().endswith("weight 100"), "past its last step: the last weight"
    assert replace(record, phase=RunPhase.PROMOTING).describe() == f"{said} promoting"
    assert record.taken_over().pid == os.getpid() and record.taken_over().id == "abc12345"
    assert record.owns(record) and not record.owns(None) and not record.owns(replace(record, pid=43))
    assert not record.owns(replace(record, id="other"))
