"""The rollout's orchestration with the Pulumi engine and Prometheus stood in for.

The stack stand-in validates every change with the program's real settings loader
and keeps config and tags as the engine would; the clock is virtual, so an hour of
intervals runs in milliseconds. The same orchestration runs against the real engine,
a local cluster and a real Prometheus in tests/e2e/test_canary_cli.py; the pure parts are in tests/test_rollout.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from rollout.checks import Check, CheckResult, Target, builtin_checks
from rollout.gate import Gate, Verdict
from rollout.record import RunRecord
from rollout.runner import Report, Rollout, RunOptions, RunRefused
from rollout.stack import ApplyError
from settings import Settings, SettingsError, load_settings
from tests.harness import EXISTING_CLUSTER, DictConfig

SUCCESS, LATENCY = builtin_checks()


class StackStandIn:
    """Config, updates and tags of one stack; every change validated by the real settings loader."""

    name = "dev"

    def __init__(self, config: dict[str, str] | None = None) -> None:
        self.config = {**EXISTING_CLUSTER, "stableReplicas": "2", "canaryReplicas": "1", **(config or {})}
        self.updates: list[tuple[dict[str, str], str]] = []
        self.tags: dict[str, str] = {}
        self.fail_when: Mapping[str, str] | None = None

    def settings(self, changes: Mapping[str, str] | None = None) -> Settings:
        return load_settings(DictConfig({**self.config, **(changes or {})}))

    def apply(self, changes: Mapping[str, str], message: str) -> float:
        self.settings(changes)
        if self.fail_when is not None and self.fail_when.items() <= changes.items():
            raise ApplyError("pulumi up failed; stack config restored")
        self.config.update(changes)
        self.updates.append((dict(changes), message))
        return 4.0

    def read_record(self) -> RunRecord | None:
        return RunRecord.decode(self.tags["run"]) if "run" in self.tags else None

    def write_record(self, record: RunRecord) -> None:
        self.tags["run"] = record.encode()

    def clear_record(self) -> None:
        self.tags.pop("run", None)

    @property
    def weights(self) -> list[str]:
        return [changes["canaryWeight"] for changes, _ in self.updates if "canaryWeight" in changes]


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep.append(seconds)


class Metrics:
    """Answers each analysis from a script of results (the last one repeats); records the targets asked."""

    def __init__(self, *script: list[CheckResult]) -> None:
        self.script = list(script)
        self.targets: list[Target] = []

    def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]:
        self.targets.append(target)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class Screen:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ticks: list[float] = []
        self.verdicts: list[Verdict] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def tick(self, step: int, weight: int, results: Sequence[CheckResult], seconds_left: float) -> None:
        self.ticks.append(seconds_left)

    def analysed(self, step: int, weight: int, results: Sequence[CheckResult], verdict: Verdict) -> None:
        self.verdicts.append(verdict)


HEALTHY = [CheckResult(SUCCESS, 100.0), CheckResult(LATENCY, 80.0)]
ERRORS = [CheckResult(SUCCESS, 90.0), CheckResult(LATENCY, 80.0)]
DOWN = [CheckResult(SUCCESS, None, "cannot be reached"), CheckResult(LATENCY, None, "cannot be reached")]
OPTIONS = RunOptions(Gate((10, 25, 50, 100), threshold=2, error_limit=3), [SUCCESS, LATENCY], 60.0, "1m", 60.0)


def start(stack: StackStandIn, metrics: Metrics, options: RunOptions = OPTIONS) -> tuple[Rollout, RunRecord]:
    rollout = Rollout(stack, metrics, Screen(), VirtualClock())
    return rollout, rollout.claim(options.gate.steps, resume=False)


def test_a_healthy_canary_walks_every_step_then_is_promoted() -> None:
    stack, metrics = StackStandIn(), Metrics(HEALTHY)
    rollout, record = start(stack, metrics)
    report = rollout.run(OPTIONS, record)
    assert report.outcome == "promoted"
    assert stack.weights == ["10", "25", "50", "100", "0"]
    assert [changes for changes, _ in stack.updates[4:]] == [
        {"canaryReplicas": "2"},
        {
            "stableVersion": "v2",
            "stableImage": "quay.io/shardul/nginx:v2",
            "stableReplicas": "2",
            "canaryVersion": "v1",
            "canaryImage": "quay.io/shardul/nginx:v1",
            "canaryReplicas": "0",
            "canaryWeight": "0",
        },
    ]
    assert all(f"canary {record.id}: " in message for _, message in stack.updates)
    assert metrics.targets[0] == Target("default", "nginx-v2", "1m")
    assert stack.tags == {}, "a finished run leaves no record"
    assert rollout.clock.monotonic() == 4 * 60.0


def test_failing_checks_roll_back_to_zero_after_the_threshold() -> None:
    stack, metrics = StackStandIn(), Metrics(HEALTHY, ERRORS, ERRORS)
    rollout, record = start(stack, metrics)
    report = rollout.run(OPTIONS, record)
    assert (report.outcome, report.weight) == ("rolled-back", 0)
    assert stack.weights == ["10", "25", "0"]
    assert [analysis["verdict"] for analysis in report.analyses] == ["advance", "hold", "rollback"]
    assert stack.settings().app.stable.label == "v1", "a rollback never promotes"
    assert stack.tags == {}


def test_prometheus_down_never_advances_and_rolls_back_after_the_error_limit() -> None:
    stack, metrics = StackStandIn(), Metrics(DOWN)
    rollout, record = start(stack, metrics)
    report = rollout.run(OPTIONS, record)
    assert report.outcome == "rolled-back"
    assert stack.weights == ["10", "0"]
    assert [analysis["verdict"] for analysis in report.analyses] == ["hold", "hold", "rollback"]


def test_the_live_view_ticks_every_poll_until_the_interval_ends() -> None:
    stack, metrics = StackStandIn(), Metrics(HEALTHY)
    options = replace(OPTIONS, gate=Gate((50,), 2, 3), interval=60.0, poll=10.0, promote=False)
    rollout, record = start(stack, metrics, options)
    report = rollout.run(options, record)
    assert report.outcome == "completed"
    screen = rollout.view
    assert isinstance(screen, Screen)
    assert screen.ticks == [50.0, 40.0, 30.0, 20.0, 10.0]
    assert screen.verdicts == [Verdict.COMPLETE]
    assert stack.weights == ["50"], "without promotion the last weight stays"


def test_a_second_run_is_refused_while_one_is_recorded() -> None:
    stack = StackStandIn()
    start(stack, Metrics(HEALTHY))
    with pytest.raises(RunRefused, match=r"already has a canary run: run \w+ .* step 1 of 4, weight 10") as refused:
        start(stack, Metrics(HEALTHY))
    assert "canary run --resume" in str(refused.value) and "canary abort" in str(refused.value)
    assert stack.updates == []


def test_resume_continues_from_the_recorded_step_and_counters() -> None:
    stack = StackStandIn()
    killed = RunRecord.begin((10, 25, 50, 100))
    stack.write_record(replace(killed.moved_to(killed.progress), step=2, failed=1, pid=2**22 + 1))
    rollout = Rollout(stack, Metrics(ERRORS), Screen(), VirtualClock())
    record = rollout.claim((10,), resume=True)
    assert (record.id, record.steps, record.step) == (killed.id, (10, 25, 50, 100), 2)
    report = rollout.run(OPTIONS, record)
    # Threshold 2: the killed run's failed check plus this one; with the counter lost it would hold first.
    assert [analysis["verdict"] for analysis in report.analyses] == ["rollback"]
    assert stack.weights == ["50", "0"]
    assert report.outcome == "rolled-back"


def test_resume_keeps_the_unanswered_analyses_in_a_row() -> None:
    stack = StackStandIn()
    killed = RunRecord.begin((10, 25, 50, 100))
    stack.write_record(replace(killed, step=1, errors=2, pid=2**22 + 1))
    rollout = Rollout(stack, Metrics(DOWN), Screen(), VirtualClock())
    report = rollout.run(OPTIONS, rollout.claim((10,), resume=True))
    # error_limit 3: two before the kill, one now.
    assert [analysis["verdict"] for analysis in report.analyses] == ["rollback"]
    assert stack.weights == ["25", "0"]


def test_a_resumed_run_owns_the_record_and_an_older_process_no_longer_does() -> None:
    stack = StackStandIn()
    killed = replace(RunRecord.begin((10, 25)), pid=2**22 + 1)
    stack.write_record(killed)
    record = Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock()).claim((10,), resume=True)
    stored = stack.read_record()
    assert stored is not None and record.owns(stored) and not killed.owns(stored)
    assert (stored.id, stored.steps) == (killed.id, killed.steps)


def test_resume_without_a_run_is_refused() -> None:
    with pytest.raises(RunRefused, match="has no canary run to resume"):
        Rollout(StackStandIn(), Metrics(HEALTHY), Screen(), VirtualClock()).claim((10,), resume=True)


def test_an_abort_elsewhere_stops_the_run_without_another_change() -> None:
    stack = StackStandIn()

    class AbortedDuringAnalysis(Metrics):
        def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]:
            stack.clear_record()  # `canary abort` in another terminal
            return HEALTHY

    rollout, record = start(stack, AbortedDuringAnalysis(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome == "lost"
    assert stack.weights == ["10"]


def test_invalid_steps_for_this_stack_are_refused_before_anything_changes() -> None:
    stack = StackStandIn({"canaryReplicas": "0"})
    with pytest.raises(SettingsError, match=r"canaryReplicas = 0: must be at least 1 while canaryWeight \(10\)"):
        start(stack, Metrics(HEALTHY))
    assert (stack.updates, stack.tags) == ([], {})


def test_a_failed_update_keeps_the_record_for_resume() -> None:
    stack = StackStandIn()
    stack.fail_when = {"canaryWeight": "25"}
    rollout, record = start(stack, Metrics(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome == "update-failed"
    assert stack.weights == ["10"]
    kept = stack.read_record()
    assert kept is not None and (kept.id, kept.step) == (record.id, 1)


def test_an_interrupt_keeps_the_record_for_resume() -> None:
    stack = StackStandIn()

    class Interrupted(VirtualClock):
        def sleep(self, seconds: float) -> None:
            raise KeyboardInterrupt

    rollout = Rollout(stack, Metrics(HEALTHY), Screen(), Interrupted())
    report = rollout.run(OPTIONS, rollout.claim(OPTIONS.gate.steps, resume=False))
    assert report.outcome == "interrupted"
    assert stack.read_record() is not None
    assert any("canary run --resume" in line for line in rollout.view.lines)  # type: ignore[attr-defined]


def test_promotion_whose_last_phase_is_invalid_changes_nothing() -> None:
    """The current config is valid and so are the first phases; only the role swap is refused."""

    class RefusesTheSwap(StackStandIn):
        def settings(self, changes: Mapping[str, str] | None = None) -> Settings:
            if "stableVersion" in (changes or {}):
                raise SettingsError("stableReplicas = 3: refused for this test")
            return super().settings(changes)

    stack = RefusesTheSwap({"canaryWeight": "50", "stableReplicas": "3"})
    with pytest.raises(SettingsError, match="refused for this test"):
        Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock()).promote(Report("dev", "-", ()))
    assert stack.updates == [], "the scale-up and the shift to 100 would each be a `pulumi up` before the swap"


def test_abort_sends_everything_to_stable_and_ends_the_run() -> None:
    stack = StackStandIn()
    rollout, _ = start(stack, Metrics(HEALTHY))
    report = Report("dev", "-", ())
    rollout.abort(report)
    assert (report.outcome, stack.weights, stack.tags) == ("aborted", ["0"], {})
