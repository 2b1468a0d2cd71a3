"""The decisions of a rollout, checks and promotion phases: pure logic, no engine, no Prometheus."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from rollout.checks import (
    P99_LATENCY,
    SUCCESS_RATE,
    Check,
    CheckResult,
    CheckSpecError,
    Target,
    builtin_checks,
    parse_check,
    parse_duration,
)
from rollout.cli import build_parser
from rollout.gate import Gate, Progress, StepsError, Verdict, judge, parse_steps
from rollout.promotion import NothingToPromote, promotion_phases
from rollout.record import TAG_VALUE_LIMIT, RunRecord
from rollout.stack import restorations
from rollout.view import ProgressView
from settings import AppSettings, load_settings
from tests.harness import EXISTING_CLUSTER, DictConfig

SUCCESS, LATENCY = builtin_checks()
GATE = Gate(steps=(10, 25, 50, 100), threshold=2, error_limit=3)


def healthy() -> list[CheckResult]:
    return [CheckResult(SUCCESS, 100.0), CheckResult(LATENCY, 120.0)]


def failing() -> list[CheckResult]:
    return [CheckResult(SUCCESS, 92.5), CheckResult(LATENCY, 120.0)]


def unanswered() -> list[CheckResult]:
    return [CheckResult(SUCCESS, None, "Prometheus cannot be reached"), CheckResult(LATENCY, 120.0)]


def test_builtin_checks_are_flaggers() -> None:
    assert (SUCCESS.name, SUCCESS.kind, SUCCESS.bound) == ("request-success-rate", "min", 99.0)
    assert (LATENCY.name, LATENCY.kind, LATENCY.bound) == ("request-duration", "max", 500.0)
    query = Target("default", "nginx-v2", "1m").fill(SUCCESS_RATE)
    assert 'reporter="destination"' in query
    assert 'destination_workload_namespace="default",destination_workload=~"nginx-v2"' in query
    assert 'response_code!~"5.*"}[1m]' in query
    assert Target("shop", "cart-v3", "30s").fill(P99_LATENCY).startswith("histogram_quantile(0.99, ")


@pytest.mark.parametrize(
    ("check", "value", "passed"),
    [(SUCCESS, 99.0, True), (SUCCESS, 98.99, False), (LATENCY, 500.0, True), (LATENCY, 500.1, False)],
)
def test_bounds_are_inclusive(check: Check, value: float, passed: bool) -> None:
    assert CheckResult(check, value).passed is passed


def test_an_unanswered_check_never_passes() -> None:
    assert not CheckResult(SUCCESS, None, "no data").passed


def test_healthy_analyses_advance_step_by_step_then_complete() -> None:
    progress = Progress()
    for expected_step in (1, 2, 3):
        verdict, progress = judge(GATE, progress, healthy())
        assert (verdict, progress.step) == (Verdict.ADVANCE, expected_step)
    assert judge(GATE, progress, healthy())[0] is Verdict.COMPLETE


def test_failed_checks_hold_then_roll_back_at_the_threshold() -> None:
    verdict, progress = judge(GATE, Progress(step=1), failing())
    assert (verdict, progress) == (Verdict.HOLD, Progress(step=1, failed_checks=1))
    verdict, progress = judge(GATE, progress, healthy())  # a pass moves on, the failure still counts
    assert (verdict, progress) == (Verdict.ADVANCE, Progress(step=2, failed_checks=1))
    assert judge(GATE, progress, failing())[0] is Verdict.ROLLBACK


def test_unanswered_analyses_never_advance_and_roll_back_after_the_error_limit_in_a_row() -> None:
    progress = Progress()
    for count in (1, 2):
        verdict, progress = judge(GATE, progress, unanswered())
        assert (verdict, progress.step, progress.consecutive_errors) == (Verdict.HOLD, 0, count)
    assert judge(GATE, progress, unanswered())[0] is Verdict.ROLLBACK


def test_an_answer_resets_the_errors_in_a_row() -> None:
    _, progress = judge(GATE, Progress(consecutive_errors=2), healthy())
    assert progress.consecutive_errors == 0
    assert judge(GATE, Progress(consecutive_errors=2), unanswered())[0] is Verdict.ROLLBACK


@pytest.mark.parametrize(
    "text", ["", "10,5", "0,50", "10,101", "10,,20", "ten", "10,10", ",".join(map(str, range(1, 22)))]
)
def test_bad_steps_are_refused_with_the_rule(text: str) -> None:
    with pytest.raises(StepsError, match=r"--steps .*from 1 to 100, increasing, at most 20 of them"):
        parse_steps(text)


def test_steps() -> None:
    assert parse_steps("10,25,50,100") == (10, 25, 50, 100)
    assert parse_steps("5") == (5,)


def test_custom_check() -> None:
    check = parse_check('errors-404:max:5:sum(rate(x{ns="$namespace",w=~"$workload"}[$window]))')
    assert (check.name, check.kind, check.bound) == ("errors-404", "max", 5.0)
    assert Target("default", "nginx-v2", "1m").fill(check.query) == 'sum(rate(x{ns="default",w=~"nginx-v2"}[1m]))'
    assert parse_check("job-rate:min:1:job:requests:rate5m").query == "job:requests:rate5m"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nameonly", "must be NAME:min|max:BOUND:PROMQL"),
        ("Bad_Name:min:1:up", "name 'Bad_Name'"),
        ("x:above:1:up", "bound kind 'above'"),
        ("x:min:lots:up", "bound 'lots' must be a number"),
        ("x:min:nan:up", "bound 'nan' must be a number"),
        ("x:min:1:rate(up{pod=~'$pod'}[1m])", r"only use \$namespace, \$workload and \$window"),
    ],
)
def test_bad_custom_checks_are_refused(spec: str, message: str) -> None:
    with pytest.raises(CheckSpecError, match=message):
        parse_check(spec)


def test_durations() -> None:
    assert parse_duration("60s", "--interval", 1) == 60
    assert parse_duration("2m", "--interval", 1) == 120
    for bad in ("0s", "500ms", "1d", "soon"):
        with pytest.raises(CheckSpecError, match=rf"--interval '{bad}': must be a duration"):
            parse_duration(bad, "--interval", 1)


def app_settings(config: dict[str, str]) -> AppSettings:
    return load_settings(DictConfig({**EXISTING_CLUSTER, **config})).app


def test_promotion_scales_then_shifts_then_swaps_roles() -> None:
    app = app_settings({"stableReplicas": "3", "canaryReplicas": "1", "canaryWeight": "50"})
    phases = promotion_phases(app)
    assert [phase.changes for phase in phases] == [
        {"canaryReplicas": "3"},
        {"canaryWeight": "100"},
        {
            "stableVersion": "v2",
            "stableImage": app.canary.image,
            "stableReplicas": "3",
            "canaryVersion": "v1",
            "canaryImage": app.stable.image,
            "canaryReplicas": "0",
            "canaryWeight": "0",
        },
    ]


def test_promotion_after_a_full_shift_is_only_the_swap_and_the_result_is_valid() -> None:
    before = {"stableReplicas": "2", "canaryReplicas": "2", "canaryWeight": "100", "mirrorPercent": "10"}
    (swap,) = promotion_phases(app_settings(before))
    assert swap.changes["mirrorPercent"] == "0"
    promoted = app_settings({**before, **swap.changes})
    assert (promoted.stable.label, promoted.canary.label, promoted.canary.replicas) == ("v2", "v1", 0)
    assert promoted.canary_weight == 0


def test_promotion_turns_the_header_route_off() -> None:
    header = {"canaryHeaderName": "x-canary", "canaryHeaderValue": "3f9c2a7be1d04c58", "canaryWeight": "100"}
    swap = promotion_phases(app_settings(header))[-1]
    assert swap.changes["canaryHeaderName"] == ""
    assert app_settings({**header, **swap.changes}).canary_header is None


def test_the_run_record_fits_a_stack_tag_and_round_trips() -> None:
    longest = parse_steps(",".join(str(weight) for weight in range(5, 101, 5)))
    assert len(longest) == 20
    record = RunRecord.begin(longest)
    worst = replace(record, host="x" * 32, pid=4194304, step=19, failed=9)  # the longest host a record keeps
    assert len(worst.encode()) <= TAG_VALUE_LIMIT
    assert RunRecord.decode(record.encode()) == record
    moved = record.moved_to(Progress(step=3, failed_checks=1, consecutive_errors=2))
    assert (moved.step, moved.failed, moved.errors) == (3, 1, 2)
    with pytest.raises(ValueError, match="a stack tag holds 256"):
        RunRecord.begin(tuple(range(1, 101))).encode()


def test_the_command_line_defaults_are_flaggers() -> None:
    args = build_parser().parse_args(["run"])
    assert (args.steps, args.interval, args.window, args.threshold, args.error_limit) == (
        (10, 25, 50, 100),
        60,
        "1m",
        5,
        4,
    )
    assert (args.success_rate, args.max_latency, args.check, args.resume, args.no_promote) == (
        99,
        500,
        [],
        False,
        False,
    )
    assert args.prometheus_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--steps", "50,10"], "--steps '50,10': must be comma-separated weights"),
        (["run", "--threshold", "0"], "'0': must be a whole number, at least 1"),
        (["run", "--interval", "1d"], "--interval '1d': must be a duration like 60s or 1m"),
        (["status", "--check", "x:min:1"], "must be NAME:min|max:BOUND:PROMQL"),
    ],
)
def test_bad_options_name_the_option_the_value_and_the_rule(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_failed_update_puts_back_only_what_it_changed_and_nobody_changed_since() -> None:
    before = {"canary:canaryWeight": "10", "canary:stableReplicas": "2"}
    changes = {"canaryWeight": "25", "canaryReplicas": "3"}
    now = {"canary:canaryWeight": "25", "canary:canaryReplicas": "3", "canary:stableReplicas": "2"}
    assert restorations("canary", before, changes, now) == {"canaryWeight": "10", "canaryReplicas": None}
    aborted_meanwhile = {**now, "canary:canaryWeight": "0"}
    assert restorations("canary", before, changes, aborted_meanwhile) == {"canaryReplicas": None}


def test_promoting_an_empty_canary_slot_is_refused() -> None:
    retired = app_settings({"canaryReplicas": "0", "canaryWeight": "0"})
    with pytest.raises(NothingToPromote, match=r"canaryReplicas = 0 and canaryWeight = 0: v2 is a retired version"):
        promotion_phases(retired)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_view_redraws_one_line_on_a_terminal_and_prints_lines_elsewhere() -> None:
    results = [CheckResult(SUCCESS, 99.5), CheckResult(LATENCY, None, "no data")]
    checks = "request-success-rate 99.50% (>= 99%) ok | request-duration: no answer (no data)"
    expected = [f"  step 2 weight 25: 40s left | {checks}", f"  step 2 weight 25: 30s left | {checks}"]
    verdict = f"  step 2 weight 25: {checks} -> hold\n"
    for stream in (Terminal(), io.StringIO()):
        view = ProgressView(stream)
        view.tick(1, 25, results, 40.0)
        view.tick(1, 25, results, 30.0)
        view.analysed(1, 25, results, Verdict.HOLD)
        if stream.isatty():
            assert stream.getvalue() == "".join(f"\r\033[K{line}" for line in expected) + "\r\033[K" + verdict
        else:
            assert stream.getvalue() == "".join(f"{line}\n" for line in expected) + verdict
