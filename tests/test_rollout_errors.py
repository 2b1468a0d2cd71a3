"""The `canary` command's errors a newcomer can cause: one line on stderr, exit 2, no traceback.

The real command runs against a stand-in `pulumi` on PATH that answers `pulumi version` and
fails every other command with what the real CLI prints in that situation.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from rollout import cli
from rollout.outcome import Outcome
from tests.harness import PROJECT_DIR

# What pulumi 3.274 prints on stderr in each situation (seen with the toolchain's CLI on a file backend).
PULUMI_SAYS = {
    "unknown stack": "error: no stack named 'nope' found\n",
    "locked stack": (
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
        "or delete the lock file with `pulumi cancel`.\n"
        "  file:///home/u/.pulumi/locks/organization/canary/nope/x.json: "
        "created by u@host (pid 42) at 2026-11-29T02:00:00Z\n"
    ),
    "missing passphrase": (
        "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE "
        "environment variables\n"
    ),
    "anything else": "warning: a warning first\nerror: failed to load checkpoint: unexpected end of JSON input\n",
    "nothing said": "",  # killed (out of memory, say) before it printed why
    "nested errors": "error: could not read the stack: error: read tcp: connection reset by peer\n",
}
ONE_LINE = {
    "unknown stack": "canary status: stack nope does not exist in this backend (no stack named 'nope' found): "
    "see `pulumi stack ls`",
    "locked stack": "canary status: stack nope is locked by another update: wait for it to end, or run "
    "`pulumi cancel` if none is running (a killed update leaves its lock)",
    "missing passphrase": "canary status: stack nope encrypts its secrets with a passphrase: set "
    "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE); a scripts/try-local stack uses an empty one",
    "anything else": "canary status: pulumi: failed to load checkpoint: unexpected end of JSON input",
    "nothing said": "canary status: pulumi: failed (run the same pulumi command by hand to see why)",
    "nested errors": "canary status: pulumi: could not read the stack: error: read tcp: connection reset by peer",
}


def stand_in_pulumi(bin_dir: Path, stderr: str) -> Path:
    """A `pulumi` that knows its version and fails everything else as the real one would; it logs its calls."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "pulumi"
    quoted = stderr.replace("'", "'\\''")
    script.write_text(  # shell builtins only: PATH has nothing else
        "#!/bin/sh\n"
        f'echo "$*" >> "{bin_dir}/calls.txt"\n'
        'if [ "$1" = version ]; then echo v3.274.1; exit 0; fi\n'
        f"printf '%s' '{quoted}' >&2\n"
        "exit 255\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def canary(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.err.splitlines()


@pytest.mark.parametrize("situation", PULUMI_SAYS)
def test_pulumi_errors_are_one_line(
    situation: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in_pulumi(tmp_path / "bin", PULUMI_SAYS[situation])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    code, err = canary(["status", "--stack", "nope", "--cwd", str(PROJECT_DIR)], capsys)
    assert (code, err) == (Outcome.REFUSED.exit_code, [ONE_LINE[situation]])


def test_without_stack_the_one_line_names_the_selected_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in_pulumi(tmp_path / "bin", PULUMI_SAYS["locked stack"])  # `pulumi stack ls` fails too
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    code, err = canary(["status", "--cwd", str(PROJECT_DIR)], capsys)
    assert (code, err) == (
        Outcome.REFUSED.exit_code,
        [ONE_LINE["locked stack"].replace("stack nope", "the selected stack")],
    )


def test_a_pulumi_that_cannot_be_run_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pulumi").write_text("#!/bin/sh\n")  # not executable
    monkeypatch.setenv("PATH", str(tmp_path))
    code, err = canary(["status", "--stack", "local", "--cwd", str(PROJECT_DIR)], capsys)
    assert (code, err) == (Outcome.REFUSED.exit_code, ["canary status: [Errno 13] Permission denied: 'pulumi'"])


def test_a_missing_pulumi_cli_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi there
    code, err = canary(["status", "--stack", "local", "--cwd", str(PROJECT_DIR)], capsys)
    assert code == Outcome.REFUSED.exit_code
    assert err == [
        "canary status: the pulumi CLI is not on PATH: install it, "
        'or run eval "$(scripts/try-local env)" in the project'
    ]


@pytest.mark.parametrize("command", ["status", "run", "promote", "abort"])
def test_outside_the_project_is_one_line_before_pulumi_runs(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in_pulumi(tmp_path / "bin", PULUMI_SAYS["anything else"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path)
    code, err = canary([command, "--cwd", str(tmp_path)], capsys)
    assert (code, err) == (
        Outcome.REFUSED.exit_code,
        [f"canary {command}: no Pulumi.yaml in {tmp_path}: run canary in the project's directory, or pass --cwd DIR"],
    )
    assert not (tmp_path / "bin" / "calls.txt").exists()


def test_a_run_without_any_prometheus_is_refused_before_the_stack_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in_pulumi(tmp_path / "bin", PULUMI_SAYS["anything else"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    code, err = canary(["run", "--stack", "local", "--cwd", str(PROJECT_DIR), "--prometheus-url", url], capsys)
    assert code == Outcome.REFUSED.exit_code
    assert len(err) == 1
    assert err[0].startswith(f"canary run: Prometheus at {url} cannot be reached (")
    assert err[0].endswith("or pass --prometheus-url")
    assert not (tmp_path / "bin" / "calls.txt").exists()
