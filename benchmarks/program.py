"""Benchmark: time to evaluate the whole program under mocks, and the fast test tier's wall time.

Run: venv/bin/python benchmarks/program.py [--runs N]
Prints medians in seconds; the README's numbers come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import EXISTING_CLUSTER, run_program  # noqa: E402

CONFIGS = {
    "eks (seed dev stack)": {"canaryWeight": "10"},
    "existing cluster": {**EXISTING_CLUSTER, "canaryWeight": "10"},
    "existing cluster, addons off": {**EXISTING_CLUSTER, "prometheus": "false", "grafana": "false", "kiali": "false"},
}


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    start = time.perf_counter()
    run_program(CONFIGS["eks (seed dev stack)"])
    print(f"first evaluation (imports included): {time.perf_counter() - start:.3f} s")
    for label, config in CONFIGS.items():
        samples = timed(partial(run_program, config), args.runs)
        print(
            f"evaluation, {label}: median {statistics.median(samples):.3f} s, "
            f"max {max(samples):.3f} s over {args.runs} runs, {len(run_program(config).resources)} resources"
        )

    for tier, marker in (("fast tier (-m 'not e2e')", "not e2e"),):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", marker, "-p", "no:cacheprovider"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"{tier} wall time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
