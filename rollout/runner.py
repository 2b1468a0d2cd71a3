"""The rollout: each step a config change and an update, each interval an analysis, then promotion or rollback."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rollout.checks import Check, CheckResult, Target
from rollout.gate import Gate, Progress, Verdict, judge
from rollout.promotion import promotion_phases
from rollout.record import RunRecord
from rollout.stack import ApplyError
from settings import Settings, workload_name


class ReleaseStack(Protocol):
    name: str

    def settings(self, changes: Mapping[str, str] | None = None) -> Settings: ...
    def apply(self, changes: Mapping[str, str], message: str) -> float: ...
    def read_record(self) -> RunRecord | None: ...
    def write_record(self, record: RunRecord) -> None: ...
    def clear_record(self) -> None: ...


class Analyst(Protocol):
    def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class View(Protocol):
    def say(self, text: str) -> None: ...
    def tick(self, step: int, weight: int, results: Sequence[CheckResult], seconds_left: float) -> None: ...
    def analysed(self, step: int, weight: int, results: Sequence[CheckResult], verdict: Verdict) -> None: ...


class RunRefused(Exception):
    """Another run owns the stack, or there is no run to resume."""


class RunLost(Exception):
    """The run's record was removed (abort) or taken over (resume) by another process."""


@dataclass(frozen=True)
class RunOptions:
    gate: Gate
    checks: list[Check]
    interval: float
    window: str
    poll: float
    promote: bool = True


