"""How a `canary` command ends, and which phase a run is in: typed values, each with its word and exit code."""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    """The end of a command: the word the report prints and the exit code it returns."""

    PROMOTED = ("promoted", 0)
    COMPLETED = ("completed", 0)
    ABORTED = ("aborted", 0)
    ROLLED_BACK = ("rolled-back", 1)
    UPDATE_FAILED = ("update-failed", 1)
    LOST = ("lost", 1)  # the run's record was removed or taken over: another actor owns the stack now
    HELD = ("held", 1)  # someone else changed what is deployed: the run stops without another change
    REFUSED = ("refused", 2)
    INTERRUPTED = ("interrupted", 130)

    def __init__(self, word: str, exit_code: int) -> None:
        self.word = word
        self.exit_code = exit_code


class RunPhase(Enum):
    """Where a run stands, kept in its record so `--resume` finishes what was started, never undoes it."""

    STEPPING = "steps"
    ROLLING_BACK = "rollback"
    PROMOTING = "promotion"
