"""The rollout: each step a config change and an update, each interval an analysis, then promotion or rollback."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rollout.checks import Check, CheckResult, Target
from rollout.deployed import Served
from rollout.gate import Gate, Progress, Verdict, judge
from rollout.outcome import Outcome, RunPhase
from rollout.promotion import NothingToPromote, back_to_stable, promotion_phases
from rollout.record import RunRecord
from rollout.stack import ApplyError, Update
from settings import Settings, workload_name


class ReleaseStack(Protocol):
    name: str

    def settings(self, changes: Mapping[str, str] | None = None) -> Settings: ...
    def apply(self, changes: Mapping[str, str], message: str) -> float: ...
    def served(self) -> Served | None: ...
    def last_update(self) -> Update | None: ...
    def updates_since(self, version: int) -> list[Update]: ...
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


class SplitChanged(Exception):
    """Someone else changed what the stack serves (a merge deploying main, a manual `pulumi up`)."""


ROLLBACK_ATTEMPTS = 3
ROLLBACK_RETRY_SECONDS = 5.0
ABORT = "canary: abort"  # how an abort's update is named in the stack's history


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
    outcome: Outcome | None = None
    weight: int = 0
    analyses: list[dict[str, object]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    turned_off: list[str] = field(default_factory=list)
    deployed: str | None = None
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
            "outcome": self.outcome.word if self.outcome else None,
            "weight": self.weight,
            "deployed": self.deployed,
            "turned_off": self.turned_off,
            "steps": list(self.steps),
            "updates": self.updates,
            "analyses": self.analyses,
            "elapsed_seconds": round(self.finished - self.started, 3),
            "update_seconds": round(update_seconds, 3),
        }


def canary_target(settings: Settings, window: str, version: str | None = None) -> Target:
    app = settings.app
    return Target(
        app.namespace, workload_name(app.name, version or app.canary.label), window, settings.mesh.metrics_reporter
    )


class Rollout:
    def __init__(self, stack: ReleaseStack, analyst: Analyst, view: View, clock: Clock | None = None) -> None:
        self.stack = stack
        self.analyst = analyst
        self.view = view
        self.clock = clock or SystemClock()
        self._record: RunRecord | None = None
        self._seen = 0  # the stack's last update when this run last saw it serve what it deployed
        self._canary = ""  # the version the run is judging

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
        """Walk the steps from where the record says; roll back, promote or stop as the analyses decide.

        A run recorded as rolling back or promoting (killed in that phase) finishes that phase, never
        goes back to its steps."""
        self._record = record
        gate = replace(options.gate, steps=record.steps)  # a resumed run keeps the steps it started with
        report = Report(self.stack.name, record.id, record.steps, started=self.clock.monotonic())
        settings = self.stack.settings()
        report.weight = settings.app.canary_weight
        self._canary = settings.app.canary.label
        self._seen = self._last_version()
        try:
            if record.phase is RunPhase.ROLLING_BACK:
                self.view.say(f"run {record.id} was rolling back: finishing the rollback")
                verdict = Verdict.ROLLBACK
            elif record.phase is RunPhase.PROMOTING:
                self.view.say(f"run {record.id} was promoting: finishing the promotion")
                verdict = Verdict.COMPLETE
            else:
                verdict = self._walk_steps(gate, options, report, canary_target(settings, options.window))
            if verdict is Verdict.ROLLBACK:
                self._enter(RunPhase.ROLLING_BACK)
                self._to_stable(report, f"roll back from weight {report.weight}")
                report.outcome = Outcome.ROLLED_BACK
            elif options.promote:
                self._enter(RunPhase.PROMOTING)
                self._finish_promotion(report, resumed=record.phase is RunPhase.PROMOTING)
                report.outcome = Outcome.PROMOTED
            else:
                report.outcome = Outcome.COMPLETED
            self.stack.clear_record()
        except RunLost as lost:
            report.outcome = Outcome.LOST
            self.view.say(str(lost))
        except SplitChanged as changed:
            report.outcome = Outcome.HELD
            self.view.say(
                f"{changed}\nrun {record.id} stops here without another change; its record is kept: "
                "`canary run --resume` reapplies its step, `canary abort` sends all traffic back to stable"
            )
        except (KeyboardInterrupt, ApplyError) as stopped:
            report.outcome = Outcome.INTERRUPTED if isinstance(stopped, KeyboardInterrupt) else Outcome.UPDATE_FAILED
            phase = self._record.phase if self._record else RunPhase.STEPPING
            then = {
                RunPhase.STEPPING: "`canary run --resume` continues it",
                RunPhase.ROLLING_BACK: "`canary run --resume` or `canary abort` finishes the rollback",
                RunPhase.PROMOTING: "`canary run --resume` finishes the promotion",
            }[phase]
            self.view.say(
                f"{str(stopped) or 'interrupted'}\nrun {record.id} stopped; its progress is kept on the stack: {then}, "
                "`canary abort` sends all traffic back to stable"
            )
        finally:
            report.finished = self.clock.monotonic()
            self._describe_deployed(report)
        return report

    def _describe_deployed(self, report: Report) -> None:
        try:
            served = self.stack.served()
        except Exception as error:  # the report must come out even when the backend cannot be read
            report.deployed = f"unknown ({error})"
            return
        if served is not None:
            report.weight = served.canary_weight
            report.deployed = served.describe()

    def _walk_steps(self, gate: Gate, options: RunOptions, report: Report, target: Target) -> Verdict:
        assert self._record is not None
        progress = self._record.progress
        verdict = Verdict.ADVANCE
        while verdict is Verdict.ADVANCE:
            weight = gate.steps[progress.step]
            self._update(report, {"canaryWeight": str(weight)}, f"step {progress.step + 1}/{len(gate.steps)}")
            report.weight = weight
            verdict = Verdict.HOLD
            while verdict is Verdict.HOLD:
                step = progress.step
                results = self._analyse(options, target, step, weight)
                verdict, judged = judge(gate, progress, results)
                promoting_next = verdict is Verdict.COMPLETE and options.promote
                self._check_hands_off(report, updating_next=verdict is Verdict.ADVANCE or promoting_next)
                progress = judged
                report.add_analysis(step, weight, verdict, results)
                self.view.analysed(step, weight, results, verdict)
                self._save(progress)
        return verdict

    def _finish_promotion(self, report: Report, resumed: bool) -> None:
        try:
            self.promote(report)
        except NothingToPromote:
            if not resumed:
                raise
            self.view.say("the promotion's last phase had been applied; nothing left to do")  # killed before clearing

    def promote(self, report: Report) -> None:
        phases = promotion_phases(self.stack.settings().app)
        pending: dict[str, str] = {}
        for phase in phases:  # all phases are validated before the first is applied
            pending.update(phase.changes)
            self.stack.settings(pending)
        for phase in phases:
            self._update(report, phase.changes, f"promote: {phase.description}")

    def abort(self, report: Report) -> None:
        """All traffic to stable: weight 0, header route and mirroring off. A run's record is taken over
        first (so the run stops) and marked rolling back, so a failed abort is finished by resume or abort."""
        record = self.stack.read_record()
        if record is not None:
            self._record = record.taken_over().entering(RunPhase.ROLLING_BACK)
            self.stack.write_record(self._record)
        self._to_stable(report, "abort", name=ABORT)
        report.outcome = Outcome.ABORTED
        self.stack.clear_record()

    def _to_stable(self, report: Report, what: str, name: str | None = None) -> None:
        """Every request to the stable version, retried: a rollback is finished, never left half-way."""
        for attempt in range(1, ROLLBACK_ATTEMPTS + 1):
            changes, turned_off = back_to_stable(self.stack.settings().app)
            try:
                self._update(report, changes, what, name=name, guard=False)
                break
            except ApplyError as error:
                if attempt == ROLLBACK_ATTEMPTS:
                    raise
                wait = ROLLBACK_RETRY_SECONDS * attempt
                self.view.say(
                    f"{what} failed (attempt {attempt} of {ROLLBACK_ATTEMPTS}): {error}\nretrying in {wait:g}s"
                )
                self.clock.sleep(wait)
        report.weight = 0
        report.turned_off += turned_off
        if turned_off:
            self.view.say(f"turned off: {', '.join(turned_off)}")

    def _update(
        self, report: Report, changes: Mapping[str, str], what: str, name: str | None = None, guard: bool = True
    ) -> None:
        summary = ", ".join(f"{key}={value}" for key, value in changes.items())
        self.view.say(f"{what}: {summary} (pulumi up)")
        prefix = name or (f"canary {report.run_id}" if report.run_id else "canary")
        seconds = self.stack.apply(changes, f"{prefix}: {what}: {summary}")
        report.updates.append({"what": what, "changes": dict(changes), "seconds": round(seconds, 3)})
        self.view.say(f"{what}: applied in {seconds:.1f} s")
        if guard and self._record is not None:  # a run's update; `canary promote` alone has no run to guard
            self._check_nothing_slipped_in(report)

    def _last_version(self) -> int:
        last = self.stack.last_update()
        return last.version if last is not None else 0

    def _check_nothing_slipped_in(self, report: Report) -> None:
        """After a run's update: no one else's update ran between the run's last look and its update (which
        replaced it). An abort that slipped in is honoured at once; any other change stops the run."""
        mine = f"canary {report.run_id}:"
        updates = self.stack.updates_since(self._seen)
        ours = next((update for update in updates if update.message.startswith(mine)), None)
        if ours is None:
            return
        slipped = [u for u in updates if u.version < ours.version and not u.message.startswith(mine)]
        self._seen = ours.version
        if any(update.message.startswith(ABORT) for update in slipped):
            self._to_stable(report, "abort (another process aborted while this update waited)", name=ABORT)
            raise RunLost(f"run {report.run_id} was aborted elsewhere; the abort stands (all traffic to stable)")
        if slipped:
            raise SplitChanged(
                f"update {slipped[0].version} ({slipped[0].message or 'no message'}) by someone else ran just "
                f"before this run's update {ours.version}, which replaced it"
            )

    def _check_hands_off(self, report: Report, updating_next: bool) -> None:
        """Before each analysis' verdict: the stack still serves what this run deployed, and the run still owns
        it. Read in the order that leaves no gap: the history's last update (only when this run's own update comes
        next: the base its after-update check compares with), then what is served."""
        assert self._record is not None
        seen = self._last_version() if updating_next else self._seen
        served = self.stack.served()
        if served is not None and (served.canary_weight, served.canary) != (report.weight, self._canary):
            self._owned_record()  # an abort elsewhere is `lost`, not someone else's split
            last = self.stack.last_update()
            by = repr(last.message) if last is not None else "?"
            raise SplitChanged(
                f"someone else changed what stack {self.stack.name} serves: {served.describe()}, not weight "
                f"{report.weight} for {self._canary} as this run deployed (last update: {by})"
            )
        self._seen = seen  # the record itself is checked by _save, right after

    def _owned_record(self) -> RunRecord:
        """This run's record, once the stack's copy shows the run still owns it; RunLost otherwise."""
        assert self._record is not None
        stored = self.stack.read_record()
        if not self._record.owns(stored):
            by = "aborted" if stored is None else "taken over by " + stored.describe()
            raise RunLost(
                f"run {self._record.id} no longer owns stack {self.stack.name} ({by}); stopping without changes"
            )
        return self._record

    def _enter(self, phase: RunPhase) -> None:
        self._record = self._owned_record().entering(phase)
        self.stack.write_record(self._record)

    def _analyse(self, options: RunOptions, target: Target, step: int, weight: int) -> list[CheckResult]:
        """Wait one interval, showing the checks as they stand every `poll` seconds, then judge them."""
        deadline = self.clock.monotonic() + options.interval
        while (left := deadline - self.clock.monotonic()) > options.poll:
            self.clock.sleep(options.poll)
            self.view.tick(step, weight, self.analyst.evaluate(options.checks, target), max(0.0, left - options.poll))
        self.clock.sleep(max(0.0, deadline - self.clock.monotonic()))
        return self.analyst.evaluate(options.checks, target)

    def _save(self, progress: Progress) -> None:
        self._record = self._owned_record().moved_to(progress)
        self.stack.write_record(self._record)
