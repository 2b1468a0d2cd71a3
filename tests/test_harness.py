"""The harness itself: the SDK internals it relies on are there, and their loss is reported in one message."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from pulumi.runtime import rpc

from tests import harness


def within(installed: str, pinned: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    for bound in pinned.split(","):
        operator, number = bound[:2] if bound[1] == "=" else bound[:1], bound.lstrip("<>=!~")
        checks = {
            ">=": numbers(installed) >= numbers(number),
            "<": numbers(installed) < numbers(number),
            "<=": numbers(installed) <= numbers(number),
            "==": numbers(installed) == numbers(number),
        }
        if not checks.get(operator, False):
            return False
    return True


def test_the_installed_sdk_is_the_pinned_one_and_has_every_internal_the_adapter_uses() -> None:
    pinned = harness.pinned_sdk_range()
    assert pinned.startswith(">=3.") and ",<3." in pinned, f"pulumi must be pinned to a minor range, not {pinned}"
    assert within(version("pulumi"), pinned), f"pulumi {version('pulumi')} is outside {pinned}: run scripts/venv"
    assert harness.sdk_problems() == []


def test_a_missing_internal_is_named_in_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(rpc, "_special_secret_sig")
    with pytest.raises(harness.SdkAdapterError) as error:
        harness.check_sdk()
    message = str(error.value)
    assert "signature of a secret (pulumi.runtime.rpc:_special_secret_sig" in message
    assert f"cannot run on pulumi {version('pulumi')}" in message
    assert f"known to work with pulumi{harness.pinned_sdk_range()} (requirements.txt)" in message
    assert "_special_sig_key" not in message and "MockMonitor" not in message, "only what is missing is named"


def test_a_broken_sdk_stops_the_session_with_that_one_message(tmp_path: Path) -> None:
    # A plugin that removes one internal before the harness loads, as an SDK upgrade would.
    (tmp_path / "sdk_breaker.py").write_text("import pulumi.runtime.rpc as rpc\ndel rpc._special_resource_sig\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "sdk_breaker",
            "-p",
            "no:cacheprovider",
            "-q",
            "--co",
            "tests/test_harness.py",
        ],
        cwd=harness.PROJECT_DIR,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("relies on private internals") == 1, output
    assert "signature of a resource reference" in output and "Traceback" not in output, output


def test_the_adapter_is_the_only_code_that_names_sdk_internals() -> None:
    offenders = []
    for path in [*harness.PROJECT_DIR.glob("tests/**/*.py"), *harness.PROJECT_DIR.glob("benchmarks/*.py")]:
        if path.name in ("harness.py", "test_harness.py"):
            continue
        text = path.read_text()
        if "_sync_await" in text or "rpc._" in text or "runtime.mocks" in text:
            offenders.append(str(path.relative_to(harness.PROJECT_DIR)))
    assert offenders == []


def test_a_program_run_under_mocks_skips_call_stacks_and_gives_them_back_to_the_sdk() -> None:
    from pulumi.runtime import resource

    taken = resource._get_stack_trace
    with harness.no_call_stacks():
        assert (
            resource._get_stack_trace() == harness._internal(harness.SDK_INTERNALS["the engine's call stack message"])()
        )
    assert resource._get_stack_trace is taken
    harness.run_program(harness.EXISTING_CLUSTER)
    assert resource._get_stack_trace is taken
