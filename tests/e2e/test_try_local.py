"""scripts/try-local for real: two checkouts side by side, the commands it prints, the demo, and down.

Each checkout is a copy of this one in a temporary directory, so its trial is named after
that directory (stack local-<hash>, cluster canary-<hash>); both share one throw-away file
backend, as two clones on one machine share ~/.pulumi. What is served is read from each
cluster's API server.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import ROOT, CommandLog, Kubectl, copy_project, run
from tests.e2e.conftest import TOOLCHAIN_DIR

TIMES: dict[str, float] = {}  # reported at the end of the module (docs/try-local.md has them)


@dataclass
class Trial:
    """A checkout of the project and its scripts/try-local."""

    root: Path
    env: dict[str, str]
    log: CommandLog

    def __call__(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return run([str(self.root / "scripts/try-local"), *args], self.log, {**self.env, **env}, check, cwd=self.root)

    def names(self) -> dict[str, str]:
        return dict(re.findall(r'(\w+)="([^"]*)"', self("env").stdout))

    def shell(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`script` in a fresh shell in the checkout: what a new terminal has (HOME, a system PATH, the backend)."""
        fresh = {key: self.env[key] for key in ("HOME", "PULUMI_BACKEND_URL", "PULUMI_HOME")}
        return run(["bash", "-c", script], self.log, {**fresh, "PATH": "/usr/bin:/bin"}, check, cwd=self.root)

    def kubectl(self) -> Kubectl:
        return Kubectl(self.names()["KUBECONFIG"], self.env, self.log)

    def served(self) -> dict[str, int]:
        """The weights of the VirtualService's weighted route (the last), from the API server."""
        service: Any = self.kubectl().get("virtualservice", "nginx-virtual-svc", "-n", "default")
        return {
            route["destination"]["subset"]: route.get("weight", 0) for route in service["spec"]["http"][-1]["route"]
        }

    def cluster_running(self) -> bool:
        names = self.names()
        status = run(
            [str(self.root / "scripts/local-cluster"), "status"],
            self.log,
            {
                **self.env,
                "CANARY_CLUSTER_NAME": names["CANARY_TRIAL_CLUSTER"],
                "CANARY_KUBECONFIG": names["KUBECONFIG"],
            },
            check=False,
        )
        return status.returncode == 0


def printed_commands(stdout: str) -> list[str]:
    """The commands `scripts/try-local` prints after "Try it", without their comments."""
    block = stdout.split("Try it", 1)[1].splitlines()[1:]
    return [line.split("   #")[0].strip() for line in block if line.strip()]


def checkout(destination: Path, log: CommandLog, backend: Path) -> Trial:
    root = copy_project(destination)
    shutil.copytree(ROOT / "scripts", root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    # The copy shares this checkout's venv (a symlink): the real scripts/venv would reinstall it,
    # editable from the copy, so the copy's only says where it is.
    (root / "scripts/venv").write_text(f'#!/bin/sh\necho "{root / "venv"}"\n')
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"STACK", "CANARY_CLUSTER_NAME", "CANARY_KUBECONFIG", "KUBECONFIG", "PULUMI_CONFIG_PASSPHRASE"}
    }
    env |= {"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_HOME": str(TOOLCHAIN_DIR / "pulumi-home")}
    return Trial(root, env, log)


@pytest.fixture(scope="module")
def trials(
    tmp_path_factory: pytest.TempPathFactory, command_log: CommandLog, toolchain: dict[str, str]
) -> Iterator[tuple[Trial, Trial]]:
    backend = tmp_path_factory.mktemp("backend")
    first = checkout(tmp_path_factory.mktemp("clone-a") / "canary", command_log, backend)
    second = checkout(tmp_path_factory.mktemp("clone-b") / "canary", command_log, backend)
    yield first, second
    for trial in (first, second):
        trial("down", check=False)
    print("try-local times (s):", {name: round(seconds, 1) for name, seconds in TIMES.items()})


