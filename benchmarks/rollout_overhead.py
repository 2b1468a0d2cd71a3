"""Benchmark: the `canary run` tool's own time per step, the part not spent waiting for the interval.

Needs a running stack on the local cluster (scripts/try-local) and the toolchain on PATH:

    scripts/try-local
    eval "$(scripts/try-local env)"; export PATH="$(scripts/toolchain --print-path prometheus):$PATH"
    venv/bin/python benchmarks/rollout_overhead.py --stack "$CANARY_TRIAL_STACK" --runs 3

Starts the in-process Istio-shaped exporter and a real Prometheus on loopback (as the
end-to-end tests do), then runs `canary run --steps 10,25,50,100 --no-promote` with a
healthy canary several times, each followed by `canary abort`. Overhead per step =
(run time - analyses x interval) / steps: the update, the run record on the stack, the
queries. Goal: under 10 % of Flagger's default 60 s interval.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.demo import MeshTraffic, PrometheusServer  # noqa: E402

STEPS = "10,25,50,100"
FLAGGER_INTERVAL = 60.0


def canary(stack: str, prometheus: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "CANARY_PROMETHEUS_URL": prometheus}
    argv = [str(ROOT / "venv/bin/canary"), *args, "--stack", stack, "--json"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report: dict[str, object] = json.loads(result.stdout)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True, help="the trial stack: $CANARY_TRIAL_STACK")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=int, default=10, help="seconds; the overhead does not depend on it")
    args = parser.parse_args()
    per_step, update_per_step = [], []
    with MeshTraffic() as mesh, PrometheusServer([mesh.target], scrape_interval="1s") as prometheus:
        for version in ("v1", "v2"):
            mesh.set(version, rps=100, error_ratio=0, latency_ms=50)
        prometheus.wait_for_series("count(count_over_time(istio_requests_total[5s]) >= 4) >= 2", 30)
        for _ in range(args.runs):
            report = canary(
                args.stack, prometheus.url, "run", "--steps", STEPS, "--interval", f"{args.interval}s",
                "--poll", f"{args.interval}s", "--window", "5s", "--no-promote",
            )  # fmt: skip
            analyses = report["analyses"]
            assert report["outcome"] == "completed" and isinstance(analyses, list), report
            steps = len(STEPS.split(","))
            waited = len(analyses) * args.interval
            per_step.append((float(str(report["elapsed_seconds"])) - waited) / steps)
            update_per_step.append(float(str(report["update_seconds"])) / steps)
            canary(args.stack, prometheus.url, "abort")
    overhead, updates = statistics.median(per_step), statistics.median(update_per_step)
    print(f"runs: {args.runs} x {STEPS}, interval {args.interval}s, healthy canary")
    print(f"tool overhead per step (median): {overhead:.2f} s (runs: {', '.join(f'{s:.2f}' for s in per_step)})")
    print(f"  of which pulumi up:            {updates:.2f} s")
    print(f"  share of a {FLAGGER_INTERVAL:.0f} s interval:      {100 * overhead / FLAGGER_INTERVAL:.1f} %")


if __name__ == "__main__":
    main()
