"""A run's progress, kept as a tag on the stack so a killed run can be resumed and a second one refused.

Stack tags live in the backend beside the stack's state, so every machine that can
update the stack sees them. Pulumi Cloud limits a tag's value to 256 characters.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from rollout.gate import Progress
from rollout.outcome import RunPhase

TAG = "canary:run"
TAG_VALUE_LIMIT = 256


def this_host() -> str:
    return socket.gethostname()[:24]  # bounded, so a record of gate.MAX_STEPS steps fits a tag


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RunRecord:
    id: str
    host: str
    pid: int
    started: str
    updated: str
    steps: tuple[int, ...]
    step: int
    failed: int
    errors: int
    phase: RunPhase = RunPhase.STEPPING

    @classmethod
    def begin(cls, steps: tuple[int, ...], phase: RunPhase = RunPhase.STEPPING) -> RunRecord:
        stamp = now()
        return cls(uuid.uuid4().hex[:8], this_host(), os.getpid(), stamp, stamp, steps, 0, 0, 0, phase)

    @property
    def progress(self) -> Progress:
        return Progress(self.step, self.failed, self.errors)

    def moved_to(self, progress: Progress) -> RunRecord:
        return replace(
            self, step=progress.step, failed=progress.failed_checks, errors=progress.consecutive_errors, updated=now()
        )

    def entering(self, phase: RunPhase) -> RunRecord:
        """The same run, now in `phase`: recorded before the phase's first update, so a resume finishes it."""
        return replace(self, phase=phase, updated=now())

    def taken_over(self) -> RunRecord:
        """The same run, continued by this process."""
        return replace(self, host=this_host(), pid=os.getpid(), updated=now())

    def owns(self, stored: RunRecord | None) -> bool:
        """True when the record on the stack is still this process's record of this run."""
        return stored is not None and (stored.id, stored.pid) == (self.id, self.pid)

    def is_alive_here(self) -> bool:
        """True when the process that owns the run still runs on this machine."""
        if self.host != this_host() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        weight = self.steps[self.step] if self.step < len(self.steps) else self.steps[-1]
        where = {
            RunPhase.STEPPING: f"at step {self.step + 1} of {len(self.steps)}, weight {weight}",
            RunPhase.ROLLING_BACK: f"rolling back from step {self.step + 1} of {len(self.steps)}",
            RunPhase.PROMOTING: "promoting",
        }[self.phase]
        return (
            f"run {self.id} (pid {self.pid} on {self.host}, started {self.started}, last update {self.updated}) {where}"
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "phase": self.phase.value}

    def encode(self) -> str:
        value = json.dumps(self.as_dict(), separators=(",", ":"))
        if len(value) > TAG_VALUE_LIMIT:
            raise ValueError(f"the run record is {len(value)} characters; a stack tag holds {TAG_VALUE_LIMIT}")
        return value

    @classmethod
    def decode(cls, value: str) -> RunRecord:
        fields = json.loads(value)
        phase = RunPhase(fields.get("phase", RunPhase.STEPPING.value))  # records of older versions have none
        return cls(**{**fields, "steps": tuple(fields["steps"]), "phase": phase})
