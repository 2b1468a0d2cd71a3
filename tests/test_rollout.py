"""The decisions of a rollout, checks and promotion phases: pure logic, no engine, no Prometheus."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from rollout.cli import _policy_packs, build_parser
from rollout.deployed import deployed_config, served_by
from rollout.gate import Gate, Progress, StepsError, Verdict, judge, parse_steps
from rollout.outcome import Outcome, RunPhase
from rollout.promotion import NothingToPromote, back_to_stable, promotion_phases
from rollout.record import TAG_VALUE_LIMIT, RunRecord
from rollout.runner import RunRefused
from rollout.stack import _diagnostics, reconciliations
from rollout.view import ProgressView
from settings import AppSettings, load_settings
from tests.harness import EXISTING_CLUSTER, HEADER_AND_MIRROR, HEADER_ROUTE, DictConfig, run_program

SUCCESS, LATENCY = builtin_checks()
GATE = Gate(steps=(10, 25, 50, 100), threshold=2, error_limit=3)


def healthy() -> list[CheckResult]:
    return [CheckResult(SUCCESS, 100.0), CheckResult(LATENCY, 120.0)]


def failing() -> list[CheckResult]:
    return [CheckResult(SUCCESS, 92.5), CheckResult(LATENCY, 120.0)]


def unanswered() -> list[CheckResult]:
    return [CheckResult(SUCCESS, None, "Prometheus cannot be reached"), CheckResult(LATENCY, 120.0)]


def test_builtin_checks_are_flaggers() -> None:
    success, latency = builtin_checks()  # called here, not at import: a test sees what the call returns now
    assert (success.name, success.kind, success.bound, success.unit) == ("request-success-rate", "min", 99.0, "%")
    assert (latency.name, latency.kind, latency.bound, latency.unit) == ("request-duration", "max", 500.0, "ms")
    # What a measurement can be; outside it, Prometheus answered garbage (tests/test_rollout_prometheus.py).
    assert (success.possible, latency.possible) == ((0.0, 100.0), (0.0, math.inf))
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
    ids=["no-parts", "bad-name", "bad-kind", "bad-bound", "nan-bound", "unknown-variable"],
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
    header = {**HEADER_ROUTE, "canaryWeight": "100"}
    swap = promotion_phases(app_settings(header))[-1]
    assert swap.changes["canaryHeaderName"] == ""
    assert app_settings({**header, **swap.changes}).canary_header is None


def test_the_run_record_fits_a_stack_tag_and_round_trips() -> None:
    longest = parse_steps(",".join(str(weight) for weight in range(5, 101, 5)))
    assert len(longest) == 20
    record = RunRecord.begin(longest)
    for phase in RunPhase:  # the longest host a record keeps, in each phase
        worst = replace(record, host="x" * 24, pid=4194304, step=19, failed=9, phase=phase)
        assert len(worst.encode()) <= TAG_VALUE_LIMIT
        assert RunRecord.decode(worst.encode()) == worst
    assert RunRecord.decode(record.encode()) == record
    moved = record.moved_to(Progress(step=3, failed_checks=1, consecutive_errors=2))
    assert (moved.step, moved.failed, moved.errors) == (3, 1, 2)
    with pytest.raises(ValueError, match="a stack tag holds 256"):
        RunRecord.begin(tuple(range(1, 101))).encode()
    unpadded = len(replace(record, host="").encode())
    assert len(replace(record, host="x" * (TAG_VALUE_LIMIT - unpadded)).encode()) == TAG_VALUE_LIMIT  # the limit fits
    with pytest.raises(ValueError, match="the run record is 257 characters; a stack tag holds 256"):
        replace(record, host="x" * (TAG_VALUE_LIMIT - unpadded + 1)).encode()


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


def test_a_failed_update_sets_the_config_to_what_is_deployed_sparing_what_others_changed_since() -> None:
    before = {"canary:canaryWeight": "10", "canary:stableReplicas": "2"}
    changes = {"canaryWeight": "60", "canaryReplicas": "3"}
    now = {"canary:canaryWeight": "60", "canary:canaryReplicas": "3", "canary:stableReplicas": "2"}
    refused = {"canaryWeight": "10"}  # the policy refused the VirtualService: the state still serves 10
    assert reconciliations("canary", before, changes, now, refused) == {"canaryWeight": "10", "canaryReplicas": None}
    applied = {"canaryWeight": "60", "canaryReplicas": "3"}  # it failed after the VirtualService changed
    assert reconciliations("canary", before, changes, now, applied) == {"canaryWeight": "60", "canaryReplicas": "3"}
    aborted_meanwhile = {**now, "canary:canaryWeight": "0"}
    assert reconciliations("canary", before, changes, aborted_meanwhile, refused) == {"canaryReplicas": None}


def test_promoting_an_empty_canary_slot_is_refused() -> None:
    retired = app_settings({"canaryReplicas": "0", "canaryWeight": "0"})
    with pytest.raises(NothingToPromote, match=r"canaryReplicas = 0 and canaryWeight = 0: v2 is a retired version"):
        promotion_phases(retired)
    deployed_without_traffic = app_settings({"canaryReplicas": "1", "canaryWeight": "0"})
    assert promotion_phases(deployed_without_traffic)[0].changes == {"canaryWeight": "100"}


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


def test_only_the_line_after_a_live_one_clears_it() -> None:
    terminal = Terminal()
    view = ProgressView(terminal)
    view.tick(0, 10, [CheckResult(SUCCESS, 100.0)], 5.0)
    view.say("step 2/4: canaryWeight=25 (pulumi up)")
    view.say("step 2/4: applied in 4.0 s")
    assert terminal.getvalue().split("\r\033[K")[2:] == [
        "step 2/4: canaryWeight=25 (pulumi up)\nstep 2/4: applied in 4.0 s\n"
    ]


def test_outcomes_carry_their_report_word_and_exit_code() -> None:
    codes = {outcome.word: outcome.exit_code for outcome in Outcome}
    assert codes == {
        "promoted": 0,
        "completed": 0,
        "aborted": 0,
        "rolled-back": 1,
        "update-failed": 1,
        "lost": 1,
        "held": 1,
        "refused": 2,
        "interrupted": 130,
    }


def test_a_record_of_an_older_version_is_a_run_in_its_steps() -> None:
    record = RunRecord.begin((10, 50))
    old = {key: value for key, value in json.loads(record.encode()).items() if key != "phase"}
    assert RunRecord.decode(json.dumps(old)).phase is RunPhase.STEPPING
    rolling_back = record.entering(RunPhase.ROLLING_BACK)
    assert RunRecord.decode(rolling_back.encode()).phase is RunPhase.ROLLING_BACK
    assert "rolling back from step 1 of 2" in rolling_back.describe()


def test_back_to_stable_turns_off_everything_that_reaches_the_canary() -> None:
    changes, turned_off = back_to_stable(app_settings({"canaryWeight": "25", **HEADER_AND_MIRROR}))
    assert changes == {"canaryWeight": "0", "canaryHeaderName": "", "mirrorPercent": "0"}
    assert turned_off == ["header route x-canary", "mirroring of 20% of requests"]
    after = app_settings({"canaryWeight": "25", **HEADER_AND_MIRROR, **changes})
    assert (after.canary_weight, after.canary_header, after.mirror_percent) == (0, None, 0)
    assert back_to_stable(app_settings({"canaryWeight": "25"})) == ({"canaryWeight": "0"}, [])


def state_of(config: dict[str, str]) -> list[dict[str, Any]]:
    """The resources of a stack's state as `pulumi stack export` gives them: outputs are what was applied."""
    run = run_program({**EXISTING_CLUSTER, **config})
    return [{"type": r.type, "outputs": r.inputs} for r in run.resources if r.custom]


