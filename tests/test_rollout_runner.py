"""The rollout's orchestration with the Pulumi engine and Prometheus stood in for.

The stack stand-in validates every change with the program's real settings loader
and keeps config and tags as the engine would; the clock is virtual, so an hour of
intervals runs in milliseconds. The same orchestration runs against the real engine,
a local cluster and a real Prometheus in tests/e2e/test_canary_cli.py; the pure parts are in tests/test_rollout.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from rollout.checks import Check, CheckResult, Target, builtin_checks
from rollout.cli import guard
from rollout.deployed import Served
from rollout.gate import Gate, Verdict
from rollout.outcome import Outcome, RunPhase
from rollout.record import RunRecord
from rollout.runner import ABORT, Report, Rollout, RunOptions, RunRefused
from rollout.stack import ApplyError, Update
from settings import Settings, SettingsError, load_settings
from tests.harness import EXISTING_CLUSTER, HEADER_AND_MIRROR, DictConfig

SUCCESS, LATENCY = builtin_checks()


class StackStandIn:
    """Config, what is deployed, the update history and tags of one stack; every change validated by the real
    settings loader. A failed update leaves config and cluster as they were, as the real stack reconciles them."""

    name = "dev"

    def __init__(self, config: dict[str, str] | None = None) -> None:
        self.config = {**EXISTING_CLUSTER, "stableReplicas": "2", "canaryReplicas": "1", **(config or {})}
        self.deployed = dict(self.config)
        self.updates: list[tuple[dict[str, str], str]] = []
        self.history: list[Update] = [Update(1, "")]
        self.tags: dict[str, str] = {}
        self.fail_when: Mapping[str, str] | None = None
        self.failures_left = 1_000_000
        self.records_at_update: list[RunRecord | None] = []

    def settings(self, changes: Mapping[str, str] | None = None) -> Settings:
        return load_settings(DictConfig({**self.config, **(changes or {})}))

    def apply(self, changes: Mapping[str, str], message: str) -> float:
        self.settings(changes)
        self.records_at_update.append(self.read_record())
        if self.fail_when is not None and self.fail_when.items() <= changes.items() and self.failures_left > 0:
            self.failures_left -= 1
            raise ApplyError("pulumi up failed; deployed: as before")
        self.config.update(changes)
        self.deploy(dict(changes), message)
        self.updates.append((dict(changes), message))
        return 4.0

    def deploy(self, changes: dict[str, str], message: str) -> None:
        """An update of the stack, by this run or anyone else."""
        self.deployed.update(changes)
        self.history.append(Update((self.history[-1].version if self.history else 0) + 1, message))

    def served(self) -> Served | None:
        app = load_settings(DictConfig(self.deployed)).app
        split = {app.stable.label: 100 - app.canary_weight, app.canary.label: app.canary_weight}
        header = app.canary_header[0] if app.canary_header else None
        return Served(split, app.stable.label, app.canary.label, header, app.mirror_percent)

    def last_update(self) -> Update | None:
        return self.history[-1] if self.history else None

    def updates_since(self, version: int) -> list[Update]:
        """As the real stack reads them: one page of the 5 newest."""
        return [update for update in reversed(self.history) if update.version > version][:5]

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
    assert report.outcome is Outcome.PROMOTED
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
    assert (report.outcome, report.weight) == (Outcome.ROLLED_BACK, 0)
    assert stack.weights == ["10", "25", "0"]
    assert [analysis["verdict"] for analysis in report.analyses] == ["advance", "hold", "rollback"]
    assert stack.settings().app.stable.label == "v1", "a rollback never promotes"
    assert stack.tags == {}


def test_prometheus_down_never_advances_and_rolls_back_after_the_error_limit() -> None:
    stack, metrics = StackStandIn(), Metrics(DOWN)
    rollout, record = start(stack, metrics)
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.ROLLED_BACK
    assert stack.weights == ["10", "0"]
    assert [analysis["verdict"] for analysis in report.analyses] == ["hold", "hold", "rollback"]


def test_the_live_view_ticks_every_poll_until_the_interval_ends() -> None:
    stack, metrics = StackStandIn(), Metrics(HEALTHY)
    options = replace(OPTIONS, gate=Gate((50,), 2, 3), interval=60.0, poll=10.0, promote=False)
    rollout, record = start(stack, metrics, options)
    report = rollout.run(options, record)
    assert report.outcome is Outcome.COMPLETED
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
    assert report.outcome is Outcome.ROLLED_BACK


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


def test_resume_is_refused_while_the_recorded_run_still_runs_here() -> None:
    stack = StackStandIn()
    with subprocess.Popen(["sleep", "30"]) as other_run:  # another live process on this host
        try:
            stack.write_record(replace(RunRecord.begin((10, 25)), pid=other_run.pid))
            with pytest.raises(RunRefused) as refused:
                Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock()).claim((10,), resume=True)
        finally:
            other_run.kill()
    record = stack.read_record()
    assert record is not None
    assert str(refused.value) == f"{record.describe()} is still running; stop it first or wait for it"


class RacedStack(StackStandIn):
    """Another `canary run` writes its record right after this one's: the tag holds the other's."""

    def write_record(self, record: RunRecord) -> None:
        super().write_record(record)
        super().write_record(replace(RunRecord.begin((50,)), pid=2**22 + 1))


def test_a_run_whose_record_another_overwrote_at_once_is_refused() -> None:
    stack = RacedStack()
    with pytest.raises(RunRefused) as refused:
        start(stack, Metrics(HEALTHY))
    assert str(refused.value) == f"another canary run claimed stack dev at the same time: {stack.read_record()}"
    assert stack.updates == []


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
    assert report.outcome is Outcome.LOST
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
    assert report.outcome is Outcome.UPDATE_FAILED
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
    assert report.outcome is Outcome.INTERRUPTED
    assert stack.read_record() is not None
    assert any("canary run --resume" in line for line in rollout.view.lines)  # type: ignore[attr-defined]


def test_a_report_says_what_is_deployed_is_unknown_when_the_state_cannot_be_read() -> None:
    class Unreadable(StackStandIn):
        """The backend goes away once the run has ended (its record cleared), before the report is made."""

        ended = False

        def clear_record(self) -> None:
            super().clear_record()
            self.ended = True

        def served(self) -> Served | None:
            if self.ended:
                raise OSError("backend unreachable")
            return super().served()

    stack = Unreadable()
    rollout, record = start(stack, Metrics(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.PROMOTED
    assert (report.deployed, report.as_dict()["deployed"]) == ("unknown (backend unreachable)",) * 2


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
    assert (report.outcome, stack.weights, stack.tags) == (Outcome.ABORTED, ["0"], {})


def test_a_rollback_sends_every_request_to_stable_and_says_what_it_turned_off() -> None:
    stack = StackStandIn(HEADER_AND_MIRROR)
    rollout, record = start(stack, Metrics(ERRORS))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.ROLLED_BACK
    assert stack.updates[-1][0] == {"canaryWeight": "0", "canaryHeaderName": "", "mirrorPercent": "0"}
    served = stack.served()
    assert served is not None and (served.canary_weight, served.header, served.mirror_percent) == (0, None, 0)
    assert report.as_dict()["turned_off"] == ["header route x-canary", "mirroring of 20% of requests"]
    assert report.deployed == "v1 100% / v2 0%"


def test_abort_turns_off_the_header_route_and_mirroring_too() -> None:
    stack = StackStandIn({**HEADER_AND_MIRROR, "canaryWeight": "25"})
    report = Report("dev", "", ())
    Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock()).abort(report)
    ((changes, message),) = stack.updates
    assert changes == {"canaryWeight": "0", "canaryHeaderName": "", "mirrorPercent": "0"}
    assert message.startswith(ABORT)
    assert report.turned_off == ["header route x-canary", "mirroring of 20% of requests"]


def test_the_rollback_is_recorded_before_its_update_and_retried_until_it_lands() -> None:
    stack = StackStandIn()
    stack.fail_when, stack.failures_left = {"canaryWeight": "0"}, 2
    rollout, record = start(stack, Metrics(ERRORS))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.ROLLED_BACK
    assert stack.weights == ["10", "0"], "two failed attempts, the third lands"
    rollback_attempts = stack.records_at_update[-3:]
    assert all(r is not None and r.phase is RunPhase.ROLLING_BACK for r in rollback_attempts), "recorded first"
    assert rollout.clock.on_sleep[-2:] == [5.0, 10.0]  # type: ignore[attr-defined]
    assert stack.tags == {}


def test_a_rollback_that_fails_is_finished_on_resume_never_undone() -> None:
    stack = StackStandIn(HEADER_AND_MIRROR)
    stack.fail_when = {"canaryWeight": "0"}
    rollout, record = start(stack, Metrics(HEALTHY, ERRORS))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.UPDATE_FAILED
    kept = stack.read_record()
    assert kept is not None and kept.phase is RunPhase.ROLLING_BACK
    assert stack.weights == ["10", "25"]
    assert len(stack.records_at_update) == 2 + 3, "the two steps, then three rollback attempts before giving up"

    stack.fail_when = None
    resumed = Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock())
    report = resumed.run(OPTIONS, resumed.claim((10,), resume=True))
    assert report.outcome is Outcome.ROLLED_BACK
    assert stack.updates[-1][0] == {"canaryWeight": "0", "canaryHeaderName": "", "mirrorPercent": "0"}
    assert stack.weights == ["10", "25", "0"], "straight to 0: the failing step is never reapplied"
    assert report.analyses == [] and stack.tags == {}


def test_a_promotion_killed_between_phases_resumes_at_the_next_phase() -> None:
    stack = StackStandIn()
    interrupted_at = {"canaryReplicas": "2"}
    stack.fail_when = {"canaryWeight": "100"}
    rollout, record = start(stack, Metrics(HEALTHY), replace(OPTIONS, gate=Gate((50,), 2, 3)))
    report = rollout.run(replace(OPTIONS, gate=Gate((50,), 2, 3)), record)
    assert report.outcome is Outcome.UPDATE_FAILED
    assert [changes for changes, _ in stack.updates] == [{"canaryWeight": "50"}, interrupted_at]
    kept = stack.read_record()
    assert kept is not None and kept.phase is RunPhase.PROMOTING

    stack.fail_when = None
    resumed = Rollout(stack, Metrics(ERRORS), Screen(), VirtualClock())
    report = resumed.run(OPTIONS, resumed.claim((10,), resume=True))
    assert report.outcome is Outcome.PROMOTED
    assert report.analyses == [], "a promotion is finished, not judged again"
    assert [changes.get("canaryWeight") for changes, _ in stack.updates[2:]] == ["100", "0"]
    assert stack.settings().app.stable.label == "v2" and stack.tags == {}


def test_a_promotion_killed_after_its_last_phase_just_ends_the_run() -> None:
    stack = StackStandIn()
    record = RunRecord.begin((50,)).entering(RunPhase.PROMOTING)
    stack.write_record(replace(record, pid=2**22 + 1))
    stack.config.update({"stableVersion": "v2", "canaryVersion": "v1", "canaryReplicas": "0", "canaryWeight": "0"})
    rollout = Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock())
    report = rollout.run(OPTIONS, rollout.claim((10,), resume=True))
    assert (report.outcome, stack.updates, stack.tags) == (Outcome.PROMOTED, [], {})


def test_another_canary_version_deployed_under_the_run_stops_it_holding() -> None:
    stack = StackStandIn()

    class MergeDuringAnalysis(Metrics):
        def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]:
            if len(stack.history) == 2:  # same weight, another canary
                stack.deploy({"canaryVersion": "v3", "canaryImage": "quay.io/shardul/nginx:v3"}, "merge of main")
            return HEALTHY

    rollout, record = start(stack, MergeDuringAnalysis(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert (report.outcome, stack.weights) == (Outcome.HELD, ["10"])


def test_an_analysis_that_holds_reads_no_update_history() -> None:
    """Each history read is a `pulumi stack history`: an analysis reads it only when the run's own update comes
    next (its base for the check after that update), so a held analysis costs no read."""

    class CountingStack(StackStandIn):
        history_reads = 0

        def last_update(self) -> Update | None:
            self.history_reads += 1
            return super().last_update()

    straight, held_once = CountingStack(), CountingStack()
    for stack, metrics in ((straight, Metrics(HEALTHY)), (held_once, Metrics(DOWN, HEALTHY))):
        rollout, record = start(stack, metrics)
        assert rollout.run(OPTIONS, record).outcome is Outcome.PROMOTED
    assert rollout.view.verdicts.count(Verdict.HOLD) == 1  # type: ignore[attr-defined]
    assert held_once.history_reads == straight.history_reads


def test_someone_else_changing_the_split_during_an_interval_stops_the_run_holding() -> None:
    stack = StackStandIn()

    class ManualUpDuringAnalysis(Metrics):
        def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]:
            if len(stack.history) == 2:  # after the run's first step
                stack.deploy({"canaryWeight": "30"}, "merge of main")  # the deploy workflow, a manual `pulumi up`
            return HEALTHY

    rollout, record = start(stack, ManualUpDuringAnalysis(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.HELD
    assert stack.weights == ["10"], "no further change by the run"
    assert stack.served() is not None and stack.deployed["canaryWeight"] == "30"
    assert stack.read_record() is not None, "kept: resume or abort decides"
    assert any("merge of main" in line for line in rollout.view.lines)  # type: ignore[attr-defined]
    assert report.weight == 30, "the report says what is served"


def test_an_abort_that_slips_in_before_the_runs_update_is_honoured() -> None:
    stack = StackStandIn()
    applied = stack.apply

    def abort_wins_the_lock_first(changes: Mapping[str, str], message: str) -> float:
        if changes == {"canaryWeight": "25"}:  # `canary abort` elsewhere, between the run's check and its update
            stack.clear_record()
            stack.deploy({"canaryWeight": "0"}, f"{ABORT}: canaryWeight=0")
        return applied(changes, message)

    stack.apply = abort_wins_the_lock_first  # type: ignore[method-assign]
    rollout, record = start(stack, Metrics(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.LOST
    assert stack.weights == ["10", "25", "0"], "the run's step replaced the abort, so it applies the abort again"
    assert stack.updates[-1][1] == f"{ABORT}: abort (another process aborted while this update waited): canaryWeight=0"
    assert stack.deployed["canaryWeight"] == "0"
    assert stack.tags == {}, "the abort's end of the run stands"
    assert f"run {record.id} was aborted elsewhere; the abort stands (all traffic to stable)" in rollout.view.lines  # type: ignore[attr-defined]


def others_update_around_the_runs_step(stack: StackStandIn, weight: str, before: int = 0, after: int = 0) -> None:
    """Plain `pulumi up`s by someone else (no message) that leave the split alone, just before the run's step to
    `weight` (between its check and its update) or just after it."""
    applied = stack.apply

    def around(changes: Mapping[str, str], message: str) -> float:
        is_the_step = changes == {"canaryWeight": weight}
        for replicas in range(before if is_the_step else 0):
            stack.deploy({"stableReplicas": str(3 + replicas)}, "")
        seconds = applied(changes, message)
        for replicas in range(after if is_the_step else 0):
            stack.deploy({"stableReplicas": str(3 + replicas)}, "")
        return seconds

    stack.apply = around  # type: ignore[method-assign]


def test_an_update_that_slips_in_before_the_runs_update_holds_the_run_naming_it() -> None:
    stack = StackStandIn()
    others_update_around_the_runs_step(stack, "25", before=1)
    rollout, record = start(stack, Metrics(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.HELD
    assert stack.weights == ["10", "25"]
    lines = rollout.view.lines  # type: ignore[attr-defined]
    assert "update 3 (no message) by someone else ran just before this run's update 4, which replaced it" in lines[-1]
    assert stack.read_record() is not None, "kept: resume or abort decides"


def test_an_update_that_slips_in_before_a_new_stacks_first_update_holds_the_run() -> None:
    """A stack with no update yet: anything before the run's first update slipped in, from version 1 on."""
    stack = StackStandIn()
    stack.history = []
    others_update_around_the_runs_step(stack, "10", before=1)
    rollout, record = start(stack, Metrics(HEALTHY))
    assert rollout.run(OPTIONS, record).outcome is Outcome.HELD
    lines = rollout.view.lines  # type: ignore[attr-defined]
    assert "update 1 (no message) by someone else ran just before this run's update 2, which replaced it" in lines[-1]


