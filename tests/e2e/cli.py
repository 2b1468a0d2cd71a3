"""Running the real CLIs (pulumi, kubectl, the project's scripts) with every command logged."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CommandLog:
    """Every command and its whole output, in the test log and in a file for debugging."""

    path: Path

    def record(self, argv: list[str], result: subprocess.CompletedProcess[str], seconds: float) -> None:
        entry = (
            f"$ {shlex.join(argv)}\n(exit {result.returncode}, {seconds:.1f} s)\n"
            f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}\n"
        )
        print(entry)
        with self.path.open("a") as log:
            log.write(entry)


def run(
    argv: list[str], log: CommandLog, env: dict[str, str] | None = None, check: bool = True, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    log.record(argv, result, time.monotonic() - start)
    if check and result.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} failed with exit {result.returncode}:\n{result.stderr[-3000:]}")
    return result


@contextmanager
def held_alone(lock_file: Path, what: str, notify: Callable[[str], None], wait_seconds: float) -> Iterator[None]:
    """An exclusive lock on lock_file for as long as the block runs; while another process holds it, wait.

    The kernel drops a lock when its holder dies, so a killed run never leaves one behind.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as lock:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    lock.seek(0)
                    holder = lock.read().strip() or "unknown"
                    notify(f"{what} is in use by another run (pid {holder}); waiting up to {wait_seconds:.0f} s")
                    told = True
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{what} was still in use by another run after {wait_seconds:.0f} s") from None
                time.sleep(1)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Kubectl:
    kubeconfig: str
    env: dict[str, str]
    log: CommandLog

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["kubectl", "--kubeconfig", self.kubeconfig, *args]
        if stdin is None:
            return run(argv, self.log, self.env, check)
        start = time.monotonic()
        result = subprocess.run(argv, input=stdin, env=self.env, capture_output=True, text=True, check=False)
        self.log.record([*argv, "<", "stdin"], result, time.monotonic() - start)
        assert not check or result.returncode == 0, result.stderr
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)


def program_files() -> list[Path]:
    """Pulumi.yaml, the top-level modules and every package beside them (the layers, the policy pack)."""
    packages = [path.parent for path in ROOT.glob("*/__init__.py") if path.parent.name != "tests"]
    return [ROOT / "Pulumi.yaml", *ROOT.glob("*.py"), *sorted(packages)]


def copy_project(destination: Path) -> Path:
    """The program's files as they are in the repo, so stack files never land in the checkout."""
    destination.mkdir()
    for source in program_files():
        if source.is_dir():
            shutil.copytree(source, destination / source.name, ignore=shutil.ignore_patterns("__pycache__", "venv"))
        else:
            shutil.copy2(source, destination / source.name)
    (destination / "venv").symlink_to(ROOT / "venv")
    (destination / "policy" / "venv").symlink_to(ROOT / "policy" / "venv")
    return destination


@dataclass
class Stack:
    """A fresh stack of this project on a throw-away local backend, driven by the real CLI."""

    name: str
    project: Path
    env: dict[str, str]
    log: CommandLog

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["pulumi", *args, "--stack", self.name, "--non-interactive"]
        return run(argv, self.log, self.env, check, cwd=self.project)

    def preview(self) -> dict[str, Any]:
        return dict(json.loads(self("preview", "--json").stdout))

    def set_config(self, key: str, value: str) -> None:
        self("config", "set", key, value)
