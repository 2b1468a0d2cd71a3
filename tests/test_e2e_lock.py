"""The end-to-end tier's cluster is used by one run at a time (tests/e2e/cli.py:held_alone).

Two runs of the tier on one machine (CI on a clean checkout beside a developer's run) once
shared the cluster canary-e2e: each one's stacks updated the other's Deployments and both
failed. Here a second process plays the other run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import ROOT, held_alone

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.e2e.cli import held_alone

    lock, release = Path(sys.argv[1]), Path(sys.argv[2])
    with held_alone(lock, "the cluster", print, 0):
        print("holding", flush=True)
        while not release.exists():
            time.sleep(0.05)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another run holding the lock until tmp_path/release exists; never left running, whatever a test does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "cluster.lock"), str(tmp_path / "release")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "holding\n"
        yield process
    finally:
        (tmp_path / "release").touch()
        process.kill()  # nothing once it has ended
        process.wait(timeout=10)


def test_a_second_run_waits_for_the_first_and_says_who_holds_the_cluster(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    told: list[str] = []

    def release_once_told(message: str) -> None:
        told.append(message)
        (tmp_path / "release").touch()

    with held_alone(tmp_path / "cluster.lock", "the cluster", release_once_told, 30):
        assert holder.wait(timeout=10) == 0  # the first run had ended before the second got in
        assert (tmp_path / "cluster.lock").read_text() == f"{os.getpid()}\n"
    assert told == [f"the cluster is in use by another run (pid {holder.pid}); waiting up to 30 s"]


def test_a_run_that_waited_too_long_stops_with_one_message(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with (
        pytest.raises(TimeoutError, match=r"^the cluster was still in use by another run after 1 s$"),
        held_alone(tmp_path / "cluster.lock", "the cluster", lambda _: None, 1),
    ):
        pytest.fail("entered while another run held the lock")


def test_a_killed_run_leaves_no_lock_behind(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    told: list[str] = []
    start = time.monotonic()
    with held_alone(tmp_path / "cluster.lock", "the cluster", told.append, 30):
        assert time.monotonic() - start < 5
    assert told == []
