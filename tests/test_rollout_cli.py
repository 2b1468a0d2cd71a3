"""The `canary` command as a user runs it: cli.main() for real, over stand-ins of what it drives.

The stack is tests/rollout_stand_ins.py's DeployingStackStandIn behind `pulumi.automation.select_stack`:
after each `pulumi up` of the `pulumi` stand-in script, its state becomes what the real program
(under mocks) deploys with the stack's config, and its history gets the update's message.
Prometheus is a real HTTP server on loopback answering per version; the runner's clock is virtual,
so minutes of analysis intervals take milliseconds. What is checked is what a user sees and relies
on: the exit code, the one-line messages, the --json result, the stack's config after the command,
what its state serves, its update history and the run record tag.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from rollout import cli, runner
from rollout.deployed import served_by
from rollout.gate import Progress
from rollout.outcome import Outcome, RunPhase
from rollout.record import TAG, RunRecord
from tests.harness import EXISTING_CLUSTER, PROJECT_DIR
from tests.rollout_stand_ins import (
    PROJECT,
    Command,
    DeployingStackStandIn,
    WorkspaceStandIn,
    engine_stand_in,
)
from tests.test_rollout_prometheus import Answer, FakePrometheus, json_answer, vector
from tests.test_rollout_runner import VirtualClock

START = {**EXISTING_CLUSTER, "stableReplicas": "2", "canaryReplicas": "1", "canaryWeight": "0"}
HEADER_ROUTE = {"canaryHeaderName": "x-canary", "canaryHeaderValue": "3f9c2a7be1d04c58"}
ENGINE_SAYS = "Updating (dev):\n    ~ kubernetes:networking.istio.io/v1:VirtualService nginx updated  \nResources:\n"
# What Prometheus measures per version: request success rate (%) and p99 latency (ms); a missing one has no series.
HEALTHY = {"v1": ("99.5", "120"), "v2": ("100", "80")}
FAILING = {"v1": ("99.5", "120"), "v2": ("90", "80")}
NO_DATA: dict[str, tuple[str, str]] = {}
SUCCESS_RATE = {"name": "request-success-rate", "bound": 99.0, "kind": "min"}  # the built-in checks' JSON
LATENCY = {"name": "request-duration", "bound": 500.0, "kind": "max"}
SLOW_RETRIES = [5.0, 10.0]  # rollout.runner's waits between the attempts of a rollback


def measured(by_version: Mapping[str, tuple[str, str]], window: str = "1m") -> Answer:
    """Prometheus answering each query over `window` with the value of the version it selects (Istio's workload
    label); any other query has no series."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query).get("query", [""])[0]
        for version, (success_rate, latency) in by_version.items():
            if f'destination_workload=~"nginx-{version}"' in query and f"[{window}]" in query:
                value = success_rate if "istio_requests_total" in query else latency
                return json_answer(vector(value))(handler)
        return json_answer(vector())(handler)  # no series: the check has no answer

    return answer


@dataclass
class Ran:
    code: int
    out: str
    err: list[str]

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def result(self) -> dict[str, Any]:
        parsed = json.loads(self.out)
        assert isinstance(parsed, dict)
        return parsed


