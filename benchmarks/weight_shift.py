"""Benchmark: how long a canary weight shift takes through Pulumi, next to `kubectl apply` by hand.

Needs a running stack on the local cluster (scripts/try-local) and the toolchain on PATH:

    scripts/try-local
    eval "$(scripts/try-local env)"
    venv/bin/python benchmarks/weight_shift.py --stack "$CANARY_TRIAL_STACK" --shifts 5

Measures, for several weights: `pulumi config set canaryWeight N` + `pulumi up` until the
API server shows the new weights; the same change applied with `kubectl apply` to a copy
of the VirtualService (as the seed walkthrough does by hand); and `pulumi preview` of a
weight change. Prints medians and the ratio. Leaves the stack at its starting weight.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
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

    pulumi_times = []
    for weight in weights:
        start = time.perf_counter()
        pulumi("config", "set", "canaryWeight", str(weight))
        pulumi("up", "--yes", "--skip-preview")
        pulumi_times.append(wait_for(kubeconfig, "nginx-virtual-svc", [100 - weight, weight], start))

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
    for weight in weights:
        start = time.perf_counter()
        sh(*kubectl, stdin=copy_manifest(weight))
        kubectl_times.append(wait_for(kubeconfig, BENCH_COPY, [100 - weight, weight], start))
    sh("kubectl", "--kubeconfig", kubeconfig, "-n", "default", "delete", "virtualservice", BENCH_COPY)

    shift, by_hand, preview = (statistics.median(t) for t in (pulumi_times, kubectl_times, preview_times))
    print(f"weight shift via pulumi config set + up, until visible: median {shift:.2f} s over {len(weights)} shifts")
    print(f"same change via kubectl apply, until visible:           median {by_hand:.2f} s")
    print(f"ratio pulumi / kubectl:                                  {shift / by_hand:.1f}x")
    print(f"pulumi preview of a weight change:                       median {preview:.2f} s")


if __name__ == "__main__":
    main()