def timed(name: str, trial: Trial, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    start = time.monotonic()
    result = trial(*args, check=check)
    TIMES[name] = time.monotonic() - start
    return result


def test_two_checkouts_trials_side_by_side_never_touch_each_other(trials: tuple[Trial, Trial]) -> None:
    first, second = trials
    up_first = timed("up, cold", first)
    up_second = second()
    a, b = first.names(), second.names()
    stack_a, stack_b = a["CANARY_TRIAL_STACK"], b["CANARY_TRIAL_STACK"]
    assert stack_a != stack_b and a["KUBECONFIG"] != b["KUBECONFIG"]
    assert f"Stack {stack_a} runs on the local cluster {a['CANARY_TRIAL_CLUSTER']}." in up_first.stdout
    assert f"Stack {stack_b} runs on the local cluster {b['CANARY_TRIAL_CLUSTER']}." in up_second.stdout

    # The printed commands, pasted into a fresh shell of each checkout.
    eval_env, weight_10, jsonpath, *_ = printed_commands(up_first.stdout)
    assert eval_env == 'eval "$(scripts/try-local env)"'
    assert weight_10.startswith("pulumi config set canaryWeight 10 ")
    first.shell(f"{eval_env}; {weight_10}")
    header = (
        "pulumi config set canaryHeaderName x-canary --stack {0} && "
        "pulumi config set canaryHeaderValue 0123456789abcdef --stack {0} && "
        "pulumi config set canaryWeight 50 --stack {0}"
    )
    second.shell(f"{eval_env}; {header.format(stack_b)} && pulumi up --yes --stack {stack_b}")
    assert first.shell(f"{eval_env}; {jsonpath}").stdout.strip() == "v1=90 v2=10"
    assert second.shell(f"{eval_env}; {jsonpath}").stdout.strip() == "v1=50 v2=50"  # a header route comes first
    assert (first.served(), second.served()) == ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50})
    assert first.shell(f"{eval_env}; canary status --stack {stack_a}").returncode == 0

    # Up again (warm): the trial keeps its own config; the other is untouched.
    timed("up, warm", first)
    assert (first.served(), second.served()) == ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50})

    # One checkout cannot adopt the other's stack.
    refused = first(check=False, STACK=stack_b)
    assert refused.returncode == 1
    assert f"stack {stack_b} was last brought up from {second.root}" in refused.stderr
    assert second.served() == {"v1": 50, "v2": 50}

    # down of one leaves the other running.
    timed("down", second, "down")
    assert not second.cluster_running()
    stacks = first.shell(f"{eval_env}; pulumi stack ls --json").stdout
    assert stack_b not in stacks and stack_a in stacks
    assert first.cluster_running()
    assert first.served() == {"v1": 90, "v2": 10}


def test_down_keeps_a_cluster_another_stack_uses(trials: tuple[Trial, Trial]) -> None:
    first, _ = trials
    names = first.names()
    eval_env = 'eval "$(scripts/try-local env)"'
    first()
    first.shell(
        f"{eval_env}; pulumi stack init other && pulumi stack tag set canary:cluster {names['CANARY_TRIAL_CLUSTER']}"
    )
    kept = first("down")
    assert f"cluster {names['CANARY_TRIAL_CLUSTER']} kept: stack(s) other use it" in kept.stderr
    assert first.cluster_running()
    first.shell(f"{eval_env}; pulumi stack rm other --yes")
    first("down")
    assert not first.cluster_running()


def refused_connection(address: str) -> bool:
    host, port = address.removeprefix("http://").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


@pytest.mark.parametrize(("variant", "outcome", "served"), [
    ((), "promoted", {"v2": 100, "v1": 0}),
    (("--failing",), "rolled-back", {"v1": 100, "v2": 0}),
])  # fmt: skip
def test_the_demo_ends_promoted_or_rolled_back_and_leaves_nothing_running(
    trials: tuple[Trial, Trial], variant: tuple[str, ...], outcome: str, served: dict[str, int]
) -> None:
    first, _ = trials
    first()  # the cluster up before the clock starts: the demo's own time is what is reported
    result = timed(f"demo {' '.join(variant)}".strip(), first, "demo", *variant, check=False)
    assert result.returncode == (0 if outcome == "promoted" else 1), result.stderr[-2000:]
    assert f"outcome: {outcome}" in result.stdout
    assert TIMES[f"demo {' '.join(variant)}".strip()] < 180
    assert first.served() == served
    started = re.search(r"Istio-shaped metrics on (\S+), Prometheus on (\S+) ", result.stdout)
    assert started is not None, result.stdout
    assert all(refused_connection(address) for address in started.groups())