class Canary:
    """One project with its stack, the engine, Prometheus and the clock; calling it runs `canary ARGS`."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str], prometheus: FakePrometheus) -> None:
        self.project = tmp_path / "project"
        self.project.mkdir()
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", self.project)  # no policy/: the own pack is absent unless added
        self.bin = tmp_path / "bin"
        self.calls = engine_stand_in(self.bin, ENGINE_SAYS, 0)
        workspace = WorkspaceStandIn(Command(str(self.bin / "pulumi")), str(self.project))
        self.stack = DeployingStackStandIn(workspace, START, self.bin)
        self.selected: list[tuple[str, str]] = []
        self.clock = VirtualClock()
        self.clock.now = 1_000.0  # a monotonic clock does not start at 0
        self.prometheus = prometheus
        self.prometheus.answer = measured(HEALTHY)
        self._capsys = capsys

    def select_stack(self, stack_name: str, work_dir: str) -> DeployingStackStandIn:
        self.selected.append((stack_name, work_dir))
        return self.stack

    def __call__(self, *argv: str, stack: str | None = "dev") -> Ran:
        named = ["--stack", stack] if stack else []
        analysis = ["--prometheus-url", self.prometheus.url] if argv[0] in ("status", "run") else []
        code = cli.main([*argv, *named, "--cwd", str(self.project), *analysis])
        captured = self._capsys.readouterr()
        return Ran(code, captured.out, captured.err.splitlines())

    def configure(self, **values: str) -> None:
        """`pulumi config set`, without an update."""
        self.stack.set_all_config({key: auto.ConfigValue(value) for key, value in values.items()})

    def deploy(self, message: str = "pulumi up by hand", **values: str) -> None:
        """`pulumi config set` then `pulumi up`, by hand (or by another `canary`)."""
        self.configure(**values)
        self.stack.deploy(message)

    def config(self, key: str) -> str | None:
        return self.stack.config.get(f"{PROJECT}:{key}")

    def served(self) -> str | None:
        split = served_by((self.stack.export_stack().deployment or {})["resources"])
        return split.describe() if split is not None else None

    @property
    def record(self) -> RunRecord | None:
        tag = self.stack.workspace.tags.get("dev", {}).get(TAG)
        return RunRecord.decode(tag) if tag is not None else None

    @record.setter
    def record(self, record: RunRecord) -> None:
        self.stack.workspace.set_tag("dev", TAG, record.encode())

    def engine_ups(self) -> list[str]:
        """The argument lists of the `pulumi up`s the engine was started with."""
        calls = self.calls.read_text().splitlines() if self.calls.exists() else []
        return [call for call in calls if call.startswith("up ")]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def canary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], prometheus: FakePrometheus
) -> Iterator[Canary]:
    world = Canary(tmp_path, capsys, prometheus)
    monkeypatch.setattr(auto, "select_stack", world.select_stack)
    monkeypatch.setattr(runner, "SystemClock", lambda: world.clock)
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own handler: give pytest's back
    yield world
    signal.signal(signal.SIGTERM, sigterm)


def a_killed_run(steps: tuple[int, ...] = (10, 50, 100), step: int = 0) -> RunRecord:
    """The record a run killed on another machine left on the stack, at `step`."""
    return replace(RunRecord.begin(steps), host="ci-runner-7", pid=4242).moved_to(Progress(step=step))


# status


def test_status_json_shows_both_versions_the_deployed_split_the_header_route_mirroring_and_the_run(
    canary: Canary,
) -> None:
    canary.deploy(canaryWeight="10", mirrorPercent="20", **HEADER_ROUTE)
    canary.configure(canaryWeight="25")  # set, not yet deployed: status tells the config from what is served
    canary.prometheus.answer = measured({"v1": ("99.5", "120"), "v2": ("97", "80")}, window="30s")
    record = a_killed_run()
    canary.record = record
    ran = canary("status", "--json", "--window", "30s")
    assert ran.code == 0
    checks = [
        {"name": "request-success-rate", "bound": 99.0, "kind": "min", "error": None},
        {"name": "request-duration", "bound": 500.0, "kind": "max", "error": None},
    ]
    assert ran.result == {
        "stack": "dev",
        "versions": {
            "stable": {
                "version": "v1",
                "image": "quay.io/shardul/nginx:v1",
                "replicas": 2,
                "weight": 75,
                "checks": [{**checks[0], "value": 99.5, "passed": True}, {**checks[1], "value": 120.0, "passed": True}],
            },
            "canary": {
                "version": "v2",
                "image": "quay.io/shardul/nginx:v2",
                "replicas": 1,
                "weight": 25,
                "checks": [{**checks[0], "value": 97.0, "passed": False}, {**checks[1], "value": 80.0, "passed": True}],
            },
        },
        "deployed_split": {"v1": 90, "v2": 10},
        "header": ["x-canary", "3f9c2a7be1d04c58"],
        "mirror_percent": 20,
        "run": json.loads(json.dumps(record.as_dict())),
    }
    assert ran.err == [  # the human view goes to stderr, so stdout is only the JSON
        "stable v1: quay.io/shardul/nginx:v1, 2 replicas, weight 75",
        "  request-success-rate 99.50% (>= 99%) ok",
        "  request-duration 120.00ms (<= 500ms) ok",
        "canary v2: quay.io/shardul/nginx:v2, 1 replicas, weight 25",
        "  request-success-rate 97.00% (>= 99%) FAIL",
        "  request-duration 80.00ms (<= 500ms) ok",
        "deployed split: {'v1': 90, 'v2': 10}",
        "header route: x-canary: 3f9c2a7be1d04c58 -> v2",
        f"run: {record.describe()}",
    ]
    assert canary.selected == [("dev", str(canary.project))]
    assert canary.engine_ups() == [], "status changes nothing"


def test_status_of_a_stack_never_updated_says_so_on_stdout(canary: Canary) -> None:
    canary.stack.resources = []
    canary.prometheus.answer = measured(NO_DATA)
    ran = canary("status")
    assert (ran.code, ran.err) == (0, [])
    assert ran.lines[1] == "  request-success-rate: no answer (no data: the query returned 0 series, one is needed)"
    assert ran.lines[-2:] == ["deployed split: none (the stack has no update yet)", "run: none"]
    assert not any(line.startswith("header route") for line in ran.lines)


def test_status_judges_by_the_bounds_and_checks_given(canary: Canary) -> None:
    custom = 'p50:max:100:histogram_quantile(0.5, x{destination_workload=~"$workload"}[$window])'
    ran = canary("status", "--json", "--success-rate", "99.9", "--max-latency", "100", "--check", custom)
    stable = ran.result["versions"]["stable"]["checks"]
    assert [(check["name"], check["bound"], check["passed"]) for check in stable] == [
        ("request-success-rate", 99.9, False),
        ("request-duration", 100.0, False),
        ("p50", 100.0, False),
    ]
    ran = canary("status", "--json", "--no-builtin-checks", "--check", custom)
    assert [check["name"] for check in ran.result["versions"]["canary"]["checks"]] == ["p50"]


# run


def test_a_healthy_run_walks_every_step_then_promotes(canary: Canary) -> None:
    ran = canary("run", "--json")  # every option at its default
    assert ran.code == Outcome.PROMOTED.exit_code == 0
    result = ran.result
    run = result["run"]
    assert (result["outcome"], result["weight"], result["deployed"]) == ("promoted", 0, "v2 100% / v1 0%")
    assert result["steps"] == [10, 25, 50, 100]
    assert [analysis["verdict"] for analysis in result["analyses"]] == ["advance"] * 3 + ["complete"]
    assert result["analyses"][1] == {
        "step": 2,
        "weight": 25,
        "verdict": "advance",
        "checks": [
            {**SUCCESS_RATE, "value": 100.0, "passed": True, "error": None},
            {**LATENCY, "value": 80.0, "passed": True, "error": None},
        ],
    }
    assert [(update["what"], update["changes"]) for update in result["updates"][:2]] == [
        ("step 1/4", {"canaryWeight": "10"}),
        ("step 2/4", {"canaryWeight": "25"}),
    ]
    seconds = [update["seconds"] for update in result["updates"]]
    assert all(0 < second < 30 for second in seconds), "each update's own time (the engine stand-in's, real)"
    assert result["update_seconds"] == pytest.approx(sum(seconds), abs=0.002)
    assert (result["stack"], result["turned_off"]) == ("dev", [])
    assert result["elapsed_seconds"] == 4 * 60.0, "four analyses of the default 60 s interval, on the virtual clock"
    assert canary.stack.messages[1:] == [
        f"canary {run}: step 1/4: canaryWeight=10",
        f"canary {run}: step 2/4: canaryWeight=25",
        f"canary {run}: step 3/4: canaryWeight=50",
        f"canary {run}: step 4/4: canaryWeight=100",
        f"canary {run}: promote: scale v2 to 2 replicas: canaryReplicas=2",
        f"canary {run}: promote: make v2 stable and retire v1: stableVersion=v2, stableImage=quay.io/shardul/nginx:v2, "
        "stableReplicas=2, canaryVersion=v1, canaryImage=quay.io/shardul/nginx:v1, canaryReplicas=0, canaryWeight=0",
    ]
    assert [canary.config(key) for key in ("stableVersion", "stableReplicas", "canaryVersion", "canaryWeight")] == [
        "v2",
        "2",
        "v1",
        "0",
    ]
    assert canary.served() == "v2 100% / v1 0%"
    assert canary.record is None, "a finished run leaves no record"
    assert ran.err[0] == f"canary run {run} on stack dev: steps 10,25,50,100"
    ticks = [line.split(" | ")[0] for line in ran.err if line.startswith("  step 1 weight 10: ")]
    assert ticks == [f"  step 1 weight 10: {left}s left" for left in (50, 40, 30, 20, 10)] + [
        "  step 1 weight 10: request-success-rate 100.00% (>= 99%) ok"
    ], "the live view every 10 s (the default --poll)"
    assert ran.err[-3:] == [
        "outcome: promoted, weight 0",
        "deployed: v2 100% / v1 0%",
        "Pulumi.dev.yaml has the new settings: commit it, or the next `pulumi up` from a checkout without them "
        "(the deploy workflow) puts the old ones back",
    ]


def test_a_run_with_no_promote_stops_at_the_last_step(canary: Canary) -> None:
    ran = canary("run", "--steps", "50,100", "--no-promote", "--interval", "30s", "--poll", "10s")
    assert ran.code == 0
    assert ran.lines[-3:-1] == ["outcome: completed, weight 100", "deployed: v1 0% / v2 100%"]
    assert ran.lines[-1].startswith("Pulumi.dev.yaml has the new settings: commit it")
    assert canary.config("canaryWeight") == "100"
    assert canary.config("stableVersion") is None, "still the default, v1: no promotion"
    assert canary.served() == "v1 0% / v2 100%"
    assert len(canary.stack.messages) == 1 + 2, "the two steps, no promotion"
    assert canary.clock.now == 1_000.0 + 2 * 30.0
    checks = "request-success-rate 100.00% (>= 99%) ok | request-duration 80.00ms (<= 500ms) ok"
    assert [line for line in ran.lines if line.startswith("  step 1 ")] == [  # the live view, every --poll
        f"  step 1 weight 50: 20s left | {checks}",
        f"  step 1 weight 50: 10s left | {checks}",
        f"  step 1 weight 50: {checks} -> advance",
    ]


def test_failing_checks_roll_back_to_stable_and_exit_1(canary: Canary) -> None:
    canary.prometheus.answer = measured(FAILING)
    ran = canary("run", "--steps", "10,50,100", "--threshold", "2", "--interval", "10s", "--poll", "10s")
    assert ran.code == Outcome.ROLLED_BACK.exit_code == 1
    assert ran.lines[-3:-1] == ["outcome: rolled-back, weight 0", "deployed: v1 100% / v2 0%"]
    assert [line.rsplit("-> ", 1)[1] for line in ran.lines if "-> " in line] == ["hold", "rollback"]
    assert canary.stack.messages[-1].endswith(": roll back from weight 10: canaryWeight=0")
    assert canary.config("canaryWeight") == "0"
    assert canary.served() == "v1 100% / v2 0%"
    assert canary.record is None


def test_a_rollback_is_finished_even_when_someone_elses_update_came_meanwhile(canary: Canary) -> None:
    """A run's step stops at an update that slipped in (tests below); its rollback never does: all traffic back
    to stable comes first, whoever else deployed."""
    someone_deploys_during_the_first_analysis(canary, measured(FAILING), stableReplicas="3")  # keeps the split
    ran = canary("run", "--steps", "10,100", "--threshold", "1", "--interval", "10s", "--poll", "10s")
    assert ran.code == Outcome.ROLLED_BACK.exit_code
    assert ran.lines[-3:-1] == ["outcome: rolled-back, weight 0", "deployed: v1 100% / v2 0%"]
    assert canary.stack.messages[-2] == "pulumi up by hand"
    assert canary.record is None


def someone_deploys_during_the_first_analysis(canary: Canary, answer: Answer, **config: str) -> None:
    """Prometheus `answer`s; while the run waits for its first analysis, someone runs `pulumi up` with `config`."""
    by_hand: list[str] = []

    def meanwhile(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/api/v1/query") and not by_hand:
            by_hand.append("deployed")
            canary.deploy(**config)
        answer(handler)

    canary.prometheus.answer = meanwhile


@pytest.mark.parametrize("steps", ["10,50", "10"])
def test_someone_elses_update_during_an_interval_that_keeps_the_split_does_not_stop_the_run(
    canary: Canary, steps: str
) -> None:
    """The run checks what is served before each verdict: an update that serves the same split is not the run's
    business (the base of its next update's check), whether a step or the promotion comes next."""
    someone_deploys_during_the_first_analysis(canary, measured(HEALTHY), stableReplicas="3")
    ran = canary("run", "--json", "--steps", steps, "--interval", "10s", "--poll", "10s")
    assert (ran.code, ran.result["outcome"]) == (0, "promoted")
    assert canary.stack.messages[2] == "pulumi up by hand"


def test_the_interval_is_kept_to_the_millisecond(canary: Canary) -> None:
    ran = canary("run", "--json", "--steps", "100", "--no-promote", "--interval", "1500ms", "--poll", "1s")
    assert ran.result["elapsed_seconds"] == 1.5
    assert [line.split(" | ")[0] for line in ran.err if "left" in line] == ["  step 1 weight 100: 0s left"]


@pytest.mark.parametrize(
    ("option", "measures", "analyses"),
    [
        ([], FAILING, 5),  # the default threshold: 5 failed analyses
        (["--threshold", "1"], FAILING, 1),
        ([], NO_DATA, 4),  # the default error limit: 4 unanswered analyses in a row
        (["--error-limit", "1"], NO_DATA, 1),
    ],
)
def test_the_run_rolls_back_after_threshold_failed_or_error_limit_unanswered_analyses(
    canary: Canary, option: list[str], measures: Mapping[str, tuple[str, str]], analyses: int
) -> None:
    canary.prometheus.answer = measured(measures)
    ran = canary("run", "--json", "--steps", "10,100", "--interval", "10s", "--poll", "10s", *option)
    assert ran.code == 1
    verdicts = [analysis["verdict"] for analysis in ran.result["analyses"]]
    assert verdicts == ["hold"] * (analyses - 1) + ["rollback"]


@pytest.mark.parametrize(("window", "refused"), [("1s", False), ("0s", True), ("500ms", True), ("soon", True)])
def test_a_window_under_a_second_is_refused_by_the_parser(
    canary: Canary, window: str, refused: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    if not refused:
        assert canary("status", "--window", window).code == 0
        return
    with pytest.raises(SystemExit) as stopped:
        canary("status", "--window", window)
    assert stopped.value.code == 2
    message = f"argument --window: --window {window!r}: must be a duration like 60s or 1m, at least 1s"
    assert capsys.readouterr().err.splitlines()[-1] == f"canary status: error: {message}"


@pytest.mark.parametrize("option", ["--threshold", "--error-limit"])
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two"])
def test_a_count_below_one_is_refused_by_the_parser(
    canary: Canary, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        canary("run", option, value)
    assert refused.value.code == 2
    message = f"canary run: error: argument {option}: {value!r}: must be a whole number, at least 1"
    assert capsys.readouterr().err.splitlines()[-1] == message
    assert canary.engine_ups() == []


def test_resume_continues_the_killed_run_from_its_recorded_step(canary: Canary) -> None:
    canary.deploy(canaryWeight="10")
    killed = a_killed_run((10, 50, 100), step=1)
    canary.record = killed
    ran = canary("run", "--resume", "--json", "--steps", "20,40", "--no-promote")
    assert ran.code == 0
    assert (ran.result["run"], ran.result["steps"], ran.result["outcome"]) == (killed.id, [10, 50, 100], "completed")
    assert canary.stack.messages[-2:] == [
        f"canary {killed.id}: step 2/3: canaryWeight=50",
        f"canary {killed.id}: step 3/3: canaryWeight=100",
    ]
    assert canary.record is None


def test_someone_elses_update_during_an_interval_stops_the_run_holding_its_record(canary: Canary) -> None:
    # The deploy workflow's `pulumi up`, with main's config (weight 0), while the run waits for its analysis.
    someone_deploys_during_the_first_analysis(canary, measured(HEALTHY), canaryWeight="0")
    ran = canary("run", "--steps", "10,100", "--interval", "10s", "--poll", "10s")
    assert ran.code == Outcome.HELD.exit_code == 1
    record = canary.record
    assert record is not None and record.step == 0, "kept: `canary run --resume` or `canary abort` ends it"
    held = ran.lines.index(
        "someone else changed what stack dev serves: v1 100% / v2 0%, not weight 10 for v2 as this run deployed "
        "(last update: 'pulumi up by hand')"
    )
    assert ran.lines[held + 1] == (
        f"run {record.id} stops here without another change; its record is kept: `canary run --resume` reapplies "
        "its step, `canary abort` sends all traffic back to stable"
    )
    assert ran.lines[-3:-1] == ["outcome: held, weight 0", "deployed: v1 100% / v2 0%"]
    assert canary.stack.messages[-1] == "pulumi up by hand", "the run made no other change"


def test_resuming_a_promotion_killed_after_its_last_phase_just_ends_the_run(canary: Canary) -> None:
    swapped = {"stableVersion": "v2", "stableImage": "quay.io/shardul/nginx:v2", "canaryVersion": "v1"}
    canary.deploy(**swapped, canaryImage="quay.io/shardul/nginx:v1", canaryReplicas="0")
    killed = a_killed_run(step=3).entering(RunPhase.PROMOTING)  # killed between the swap and clearing its record
    canary.record = killed
    ran = canary("run", "--resume")
    assert ran.code == Outcome.PROMOTED.exit_code
    assert ran.lines[1:] == [
        f"run {killed.id} was promoting: finishing the promotion",
        "the promotion's last phase had been applied; nothing left to do",
        "outcome: promoted, weight 0",
        "deployed: v2 100% / v1 0%",
    ], "no update, so no config to commit"
    assert canary.stack.messages[-1] == "pulumi up by hand"
    assert canary.record is None


@pytest.mark.parametrize("elsewhere", ["aborted", "taken over"])
def test_a_run_whose_record_is_taken_during_an_interval_stops_without_another_change(
    canary: Canary, elsewhere: str
) -> None:
    healthy = measured(HEALTHY)
    other = a_killed_run((10, 100))

    def meanwhile(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/api/v1/query") and canary.record is not None and canary.record.id != other.id:
            if elsewhere == "aborted":  # `canary abort` on another machine: record removed, weight 0
                del canary.stack.workspace.tags["dev"][TAG]
                canary.deploy("canary: abort: canaryWeight=0", canaryWeight="0")
            else:  # `canary run --resume` on another machine
                canary.record = replace(canary.record, host=other.host, pid=other.pid)
        healthy(handler)

    canary.prometheus.answer = meanwhile
    ran = canary("run", "--steps", "10,100", "--interval", "10s", "--poll", "10s")
    assert ran.code == Outcome.LOST.exit_code == 1
    run = canary.stack.messages[1].split(":")[0].split()[1]
    by = "aborted" if elsewhere == "aborted" else f"taken over by {canary.record.describe() if canary.record else ''}"
    assert f"run {run} no longer owns stack dev ({by}); stopping without changes" in ran.lines
    assert ran.lines[-3].startswith("outcome: lost, weight ")
    assert len(canary.stack.messages) == 2 + (elsewhere == "aborted"), "no change after the run's first step"


@pytest.mark.parametrize(
    ("phase", "engine_fails", "code", "said"),
    [
        (RunPhase.ROLLING_BACK, False, 1, "run {id} was rolling back: finishing the rollback"),
        (
            RunPhase.ROLLING_BACK,
            True,
            1,
            "run {id} stopped; its progress is kept on the stack: `canary run --resume` "
            "or `canary abort` finishes the rollback, `canary abort` sends all traffic back to stable",
        ),
        (
            RunPhase.PROMOTING,
            True,
            1,
            "run {id} stopped; its progress is kept on the stack: `canary run --resume` "
            "finishes the promotion, `canary abort` sends all traffic back to stable",
        ),
    ],
)
def test_resume_finishes_the_phase_a_killed_run_was_in(
    canary: Canary, phase: RunPhase, engine_fails: bool, code: int, said: str
) -> None:
    canary.deploy(canaryWeight="50")
    killed = a_killed_run(step=1).entering(phase)
    canary.record = killed
    if engine_fails:
        engine_stand_in(canary.bin, "error: the stack is locked\n", 255)
    ran = canary("run", "--resume")
    assert ran.code == code
    assert said.format(id=killed.id) in ran.lines
    if phase is RunPhase.ROLLING_BACK and not engine_fails:
        assert canary.stack.messages[-1] == f"canary {killed.id}: roll back from weight 50: canaryWeight=0"
        assert canary.record is None
    else:
        assert canary.record is not None and canary.record.phase is phase, "kept, for the next resume or abort"


def a_sigterm_during_the_first_query(then: Answer | None = None) -> Answer:
    """A cancelled CI job: one SIGTERM to the command's main thread during its first query, sent after Prometheus
    answers `then` (or, without `then`, instead of an answer). One only: a second could land in the next test.
    (The run may still hang up before the answer is flushed: FakePrometheus keeps that error, not prints it.)"""
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    sent: list[bool] = []

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        if then is not None:
            then(handler)
        if handler.path.startswith("/api/v1/query") and not sent:
            sent.append(True)
            signal.pthread_kill(main_thread, signal.SIGTERM)

    return answer


def test_a_sigterm_during_an_analysis_stops_the_run_keeping_its_record(canary: Canary) -> None:
    canary.prometheus.answer = a_sigterm_during_the_first_query(then=measured(HEALTHY))
    ran = canary("run", "--steps", "10,100", "--interval", "10s", "--poll", "10s")
    assert ran.code == Outcome.INTERRUPTED.exit_code
    record = canary.record
    assert record is not None
    assert ran.lines[-5:-1] == [
        "interrupted",  # a Ctrl-C has no message of its own
        f"run {record.id} stopped; its progress is kept on the stack: `canary run --resume` continues it, "
        "`canary abort` sends all traffic back to stable",
        "outcome: interrupted, weight 10",
        "deployed: v1 90% / v2 10%",
    ]


def test_a_second_run_is_refused_while_one_is_recorded(canary: Canary) -> None:
    killed = a_killed_run()
    canary.record = killed
    ran = canary("run")
    assert ran.code == Outcome.REFUSED.exit_code == 2
    assert ran.err == [
        f"canary run: stack dev already has a canary run: {killed.describe()}.",
        "Resume it with `canary run --resume`, or end it with `canary abort` (weight back to 0).",
    ]
    assert canary.engine_ups() == []
    assert canary.record == killed


def test_resume_without_a_run_is_refused(canary: Canary) -> None:
    ran = canary("run", "--resume")
    assert ran.code == 2
    assert ran.err == ["canary run: stack dev has no canary run to resume; start one with `canary run`"]
    assert canary.record is None


def test_a_run_of_steps_the_stack_cannot_take_is_refused_before_anything_changes(canary: Canary) -> None:
    canary.configure(canaryReplicas="0")
    ran = canary("run", "--steps", "10,100")
    assert ran.code == 2
    assert ran.err == [
        "canary run: invalid stack configuration (nothing was changed):",
        "  - canaryReplicas = 0: must be at least 1 while canaryWeight (10) sends it traffic",
        "Fix with `pulumi config set <key> <value>`; see Pulumi.yaml for every setting.",
    ]
    assert canary.engine_ups() == [] and canary.record is None


def test_a_failed_update_stops_the_run_and_keeps_its_record_for_resume(canary: Canary) -> None:
    engine_stand_in(canary.bin, "error: the VirtualService was refused by the API server\n", 1)
    ran = canary("run", "--json", "--steps", "10,100")
    assert ran.code == Outcome.UPDATE_FAILED.exit_code == 1
    assert (ran.result["outcome"], ran.result["deployed"]) == ("update-failed", "v1 100% / v2 0%")
    assert "error: the VirtualService was refused by the API server" in ran.err
    run = ran.result["run"]
    assert (
        f"run {run} stopped; its progress is kept on the stack: `canary run --resume` continues it, "
        "`canary abort` sends all traffic back to stable"
    ) in ran.err
    record = canary.record
    assert record is not None and (record.id, record.step) == (ran.result["run"], 0)
    assert canary.config("canaryWeight") == "0", "the config is what is deployed"


# abort, promote, guard


def test_abort_sends_all_traffic_to_stable_turns_off_the_header_route_and_mirroring_and_ends_the_run(
    canary: Canary,
) -> None:
    canary.deploy(canaryWeight="50", mirrorPercent="20", **HEADER_ROUTE)
    canary.record = a_killed_run(step=1)
    ran = canary("abort", "--json")
    assert ran.code == Outcome.ABORTED.exit_code == 0
    result = ran.result
    assert result["updates"][0]["changes"] == {"canaryWeight": "0", "canaryHeaderName": "", "mirrorPercent": "0"}
    assert {key: result[key] for key in ("stack", "run", "outcome", "weight", "deployed", "turned_off", "steps")} == {
        "stack": "dev",
        "run": "",
        "outcome": "aborted",
        "weight": 0,
        "deployed": "v1 100% / v2 0%",
        "turned_off": ["header route x-canary", "mirroring of 20% of requests"],
        "steps": [],
    }
    assert canary.stack.messages[-1] == "canary: abort: abort: canaryWeight=0, canaryHeaderName=, mirrorPercent=0"
    assert [canary.config(key) for key in ("canaryWeight", "canaryHeaderName", "mirrorPercent")] == ["0", "", "0"]
    assert canary.served() == "v1 100% / v2 0%"
    assert canary.record is None
    assert "turned off: header route x-canary, mirroring of 20% of requests" in ran.err
    assert ran.err[-3:-1] == ["outcome: aborted, weight 0", "deployed: v1 100% / v2 0%"]


def test_an_abort_that_keeps_failing_is_retried_then_exits_1_saying_what_is_deployed(canary: Canary) -> None:
    canary.deploy(canaryWeight="50")
    canary.record = a_killed_run(step=1)
    engine_stand_in(canary.bin, "error: the stack is locked\n", 255)
    ran = canary("abort")
    assert ran.code == Outcome.UPDATE_FAILED.exit_code == 1
    assert ran.err == [
        "canary abort: pulumi up failed:",
        "error: the stack is locked",
        "deployed: v1 50% / v2 50%",
        "stack config set to what is deployed: canaryWeight=50",
    ]
    assert canary.clock.on_sleep == SLOW_RETRIES, "three attempts, waiting between them"
    assert len(canary.engine_ups()) == 3
    record = canary.record
    assert record is not None and record.phase.value == "rollback", "a later abort or resume finishes the rollback"


def test_promote_is_refused_while_a_run_is_recorded(canary: Canary) -> None:
    canary.deploy(canaryWeight="50")
    killed = a_killed_run(step=1)
    canary.record = killed
    ran = canary("promote")
    assert ran.code == Outcome.REFUSED.exit_code
    assert ran.err == [f"canary promote: {killed.describe()} is in progress; let it finish or `canary abort` it first"]
    assert canary.engine_ups() == []
    assert canary.served() == "v1 50% / v2 50%"


def test_promote_makes_the_canary_stable_phase_by_phase(canary: Canary) -> None:
    canary.deploy(canaryWeight="10")
    ran = canary("promote")
    assert ran.code == Outcome.PROMOTED.exit_code
    assert canary.stack.messages[-3:] == [
        "canary: promote: scale v2 to 2 replicas: canaryReplicas=2",
        "canary: promote: send all traffic to v2: canaryWeight=100",
        "canary: promote: make v2 stable and retire v1: stableVersion=v2, stableImage=quay.io/shardul/nginx:v2, "
        "stableReplicas=2, canaryVersion=v1, canaryImage=quay.io/shardul/nginx:v1, canaryReplicas=0, canaryWeight=0",
    ]
    assert canary.served() == "v2 100% / v1 0%"
    assert ran.lines[-3:-1] == ["outcome: promoted, weight 0", "deployed: v2 100% / v1 0%"]
    assert ran.lines[-1].startswith("Pulumi.dev.yaml has the new settings: commit it")


def test_promote_of_a_retired_canary_is_refused(canary: Canary) -> None:
    canary.configure(canaryReplicas="0")
    ran = canary("promote")
    assert ran.code == 2
    assert ran.err == [
        "canary promote: canaryReplicas = 0 and canaryWeight = 0: v2 is a retired version, not a canary; "
        "set canaryVersion, canaryImage and canaryReplicas for the next release first"
    ]


def test_a_promotion_the_engine_fails_exits_1_with_what_is_deployed_and_the_config_put_back(canary: Canary) -> None:
    canary.deploy(canaryWeight="10")
    engine_stand_in(canary.bin, "error: a Deployment did not become ready\n", 1)
    ran = canary("promote")
    assert ran.code == Outcome.UPDATE_FAILED.exit_code
    assert ran.err == [
        "canary promote: pulumi up failed:",
        "error: a Deployment did not become ready",
        "deployed: v1 90% / v2 10%",
        "stack config set to what is deployed: canaryReplicas=1",
    ]
    assert canary.config("canaryReplicas") == "1"


def test_an_interrupted_promotion_exits_130_saying_what_is_deployed(canary: Canary) -> None:
    canary.deploy(canaryWeight="10")
    engine_stand_in(canary.bin, "", 0, interrupts=1)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ran = canary("promote", "--json")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ran.code == Outcome.INTERRUPTED.exit_code == 130
    assert ran.out == "", "no result; the notices go with the progress, to stderr"
    assert ran.err == [
        "promote: scale v2 to 2 replicas: canaryReplicas=2 (pulumi up)",
        "interrupted: cancelling the update; pulumi finishes the operations in flight and unlocks the stack "
        "(interrupt again to force it, which can leave operations pending)",
        "canary promote: interrupted: the update was cancelled",
        "deployed: v1 90% / v2 10%",
        "stack config set to what is deployed: canaryReplicas=1",
    ]
    assert canary.config("canaryReplicas") == "1"


def test_a_sigterm_while_status_waits_for_prometheus_ends_it_as_interrupted(canary: Canary) -> None:
    def not_handled(signum: int, frame: object) -> None:
        raise AssertionError("canary did not handle SIGTERM")

    signal.signal(signal.SIGTERM, not_handled)  # so a missing handler fails this test, not the whole session
    canary.prometheus.answer = a_sigterm_during_the_first_query()
    ran = canary("status")
    assert (ran.code, ran.err) == (Outcome.INTERRUPTED.exit_code, ["canary status: interrupted"])


def test_guard_passes_without_a_run(canary: Canary) -> None:
    ran = canary("guard", "--json")
    assert (ran.code, ran.out) == (0, '{\n  "stack": "dev",\n  "run": null\n}\n')
    assert ran.err == ["stack dev: no canary run in progress"]


def test_guard_fails_while_a_run_is_in_progress(canary: Canary) -> None:
    killed = a_killed_run()
    canary.record = killed
    ran = canary("guard", "--json")
    assert ran.code == Outcome.REFUSED.exit_code
    assert ran.result == {"stack": "dev", "run": json.loads(json.dumps(killed.as_dict()))}
    assert ran.err == [
        f"stack dev has a canary run in progress: {killed.describe()}.",
        "Deploying now would change the split under it. Let it finish, `canary abort` it, "
        "or deploy with force (the workflow's `force` input).",
    ]


# options every command has


def test_verbose_shows_the_engines_output(canary: Canary) -> None:
    quiet = canary("abort")
    assert "Resources:" not in quiet.lines
    loud = canary("abort", "--verbose")
    assert loud.code == 0
    assert loud.lines[1:4] == [
        "Updating (dev):",
        "    ~ kubernetes:networking.istio.io/v1:VirtualService nginx updated",
        "Resources:",
    ]


def test_without_stack_the_workspaces_selected_stack_is_used(canary: Canary, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real LocalWorkspace asks the `pulumi` on PATH (the stand-in) which stack is selected."""
    engine_stand_in(canary.bin, ENGINE_SAYS, 0, selected="prod")
    monkeypatch.setenv("PATH", f"{canary.bin}{os.pathsep}{os.environ['PATH']}")
    ran = canary("guard", "--json", stack=None)
    assert (ran.code, ran.result) == (0, {"stack": "prod", "run": None})
    assert canary.selected == [("prod", str(canary.project))]


def test_without_stack_and_none_selected_it_is_refused(canary: Canary, monkeypatch: pytest.MonkeyPatch) -> None:
    engine_stand_in(canary.bin, ENGINE_SAYS, 0, selected=None)
    monkeypatch.setenv("PATH", f"{canary.bin}{os.pathsep}{os.environ['PATH']}")
    ran = canary("status", stack=None)
    assert ran.code == 2
    assert ran.err == ["canary status: no stack selected: pass --stack NAME or run `pulumi stack select NAME`"]
    assert canary.selected == []


def own_pack(project: Path, venv: bool) -> Path:
    pack = project / "policy"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\n")
    if venv:
        (pack / "venv").mkdir()
    return pack


def test_updates_run_with_the_projects_own_policy_pack(canary: Canary) -> None:
    pack = own_pack(canary.project, venv=True)
    assert canary("abort").code == 0
    assert canary.engine_ups()[0].endswith(f"--suppress-progress --policy-pack {pack}")


def test_the_own_policy_pack_without_its_virtualenv_is_refused_before_any_change(canary: Canary) -> None:
    pack = own_pack(canary.project, venv=False)
    ran = canary("abort")
    assert ran.code == 2
    assert ran.err == [
        f"canary abort: the policy pack {pack} has no virtualenv ({pack / 'venv'}): run scripts/venv, "
        "or pass --no-policy-pack"
    ]
    assert canary.engine_ups() == []


def test_explicit_policy_packs_replace_the_own_one(canary: Canary) -> None:
    own_pack(canary.project, venv=False)
    assert canary("abort", "--policy-pack", "/packs/a", "--policy-pack", "/packs/b").code == 0
    assert canary.engine_ups()[0].endswith("--suppress-progress --policy-pack /packs/a --policy-pack /packs/b")


def test_no_policy_pack_runs_updates_without_any(canary: Canary) -> None:
    own_pack(canary.project, venv=False)
    assert canary("abort", "--no-policy-pack", "--policy-pack", "/packs/a").code == 0
    assert canary.engine_ups()[0].endswith("--suppress-progress")


def test_a_project_without_a_policy_pack_runs_updates_without_any(canary: Canary) -> None:
    assert canary("abort").code == 0
    assert canary.engine_ups()[0].endswith("--suppress-progress")


def test_help_says_what_canary_is_and_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as helped:
        cli.main(["--help"])
    assert helped.value.code == 0
    assert cli.__doc__ is not None and cli.__doc__ in " ".join(capsys.readouterr().out.split())  # argparse wraps it
    with pytest.raises(SystemExit) as refused:
        cli.main([])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "canary: error: the following arguments are required: command"
