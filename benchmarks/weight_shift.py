"""Benchmark: how long a canary weight shift takes through Pulumi, next to `kubectl apply` by hand.

Needs a running stack on the local cluster (scripts/try-local) and the toolchain on PATH:

    scripts/try-local
    eval "$(scripts/try-local env)"
    venv/bin/python benchmarks/weight_shift.py --stack "$CANARY_TRIAL_STACK" --shifts 5

Measures, for several weights: `pulumi config set canaryWeight N` + `pulumi up` until the
API server shows the new weights; the same in one command (`pulumi up --config
canaryWeight=N`, which also saves the setting); the same change applied with `kubectl
apply` to a copy of the VirtualService (as the seed walkthrough does by hand); and
`pulumi preview` of a weight change. Then where an update's time goes: the CLI's start
(`pulumi config get`), the program itself (a fresh Python evaluating __main__.py under
mocks: imports and resource registration), and the phases of real updates read from the
engine's log (`pulumi up -v=9 --logtostderr`, which is slower itself: compare phases, not
totals): the language host's answers, the program's start, its run with the engine and
the provider, its exit. Last, the floor: the same weight change made by the smallest Pulumi
program that can make it (one provider, one VirtualService, the same venv, engine, provider
and cluster, a stack of its own created and removed by the run), so that what is the
program's own (ours minus the floor) is told apart from what any Pulumi program pays on this
machine. Prints medians, the ratio to kubectl from the same run and the machine's load.
Leaves the stack at its starting weight.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesh.gateway import ingress_gateway  # noqa: E402
from settings import load_settings  # noqa: E402
from tests.harness import DictConfig  # noqa: E402
from workloads import manifests  # noqa: E402

BENCH_COPY = "nginx-virtual-svc-benchmark"
FLOOR_COPY = "nginx-virtual-svc-floor"

# The floor: one provider and one VirtualService, no settings, no other resource.
FLOOR_PROJECT = """\
name: weight-floor
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: {venv}
"""
FLOOR_PROGRAM = """\
import json

