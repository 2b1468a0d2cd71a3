"""scripts/try-local without a cluster: its names, usage, the exports it prints, and what it refuses.

The real script runs from a copy of the checkout whose scripts/toolchain, scripts/venv and
scripts/local-cluster are stand-ins, with a stand-in `pulumi` that logs every call, so a
test can tell that a refusal came before anything changed. The end-to-end tier runs the
script for real (tests/e2e/test_try_local.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import PROJECT_DIR


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@dataclass
class Checkout:
    root: Path
    bin: Path
    calls: Path

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": os.environ["PATH"], "HOME": str(self.root.parent / "home"), **env}
        return subprocess.run(
            [str(self.root / "scripts/try-local"), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def has_stack(self, name: str, checkout: str) -> None:
        """The backend holds stack `name`, last brought up from `checkout`."""
        (self.bin / "stacks.json").write_text(json.dumps([{"name": name, "current": False}]))
        (self.bin / "owner.txt").write_text(checkout)

    @property
    def logged(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    @property
    def hash(self) -> str:
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:8]


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    root, bin_dir = tmp_path / "clone", tmp_path / "toolchain-bin"
    (root / "scripts").mkdir(parents=True)
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    shutil.copy2(PROJECT_DIR / "scripts/try-local", root / "scripts/try-local")
    (root / "venv").symlink_to(PROJECT_DIR / "venv")
    executable(root / "scripts/venv", "#!/bin/sh\n")
    executable(root / "scripts/toolchain", f'#!/bin/sh\necho "toolchain $*" >> "{calls}"\necho "{bin_dir}"\n')
    executable(root / "scripts/local-cluster", f'#!/bin/sh\necho "local-cluster $*" >> "{calls}"\necho /k\n')
    (bin_dir / "stacks.json").write_text("[]")
    (bin_dir / "users.json").write_text("[]")
    executable(
        bin_dir / "pulumi",
        "#!/bin/sh\n"
        f'echo "pulumi $*" >> "{calls}"\n'
        'case "$*" in\n'
        f'  "stack ls --json"*) cat "{bin_dir}/stacks.json" ;;\n'
        f'  "stack ls --all --json --tag canary:cluster="*) cat "{bin_dir}/users.json" ;;\n'
        f'  "stack tag get canary:checkout"*) cat "{bin_dir}/owner.txt" ;;\n'
        "esac\n",
    )
    return Checkout(root, bin_dir, calls)


def test_help_prints_the_usage_and_does_nothing(checkout: Checkout) -> None:
    for flag in ("--help", "-h"):
        result = checkout(flag)
        assert result.returncode == 0
        assert result.stdout.startswith("scripts/try-local — the no-cloud path")
        assert "Usage: scripts/try-local [up|down|env|demo [--failing]|--help]" in result.stdout
    assert checkout.logged == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--yes"], "unknown command: --yes (up, down, env, demo [--failing], --help)"),
        (["up", "now"], "up takes no arguments (got: now); see scripts/try-local --help"),
        (["down", "--force"], "down takes no arguments (got: --force); see scripts/try-local --help"),
        (["demo", "--fast"], "demo takes only --failing (got: --fast); see scripts/try-local --help"),
    ],
)
def test_unknown_arguments_are_refused_in_one_line_before_anything_runs(
    checkout: Checkout, argv: list[str], message: str
) -> None:
    result = checkout(*argv)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"[try-local] {message}\n", "")
    assert checkout.logged == []


def test_env_prints_what_a_fresh_shell_needs_named_after_the_checkout(checkout: Checkout) -> None:
    result = checkout("env")
    assert result.returncode == 0, result.stderr
    home = checkout.root.parent / "home"
    cluster = f"canary-{checkout.hash}"
    assert result.stdout.splitlines() == [
        f'export PATH="{checkout.bin}:{checkout.root}/venv/bin:$PATH"',
        f'export KUBECONFIG="{home}/.cache/canary-toolchain/kubeconfig-{cluster}"',
        f'export PULUMI_BACKEND_URL="file://{home}"',
        "export PULUMI_CONFIG_PASSPHRASE=''   # this trial stack's: empty",
        "export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
        f'export CANARY_TRIAL_STACK="local-{checkout.hash}" CANARY_TRIAL_CLUSTER="{cluster}"',
    ]
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f'eval "$({checkout.root}/scripts/try-local env)"; command -v pulumi; echo "$CANARY_TRIAL_STACK"',
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == [str(checkout.bin / "pulumi"), f"local-{checkout.hash}"]


def test_two_checkouts_get_different_names(checkout: Checkout, tmp_path: Path) -> None:
    other = tmp_path / "other-clone"
    shutil.copytree(checkout.root, other, symlinks=True)
    first, second = checkout("env").stdout, Checkout(other, checkout.bin, checkout.calls)("env").stdout
    assert f"local-{checkout.hash}" in first
    assert f"local-{checkout.hash}" not in second
    assert [line for line in first.splitlines() if "TRIAL" in line or "KUBECONFIG" in line] != [
        line for line in second.splitlines() if "TRIAL" in line or "KUBECONFIG" in line
    ]


def test_env_keeps_the_names_and_passphrase_given(checkout: Checkout) -> None:
    result = checkout(
        "env", STACK="mine", CANARY_CLUSTER_NAME="shared", CANARY_KUBECONFIG="/k/c", PULUMI_CONFIG_PASSPHRASE="s3cret"
    )
    lines = result.stdout.splitlines()
    assert 'export CANARY_TRIAL_STACK="mine" CANARY_TRIAL_CLUSTER="shared"' in lines
    assert 'export KUBECONFIG="/k/c"' in lines
    assert "s3cret" not in result.stdout
    assert "# PULUMI_CONFIG_PASSPHRASE: the one this stack was created with (yours; not printed)" in lines


@pytest.mark.parametrize("command", ["up", "down", "demo"])
def test_a_stack_another_checkout_brought_up_is_left_alone(checkout: Checkout, command: str) -> None:
    checkout.has_stack(f"local-{checkout.hash}", "/home/someone/other-clone")
    result = checkout(command)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"[try-local] stack local-{checkout.hash} was last brought up from /home/someone/other-clone, "
        f"not {checkout.root}: leaving it alone (set STACK to another name, or run scripts/try-local in that checkout)"
    )
    changes = [
        call
        for call in checkout.logged
        if not call.startswith(("toolchain", "pulumi stack ls", "pulumi stack tag get"))
    ]
    assert changes == []


def test_a_stack_of_the_same_name_made_by_hand_is_left_alone(checkout: Checkout) -> None:
    checkout.has_stack("mine", "")
    result = checkout("down", STACK="mine")
    assert result.returncode == 1
    assert "stack mine was last brought up from another place (no canary:checkout tag)" in result.stderr
    assert not [call for call in checkout.logged if "destroy" in call or "local-cluster" in call]


def test_down_destroys_and_removes_its_stack_then_stops_its_cluster(checkout: Checkout) -> None:
    stack = f"local-{checkout.hash}"
    checkout.has_stack(stack, str(checkout.root))
    assert checkout("down").returncode == 0
    changes = [
        call for call in checkout.logged if not call.startswith(("toolchain", "pulumi stack ls", "pulumi stack tag"))
    ]
    assert changes == [
        f"pulumi destroy --stack {stack} --yes --non-interactive",
        f"pulumi stack rm {stack} --yes --non-interactive",
        "local-cluster stop",
    ]


def test_down_keeps_a_cluster_another_stack_names(checkout: Checkout) -> None:
    (checkout.bin / "users.json").write_text(json.dumps([{"name": "other"}]))
    result = checkout("down")
    assert result.returncode == 0
    assert f"[try-local] cluster canary-{checkout.hash} kept: stack(s) other use it" in result.stderr
    assert "local-cluster stop" not in checkout.logged