def test_updates_right_after_the_runs_own_did_not_slip_in_before_it() -> None:
    """Whatever lands after the run's update is the next analysis' to judge (by what is served), not a lost race:
    here it leaves the split alone, so the run goes on; also when the run's update is off the history's page."""
    for after in (1, 5):
        stack = StackStandIn()
        others_update_around_the_runs_step(stack, "25", after=after)
        rollout, record = start(stack, Metrics(HEALTHY))
        assert rollout.run(OPTIONS, record).outcome is Outcome.PROMOTED, after
        assert stack.weights == ["10", "25", "50", "100", "0"]


def test_an_abort_elsewhere_during_an_interval_is_never_overwritten() -> None:
    stack = StackStandIn()

    class AbortedDuringAnalysis(Metrics):
        def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]:
            if len(stack.history) == 2:
                stack.clear_record()
                stack.deploy({"canaryWeight": "0"}, f"{ABORT}: canaryWeight=0")
            return HEALTHY

    rollout, record = start(stack, AbortedDuringAnalysis(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert report.outcome is Outcome.LOST
    assert stack.weights == ["10"] and stack.deployed["canaryWeight"] == "0"
    assert stack.tags == {}, "no write of the run resurrects its record"


def test_guard_fails_a_deploy_while_a_run_is_in_progress() -> None:
    stack, screen = StackStandIn(), Screen()
    assert guard(stack, screen)[1] == 0
    start(stack, Metrics(HEALTHY))
    result, code = guard(stack, screen)
    assert code == Outcome.REFUSED.exit_code != 0
    assert "has a canary run in progress" in screen.lines[-1] and "force" in screen.lines[-1]
    assert json.loads(json.dumps(result))["run"]["phase"] == "steps"


def test_a_resumed_run_walks_the_steps_it_started_with_not_the_ones_given_now() -> None:
    stack = StackStandIn()
    killed = RunRecord.begin((10, 25, 50, 100))
    stack.write_record(replace(killed, step=1, pid=2**22 + 1))
    rollout = Rollout(stack, Metrics(HEALTHY), Screen(), VirtualClock())
    other_steps = replace(OPTIONS, gate=replace(OPTIONS.gate, steps=(5, 100)))
    report = rollout.run(other_steps, rollout.claim((5, 100), resume=True))
    assert report.outcome is Outcome.PROMOTED
    assert stack.weights[:3] == ["25", "50", "100"]


class TimedStackStandIn(StackStandIn):
    def apply(self, changes: Mapping[str, str], message: str) -> float:
        super().apply(changes, message)
        return 2.71828


def test_times_are_reported_to_the_millisecond() -> None:
    stack = TimedStackStandIn()
    rollout, record = start(stack, Metrics(HEALTHY))
    report = rollout.run(OPTIONS, record)
    assert {update["seconds"] for update in report.updates} == {2.718}
    report.started, report.finished = 0.0, 1.23456
    times = report.as_dict()
    assert (times["elapsed_seconds"], times["update_seconds"]) == (1.235, round(2.718 * len(report.updates), 3))