@dataclass
class Report:
    stack: str
    run_id: str
    steps: tuple[int, ...]
    outcome: str = "running"
    weight: int = 0
    analyses: list[dict[str, object]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def add_analysis(self, step: int, weight: int, verdict: Verdict, results: Sequence[CheckResult]) -> None:
        checks = [result.as_dict() for result in results]
        self.analyses.append({"step": step + 1, "weight": weight, "verdict": verdict.value, "checks": checks})

    def as_dict(self) -> dict[str, object]:
        update_seconds = sum(update["seconds"] for update in self.updates)
        return {
            "stack": self.stack,
            "run": self.run_id,
            "outcome": self.outcome,
            "weight": self.weight,
            "steps": list(self.steps),
            "updates": self.updates,
            "analyses": self.analyses,
            "elapsed_seconds": round(self.finished - self.started, 3),
            "update_seconds": round(update_seconds, 3),
        }


def canary_target(settings: Settings, window: str, version: str | None = None) -> Target:
    app = settings.app
    return Target(app.namespace, workload_name(app.name, version or app.canary.label), window)


class Rollout:
    def __init__(self, stack: ReleaseStack, analyst: Analyst, view: View, clock: Clock | None = None) -> None:
        self.stack = stack
        self.analyst = analyst
        self.view = view
        self.clock = clock or SystemClock()

    def claim(self, steps: tuple[int, ...], resume: bool) -> RunRecord:
        """This process's run record, written to the stack; refuses when another run owns it."""
        record = self.stack.read_record()
        if resume:
            if record is None:
                raise RunRefused(f"stack {self.stack.name} has no canary run to resume; start one with `canary run`")
            if record.is_alive_here():
                raise RunRefused(f"{record.describe()} is still running; stop it first or wait for it")
            record = record.taken_over()
        else:
            if record is not None:
                raise RunRefused(
                    f"stack {self.stack.name} already has a canary run: {record.describe()}.\n"
                    "Resume it with `canary run --resume`, or end it with `canary abort` (weight back to 0)."
                )
            for weight in steps:  # every step's config must be valid before anything changes
                self.stack.settings({"canaryWeight": str(weight)})
            record = RunRecord.begin(steps)
        self.stack.write_record(record)
        stored = self.stack.read_record()
        if not record.owns(stored):
            raise RunRefused(f"another canary run claimed stack {self.stack.name} at the same time: {stored}")
        return record

    def run(self, options: RunOptions, record: RunRecord) -> Report:
        """Walk the steps from where the record says; roll back, promote or stop as the analyses decide."""
        self._record = record
        gate = replace(options.gate, steps=record.steps)  # a resumed run keeps the steps it started with
        report = Report(self.stack.name, record.id, record.steps, started=self.clock.monotonic())
        settings = self.stack.settings()
        report.weight = settings.app.canary_weight
        try:
            verdict = self._walk_steps(gate, options, report, canary_target(settings, options.window))
            if verdict is Verdict.ROLLBACK:
                self._update(report, {"canaryWeight": "0"}, f"roll back from weight {report.weight}")
                report.weight, report.outcome = 0, "rolled-back"
            elif options.promote:
                self.promote(report)
                report.weight, report.outcome = 0, "promoted"
            else:
                report.outcome = "completed"
            self.stack.clear_record()
        except RunLost as lost:
            report.outcome = "lost"
            self.view.say(str(lost))
        except (KeyboardInterrupt, ApplyError) as stopped:
            report.outcome = "interrupted" if isinstance(stopped, KeyboardInterrupt) else "update-failed"
            self.view.say(
                f"{stopped or 'interrupted'}\nrun {record.id} stopped at weight {report.weight}; its progress is kept "
                "on the stack: `canary run --resume` continues it, `canary abort` sends all traffic back to stable"
            )
        finally:
            report.finished = self.clock.monotonic()
        return report

    def _walk_steps(self, gate: Gate, options: RunOptions, report: Report, target: Target) -> Verdict:
        progress = self._record.progress
        verdict = Verdict.ADVANCE
        while verdict is Verdict.ADVANCE:
            weight = gate.steps[progress.step]
            self._update(report, {"canaryWeight": str(weight)}, f"step {progress.step + 1}/{len(gate.steps)}")
            report.weight = weight
            self._save(progress)
            verdict = Verdict.HOLD
            while verdict is Verdict.HOLD:
                step = progress.step
                results = self._analyse(options, target, step, weight)
                verdict, progress = judge(gate, progress, results)
                report.add_analysis(step, weight, verdict, results)
                self.view.analysed(step, weight, results, verdict)
                self._save(progress)
        return verdict

    def promote(self, report: Report) -> None:
        phases = promotion_phases(self.stack.settings().app)
        pending: dict[str, str] = {}
        for phase in phases:  # all phases are validated before the first changes anything
            pending.update(phase.changes)
            self.stack.settings(pending)
        for phase in phases:
            self._update(report, phase.changes, f"promote: {phase.description}")

    def abort(self, report: Report) -> None:
        self._update(report, {"canaryWeight": "0"}, "abort")
        report.weight, report.outcome = 0, "aborted"
        self.stack.clear_record()

    def _update(self, report: Report, changes: Mapping[str, str], what: str) -> None:
        summary = ", ".join(f"{key}={value}" for key, value in changes.items())
        self.view.say(f"{what}: {summary} (pulumi up)")
        prefix = f"canary {report.run_id}" if report.run_id else "canary"
        seconds = self.stack.apply(changes, f"{prefix}: {what}: {summary}")
        report.updates.append({"what": what, "changes": dict(changes), "seconds": round(seconds, 3)})
        self.view.say(f"{what}: applied in {seconds:.1f} s")

    def _analyse(self, options: RunOptions, target: Target, step: int, weight: int) -> list[CheckResult]:
        """Wait one interval, showing the checks as they stand every `poll` seconds, then judge them."""
        deadline = self.clock.monotonic() + options.interval
        while (left := deadline - self.clock.monotonic()) > options.poll:
            self.clock.sleep(options.poll)
            self.view.tick(step, weight, self.analyst.evaluate(options.checks, target), max(0.0, left - options.poll))
        self.clock.sleep(max(0.0, deadline - self.clock.monotonic()))
        return self.analyst.evaluate(options.checks, target)

    def _save(self, progress: Progress) -> None:
        record = self._record
        stored = self.stack.read_record()
        if not record.owns(stored):
            raise RunLost(
                f"run {record.id} no longer owns stack {self.stack.name} "
                f"({'aborted' if stored is None else 'taken over by ' + stored.describe()}); stopping without changes"
            )
        self._record = record.moved_to(progress)
        self.stack.write_record(self._record)
