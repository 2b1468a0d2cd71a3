"""The decision after each analysis interval: advance, hold, roll back or finish.

Pure logic, no I/O. Like Flagger, failed checks count over the whole run and
`threshold` of them roll it back; like Argo Rollouts' consecutiveErrorLimit,
analyses that could not be answered (Prometheus down, no data) never advance and
`error_limit` of them in a row roll it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from itertools import pairwise

from rollout.checks import CheckResult


class Verdict(Enum):
    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Gate:
    steps: tuple[int, ...]
    threshold: int
    error_limit: int


@dataclass(frozen=True)
class Progress:
    """Where a run is: the index of its current step and its counters."""

    step: int = 0
    failed_checks: int = 0
    consecutive_errors: int = 0


MAX_STEPS = 20  # what a run record on a stack tag (256 characters) has room for


class StepsError(ValueError):
    """Steps that cannot make a rollout."""


def parse_steps(text: str) -> tuple[int, ...]:
    """`10,25,50,100`: weights from 1 to 100, strictly increasing."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        steps = ()
    increasing = all(a < b for a, b in pairwise(steps))
    if not steps or not increasing or steps[0] < 1 or steps[-1] > 100 or len(steps) > MAX_STEPS:
        raise StepsError(
            f"--steps {text!r}: must be comma-separated weights from 1 to 100, increasing, "
            f"at most {MAX_STEPS} of them (10,25,50,100)"
        )
    return steps


def judge(gate: Gate, progress: Progress, results: Sequence[CheckResult]) -> tuple[Verdict, Progress]:
    errored = any(result.error is not None for result in results)
    failed = any(result.error is None and not result.passed for result in results)
    if errored:
        progress = replace(progress, consecutive_errors=progress.consecutive_errors + 1)
    else:
        progress = replace(progress, consecutive_errors=0)
    if failed:
        progress = replace(progress, failed_checks=progress.failed_checks + 1)
    if progress.failed_checks >= gate.threshold or progress.consecutive_errors >= gate.error_limit:
        return Verdict.ROLLBACK, progress
    if errored or failed or not results:
        return Verdict.HOLD, progress
    if progress.step + 1 >= len(gate.steps):
        return Verdict.COMPLETE, progress
    return Verdict.ADVANCE, replace(progress, step=progress.step + 1)
