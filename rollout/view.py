"""What a person watching a run sees: each update, each check against its bound, the time left."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from rollout.checks import CheckResult
from rollout.gate import Verdict


def describe(result: CheckResult) -> str:
    check = result.check
    if result.error is not None:
        return f"{check.name}: no answer ({result.error})"
    mark = "ok" if result.passed else "FAIL"
    return f"{check.name} {result.value:.2f}{check.unit} ({check.describe_bound()}) {mark}"


class ProgressView:
    """Lines on a stream; on a terminal the live line is redrawn in place instead of repeated."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._open_line = False

    def _line(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\r\033[K")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        self._line(text)

    def tick(self, step: int, weight: int, results: Sequence[CheckResult], seconds_left: float) -> None:
        text = f"  step {step + 1} weight {weight}: {seconds_left:.0f}s left | " + " | ".join(map(describe, results))
        if self.live:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._open_line = True
        else:
            self._line(text)

    def analysed(self, step: int, weight: int, results: Sequence[CheckResult], verdict: Verdict) -> None:
        checks = " | ".join(map(describe, results))
        self._line(f"  step {step + 1} weight {weight}: {checks} -> {verdict.value}")