@pytest.mark.parametrize("traffic_api", ["istio", "gateway-api"])
def test_what_is_deployed_is_read_from_the_state(traffic_api: str) -> None:
    """The split lives in the VirtualService, or with trafficApi gateway-api in the HTTPRoute: read the same way."""
    resources = state_of({"trafficApi": traffic_api, "canaryWeight": "25", "canaryReplicas": "2", **HEADER_AND_MIRROR})
    split = served_by(resources)
    assert split is not None
    assert (split.split, split.stable, split.canary, split.canary_weight) == ({"v1": 75, "v2": 25}, "v1", "v2", 25)
    assert split.describe() == "v1 75% / v2 25%, header route x-canary -> v2, 20% mirrored to v2"
    config = deployed_config(resources)
    assert {key: config[key] for key in ("canaryWeight", "canaryHeaderName", "mirrorPercent", "canaryReplicas")} == {
        "canaryWeight": "25",
        "canaryHeaderName": "x-canary",
        "mirrorPercent": "20",
        "canaryReplicas": "2",
    }
    assert config["canaryImage"] == "quay.io/shardul/nginx:v2"


def test_a_stack_with_no_canary_traffic_or_no_state_reads_as_such() -> None:
    assert deployed_config(state_of({})).items() >= {"canaryWeight": "0", "canaryHeaderName": ""}.items()
    plain = served_by(state_of({"trafficApi": "gateway-api", "dataplaneMode": "ambient"}))
    assert plain is not None and (plain.split, plain.header, plain.mirror_percent) == ({"v1": 100, "v2": 0}, None, 0)
    assert served_by([]) is None and deployed_config([]) == {}


