"""scripts/deploy with the real pulumi CLI: no backend, no deploy; local state only when asked for.

A fresh PULUMI_HOME is a machine that never logged in. The old script ran
`pulumi login --local` there (state in the real ~/.pulumi, which pulumi finds from the
user database, not $HOME) and deployed into an empty local stack.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.e2e.cli import ROOT, CommandLog, copy_project, run


def project_with_deploy(tmp_path: Path) -> Path:
    """A copy of the program (stack files never land in the checkout) with the real scripts/deploy."""
    project = copy_project(tmp_path / "project")
    (project / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "deploy", project / "scripts" / "deploy")
    venv = project / "scripts" / "venv"  # ./venv is the checkout's, set up before the tier
    venv.write_text("#!/usr/bin/env bash\necho ./venv\n")
    venv.chmod(0o755)
    return project


def deploy_env(toolchain: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k != "STACK"}
    home = tmp_path / "pulumi-home"
    home.mkdir(exist_ok=True)
    return {**base, "PATH": toolchain["PATH"], "PULUMI_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true", **extra}


def test_never_logged_in_stops_before_any_login(
    toolchain: dict[str, str], tmp_path: Path, command_log: CommandLog
) -> None:
    env = deploy_env(toolchain, tmp_path)
    project = project_with_deploy(tmp_path)
    result = run([str(project / "scripts" / "deploy"), "--yes"], command_log, env, check=False, cwd=project)
    assert result.returncode == 1, result.stderr
    assert "`pulumi whoami` failed" in result.stderr and "pulumi login" in result.stderr
    # Nothing logged in, no stack made: the real CLI's own record of a login is absent.
    assert not (Path(env["PULUMI_HOME"]) / "credentials.json").exists()
    assert not list(project.glob("Pulumi.*.yaml")), "no stack was selected or created"


def test_a_file_url_is_used_and_its_directory_made(
    toolchain: dict[str, str], tmp_path: Path, command_log: CommandLog
) -> None:
    state = tmp_path / "state"
    env = deploy_env(toolchain, tmp_path, PULUMI_BACKEND_URL=f"file://{state}", PULUMI_CONFIG_PASSPHRASE="e2e")
    # `--help` stops `pulumi up` before the program runs (EKS mode needs AWS); what came before is real.
    project = project_with_deploy(tmp_path)
    result = run([str(project / "scripts" / "deploy"), "--help"], command_log, env, check=False, cwd=project)
    assert result.returncode == 0, result.stderr
    assert f"Backend URL: file://{state}" in result.stderr
    assert (state / ".pulumi" / "stacks" / "canary" / "dev.json").exists(), "stack dev selected, created there"
