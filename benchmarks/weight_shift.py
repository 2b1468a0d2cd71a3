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
(`pulumi config get`), the language host's plugin discovery (`pip list` in the venv, as
it runs on every update), and the program itself (a fresh Python evaluating __main__.py
under mocks: imports and resource registration); the engine and the Kubernetes provider
have the rest. Prints medians, the ratio to kubectl from the same run and the machine's
load. Leaves the stack at its starting weight.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def sh(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(argv, cwd=ROOT, input=stdin, capture_output=True, text=True, check=True).stdout


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
    def __init__(self, stack: str) -> None:
        self.stack = stack

    def __call__(self, *args: str) -> str:
        return sh("pulumi", *args, "--stack", self.stack, "--non-interactive")

    def config(self, key: str) -> str:
        return self("config", "get", key).strip()


def copy_manifest(weight: int) -> str:
    settings = load_settings(DictConfig({"canaryWeight": str(weight)}))
    vs = manifests.virtual_service(settings.app, ingress_gateway(settings.mesh.traffic_api))
    vs["metadata"]["name"] = BENCH_COPY
    return json.dumps({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", **vs})


PROGRAM_RUN = (
    "import sys, yaml; sys.path.insert(0, {root!r})\n"
    "from tests.harness import run_program\n"
    "config = yaml.safe_load(open({config!r}))['config']\n"
    "run_program({{k.split(':', 1)[1]: str(v) for k, v in config.items() if k.startswith('canary:')}})\n"
)


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
    discovery = timed(lambda: sh(python, "-m", "pip", "list", "--format", "json"), runs)
    program = (
        timed(lambda: sh(python, "-c", PROGRAM_RUN.format(root=str(ROOT), config=str(stack_file))), runs)
        if stack_file.exists()
        else float("nan")
    )
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
    print(f"  plugin discovery (pip list in the venv):               median {discovery:.2f} s")
    print(f"  the program: fresh Python, imports, registration:      median {program:.2f} s")
    print(f"load average (1 min) before / after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