def test_an_http_route_is_read_as_the_api_server_stores_it() -> None:
    resources = state_of({"trafficApi": "gateway-api", "canaryWeight": "25", **HEADER_AND_MIRROR})
    # As the API server stores it: every rule gets a path match, every backendRef a weight.
    for route in (r["outputs"] for r in resources if r["type"].endswith(":HTTPRoute")):
        for rule in route["spec"]["rules"]:
            rule.setdefault("matches", [{}])
            for match in rule["matches"]:
                match["path"] = {"type": "PathPrefix", "value": "/"}
            for backend in rule["backendRefs"]:
                backend.setdefault("weight", 1)
    stored = served_by(resources)
    assert stored is not None and (stored.split, stored.header) == ({"v1": 75, "v2": 25}, "x-canary")


def test_every_update_runs_the_projects_policy_pack_unless_opted_out(tmp_path: Path) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    parse = build_parser().parse_args
    with pytest.raises(RunRefused, match=r"has no virtualenv .*policy/venv.*: run scripts/venv, or pass --no-policy"):
        _policy_packs(parse(["run", "--cwd", str(tmp_path)]))
    (tmp_path / "policy" / "venv").mkdir()
    assert _policy_packs(parse(["run", "--cwd", str(tmp_path)])) == [str(tmp_path / "policy")]
    assert _policy_packs(parse(["abort", "--cwd", str(tmp_path), "--no-policy-pack"])) == []
    assert _policy_packs(parse(["run", "--cwd", str(tmp_path), "--policy-pack", "/packs/strict"])) == ["/packs/strict"]


REFUSED_UPDATE = (
    """Updating (e2e):
    pulumi:pulumi:Stack canary-e2e running Traceback (most recent call last):
    pulumi:pulumi:Stack canary-e2e  1 warning; 75 messages
Policies:
    ❌ canary-guardrails@v0.0.1 (local: policy)
        - [mandatory]  traffic-split  (kubernetes:networking.istio.io/v1:VirtualService: nginx-virtual-svc)
          VirtualService nginx-virtual-svc sends 60% to canary 'v2', above the maximum of 50%.

Diagnostics:
  pulumi:pulumi:Stack (canary-e2e):
"""
    + "    Traceback (most recent call last):\n" * 200
    + """    KeyboardInterrupt

Outputs:
"""
)


REJECTED_UPDATE = """    pulumi:pulumi:Stack canary-e2e **failed** 2 errors; 1 warning
Policies:
    ✅ canary-guardrails@v0.0.1 (local: policy)

Diagnostics:
  pulumi:pulumi:Stack (canary-e2e):
    warning: resource plugin kubernetes is expected to have version >=4.34.2, but has 4.25.0
    error: update failed
    error: Resource monitor has terminated, shutting down

  kubernetes:networking.istio.io/v1:VirtualService (nginx-virtual-svc):
    error: 1 error occurred:
    \t* the Kubernetes API server reported that "default/nginx-virtual-svc" failed to fully initialize or become \
live: ValidatingAdmissionPolicy 'e2e-deny-weight-zero' denied request: e2e refuses weight 0

Outputs:
"""


def test_a_failed_updates_reason_is_the_violation_not_the_programs_traceback() -> None:
    """What `pulumi up` printed when the policy refused a step: the violation comes first, the traceback of the
    program the engine stopped would otherwise fill the message."""
    reason = _diagnostics(REFUSED_UPDATE)
    assert reason.startswith("Policies:") and "above the maximum of 50%" in reason
    assert "Traceback" not in reason
    assert _diagnostics(REJECTED_UPDATE) == (
        "error: update failed\n"
        "error: Resource monitor has terminated, shutting down\n"
        "error: 1 error occurred:\n"
        '  * the Kubernetes API server reported that "default/nginx-virtual-svc" failed to fully initialize or become '
        "live: ValidatingAdmissionPolicy 'e2e-deny-weight-zero' denied request: e2e refuses weight 0"
    ), "a passing pack's summary is no reason; the API server's answer is"
    assert _diagnostics("something odd\n") == "something odd\n"


def test_a_failed_updates_reason_keeps_each_errors_detail_lines_and_nothing_else() -> None:
    output = (
        "Updating (dev):\n"
        "error: 2 errors occurred:\n"
        "\t* the first\n"
        "\twith a second line\n"
        "    * the second\n"
        "Resources:\n"
        "    * a bullet that is no error's\n"
    )
    assert _diagnostics(output) == "error: 2 errors occurred:\n  * the first\n  with a second line\n  * the second"


def test_without_error_lines_the_reason_is_the_diagnostics_section_capped() -> None:
    output = "Updating (dev):\n    ~ VirtualService updated\n\nDiagnostics:\n  pulumi:pulumi:Stack (canary-dev):\n"
    assert _diagnostics(output) == "Diagnostics:\n  pulumi:pulumi:Stack (canary-dev):\n"
    assert _diagnostics(output, limit=20) == "Diagnostics:\n  pulum"
