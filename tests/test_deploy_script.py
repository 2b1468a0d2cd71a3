"""scripts/deploy: it never switches state backends by itself.

The real script runs from a copy of the project's scripts/ folder with a stand-in `pulumi`
first on PATH (it records every call) and a stand-in scripts/venv (./venv exists already).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import PROJECT_DIR

FAKE_PULUMI = """\
#!/usr/bin/env bash
echo "$*" >> "$PULUMI_CALLS"
if [[ "$1" == whoami ]]; then
  if [[ -n "${FAKE_WHOAMI_ERROR:-}" ]]; then echo "error: $FAKE_WHOAMI_ERROR" >&2; exit 255; fi
  echo "User: someone"; echo "Backend URL: ${PULUMI_BACKEND_URL:-https://api.pulumi.com}"
fi
exit 0
"""
EXPIRED = "[401] Unauthorized: the access token has expired"


def deploy(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(PROJECT_DIR / "scripts" / "deploy", project / "scripts" / "deploy")
    stub_venv = project / "scripts" / "venv"
    stub_venv.write_text("#!/usr/bin/env bash\necho ./venv\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    for script in (stub_venv, bin_dir / "pulumi"):
        script.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k != "STACK"}
    result = subprocess.run(
        [str(project / "scripts" / "deploy"), *args],
        env={**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PULUMI_CALLS": str(calls), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result, calls.read_text().splitlines()


@pytest.mark.parametrize("backend", [None, "s3://state-bucket", "https://api.pulumi.com"])
def test_a_failing_whoami_stops_before_any_stack_is_touched(tmp_path: Path, backend: str | None) -> None:
    env = {"FAKE_WHOAMI_ERROR": EXPIRED, **({"PULUMI_BACKEND_URL": backend} if backend else {})}
    result, calls = deploy(tmp_path, "--yes", **env)
    assert result.returncode == 1, result.stderr
    assert calls == ["whoami --verbose"], "no login, no stack select, no up"
    assert "`pulumi whoami` failed" in result.stderr and EXPIRED in result.stderr
    assert "scripts/deploy --local" in result.stderr and "PULUMI_BACKEND_URL=file://" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_backend_logged_in_to_is_used_as_it_is(tmp_path: Path) -> None:
    result, calls = deploy(tmp_path, "--yes", STACK="prod")
    assert result.returncode == 0, result.stderr
    assert calls == ["whoami --verbose", "stack select prod --create", "up --stack prod --yes"]
    assert "Backend URL: https://api.pulumi.com" in result.stderr, "the user sees where the update goes"


def test_local_state_only_when_asked_for(tmp_path: Path) -> None:
    result, calls = deploy(tmp_path, "--local", "--yes")
    assert result.returncode == 0, result.stderr
    assert calls == ["login --local", "whoami --verbose", "stack select dev --create", "up --stack dev --yes"]


def test_a_file_backend_url_is_local_state_asked_for(tmp_path: Path) -> None:
    state = tmp_path / "state" / "dev"
    result, calls = deploy(tmp_path, PULUMI_BACKEND_URL=f"file://{state}")
    assert result.returncode == 0, result.stderr
    assert calls == ["whoami --verbose", "stack select dev --create", "up --stack dev"]
    assert state.is_dir(), "pulumi cannot open a state directory that does not exist"


def test_local_and_a_remote_backend_url_conflict(tmp_path: Path) -> None:
    result, calls = deploy(tmp_path, "--local", PULUMI_BACKEND_URL="s3://state-bucket")
    assert result.returncode == 2
    assert "--local conflicts with PULUMI_BACKEND_URL=s3://state-bucket" in result.stderr
    assert calls == []