import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider("floor", kubeconfig=config.require("kubeconfig"))
manifest = json.loads(config.require("manifest"))
k8s.apiextensions.CustomResource(
    "floor",
    api_version=manifest["apiVersion"],
    kind=manifest["kind"],
    metadata=manifest["metadata"],
    spec=manifest["spec"],
    opts=pulumi.ResourceOptions(provider=provider),
)
"""


def sh(*argv: str, stdin: str | None = None, cwd: Path = ROOT, check: bool = True) -> str:
    return subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True, check=check).stdout


def live_weights(kubeconfig: str, name: str) -> list[int]:
    vs = json.loads(
        sh("kubectl", "--kubeconfig", kubeconfig, "-n", "default", "get", "virtualservice", name, "-o", "json")
    )
    return [route["weight"] for route in vs["spec"]["http"][0]["route"]]


def wait_for(kubeconfig: str, name: str, weights: list[int], start: float) -> float:
    while live_weights(kubeconfig, name) != weights:
        time.sleep(0.05)
    return time.perf_counter() - start


class PulumiStack:
    def __init__(self, stack: str, project: Path = ROOT) -> None:
        self.stack = stack
        self.project = project

    def __call__(self, *args: str, check: bool = True) -> str:
        return sh("pulumi", *args, "--stack", self.stack, "--non-interactive", cwd=self.project, check=check)

    def config(self, key: str) -> str:
        return self("config", "get", key).strip()


def copy_manifest(weight: int, name: str = BENCH_COPY) -> str:
    settings = load_settings(DictConfig({"canaryWeight": str(weight)}))
    vs = manifests.virtual_service(settings.app, ingress_gateway(settings.mesh.traffic_api))
    vs["metadata"]["name"] = name
    return json.dumps({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", **vs})


def floor_times(kubeconfig: str, weights: list[int]) -> tuple[list[float], float]:
    """Wall times (until visible) and CPU seconds per change of the floor program, on a stack of its own."""
    with tempfile.TemporaryDirectory(prefix="weight-floor-") as directory:
        (Path(directory) / "Pulumi.yaml").write_text(FLOOR_PROJECT.format(venv=ROOT / "venv"))
        (Path(directory) / "__main__.py").write_text(FLOOR_PROGRAM)
        pulumi = PulumiStack(f"weight-floor-{os.getpid()}", Path(directory))

        def up(weight: int) -> None:
            pulumi("up", "--yes", "--skip-preview", "--config", f"manifest={copy_manifest(weight, FLOOR_COPY)}")

        pulumi("stack", "init")
        try:
            pulumi("config", "set", "kubeconfig", kubeconfig)
            up(0)
            times = []
            cpu_start = children_cpu()
            for weight in weights:
                start = time.perf_counter()
                up(weight)
                times.append(wait_for(kubeconfig, FLOOR_COPY, [100 - weight, weight], start))
            cpu = (children_cpu() - cpu_start) / len(weights)
        finally:  # also after a failure: the floor's VirtualService leaves the cluster, its stack the backend
            pulumi("destroy", "--yes", "--skip-preview", check=False)
            pulumi("stack", "rm", "--yes", "--force")
    return times, cpu


PROGRAM_RUN = (
    "import sys, yaml; sys.path.insert(0, {root!r})\n"
    "from tests.harness import run_program\n"
    "config = yaml.safe_load(open({config!r}))['config']\n"
    "run_program({{k.split(':', 1)[1]: str(v) for k, v in config.items() if k.startswith('canary:')}})\n"
)


# Engine log messages (-v=9) that mark an update's phases: (start of the message, text in it).
MARKS = {
    "packages": ("langhost[python].GetRequiredPackages(", "success"),
    "run": ("langhost[python].Run(", "executing"),
    "first_registration": ("registering resource: ty=pulumi:pulumi:Stack", ""),
    "program_done": ("run_pulumi_func completed", ""),
    "run_end": ("langhost[python].Run(", "success"),
    "done": ("*** Update(preview=false) complete ***", ""),
}
PHASES = {  # label: (from mark, to mark); "start" is the log's first line
    "CLI start to the host's answers (About, plugins, VCS info)": ("start", "packages"),
    "program start: Python, SDK imports, first registration": ("run", "first_registration"),
    "program run: registrations, engine, provider's update": ("first_registration", "program_done"),
    "program exit": ("program_done", "run_end"),
    "after the program: plugins stopped, state saved": ("run_end", "done"),
}


def log_marks(log: str) -> dict[str, float]:
    """Seconds from the log's first line to the first line of each mark."""
    seen: dict[str, float] = {}
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        second, fraction = entry["time"].rstrip("Z").split(".")
        at = calendar.timegm(time.strptime(second, "%Y-%m-%dT%H:%M:%S")) + float("0." + fraction)
        seen.setdefault("start", at)
        message = entry.get("msg", "")
        for mark, (prefix, text) in MARKS.items():
            if message.startswith(prefix) and text in message:
                seen.setdefault(mark, at)
    return {mark: at - seen["start"] for mark, at in seen.items()}


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: pulumi, its language host, the program
    and the provider plugin. Unlike the wall time, hardly changed by other work on a busy machine."""
    times = os.times()
    return times.children_user + times.children_system


def timed(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True, help="the trial stack: $CANARY_TRIAL_STACK")
    parser.add_argument("--shifts", type=int, default=5)
    args = parser.parse_args()
    pulumi = PulumiStack(args.stack)
    kubeconfig = pulumi.config("kubeconfig")
    original = pulumi.config("canaryWeight") or "0"
    weights = [10 + 10 * (i % 9) for i in range(args.shifts)]
    if str(weights[0]) == original:
        weights = [w + 5 for w in weights]

    load_before = os.getloadavg()[0]
    cpu_start = children_cpu()
    pulumi_times = []
    for weight in weights:
        start = time.perf_counter()
        pulumi("config", "set", "canaryWeight", str(weight))
        pulumi("up", "--yes", "--skip-preview")
        pulumi_times.append(wait_for(kubeconfig, "nginx-virtual-svc", [100 - weight, weight], start))

    shift_cpu = (children_cpu() - cpu_start) / len(weights)
    cpu_start = children_cpu()
    one_command_times = []
    for weight in weights:
        weight = 100 - weight  # a different weight from the one in place
        start = time.perf_counter()
        pulumi("up", "--yes", "--skip-preview", "--config", f"canaryWeight={weight}")
        one_command_times.append(wait_for(kubeconfig, "nginx-virtual-svc", [100 - weight, weight], start))

    one_command_cpu = (children_cpu() - cpu_start) / len(weights)
    preview_times = []
    for weight in weights:
        pulumi("config", "set", "canaryWeight", str((weight + 7) % 100))
        start = time.perf_counter()
        pulumi("preview")
        preview_times.append(time.perf_counter() - start)
    pulumi("config", "set", "canaryWeight", original)
    pulumi("up", "--yes", "--skip-preview")

    kubectl = ["kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-"]
    sh(*kubectl, stdin=copy_manifest(0))
    kubectl_times = []
    cpu_start = children_cpu()
    for weight in weights:
        start = time.perf_counter()
        sh(*kubectl, stdin=copy_manifest(weight))
        kubectl_times.append(wait_for(kubeconfig, BENCH_COPY, [100 - weight, weight], start))
    kubectl_cpu = (children_cpu() - cpu_start) / len(weights)
    sh("kubectl", "--kubeconfig", kubeconfig, "-n", "default", "delete", "virtualservice", BENCH_COPY)

    runs = len(weights)
    stack_file = ROOT / f"Pulumi.{args.stack}.yaml"
    cli_start = timed(lambda: pulumi("config", "get", "canaryWeight"), runs)
    python = str(ROOT / "venv" / "bin" / "python")
    program = (
        timed(lambda: sh(python, "-c", PROGRAM_RUN.format(root=str(ROOT), config=str(stack_file))), runs)
        if stack_file.exists()
        else float("nan")
    )
    floor, floor_cpu = floor_times(kubeconfig, weights)
    phases: dict[str, list[float]] = {label: [] for label in PHASES}
    for weight in weights[:3]:
        logged_up = ["pulumi", "up", "--yes", "--skip-preview", "--config", f"canaryWeight={weight}"]
        logged_up += ["--stack", args.stack, "--non-interactive", "-v=9", "--logtostderr"]
        marks = log_marks(subprocess.run(logged_up, cwd=ROOT, capture_output=True, text=True, check=True).stderr)
        for label, (begin, end) in PHASES.items():
            if begin in marks and end in marks:
                phases[label].append(marks[end] - marks[begin])
    pulumi("config", "set", "canaryWeight", original)
    pulumi("up", "--yes", "--skip-preview")
    load_after = os.getloadavg()[0]

    shift, one, by_hand, preview = (
        statistics.median(t) for t in (pulumi_times, one_command_times, kubectl_times, preview_times)
    )
    print(f"weight shift via pulumi config set + up, until visible: median {shift:.2f} s over {runs} shifts")
    print(f"the same as one command, pulumi up --config:            median {one:.2f} s")
    print(f"same change via kubectl apply, until visible:           median {by_hand:.2f} s")
    print(f"ratio pulumi / kubectl:                                  {shift / by_hand:.1f}x")
    print(f"ratio one command / kubectl:                             {one / by_hand:.1f}x")
    print(f"pulumi preview of a weight change:                       median {preview:.2f} s")
    print(
        f"CPU seconds per change (all processes, polling included): config set + up {shift_cpu:.2f}, "
        f"one command {one_command_cpu:.2f}, kubectl {kubectl_cpu:.2f}"
    )
    print("where an update's time goes:")
    print(f"  the CLI's start (pulumi config get):                   median {cli_start:.2f} s")
    print(f"  the program under mocks: fresh Python, imports, registration: median {program:.2f} s")
    print("  phases of `pulumi up -v=9` (engine log, median of 3 updates):")
    for label, seconds in phases.items():
        print(f"    {label + ':':58} {statistics.median(seconds):.2f} s" if seconds else f"    {label}: not in the log")
    lowest = statistics.median(floor)
    print(
        f"the floor: a one-resource program, pulumi up --config:   median {lowest:.2f} s "
        f"({lowest / by_hand:.1f}x kubectl)"
    )
    print(f"  CPU seconds per change {floor_cpu:.2f}; the program's own share: {one - lowest:.2f} s of {one:.2f} s")
    print(f"load average (1 min) before / after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
