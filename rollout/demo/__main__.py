"""`python -m rollout.demo --stack NAME [--failing]`: a metric-gated `canary run` to watch, offline, in minutes.

Starts Istio-shaped traffic for both versions of the app and a real Prometheus scraping it,
both on 127.0.0.1 (`prometheus` must be on PATH: scripts/try-local demo puts the toolchain's
there), puts the stack's release back to the demo's start (v1 stable, v2 the canary at
weight 0), and runs `canary run` with short intervals: healthy, it advances step by step
to promotion; with --failing the canary answers a quarter of its requests with 5xx and the
run rolls back. Everything it started is stopped when it ends, however it ends.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pulumi import automation as auto

from rollout import cli
from rollout.demo.prometheus import PrometheusServer
from rollout.demo.traffic import MeshTraffic
from rollout.outcome import Outcome
from rollout.runner import RunRefused
from rollout.stack import ApplyError, PulumiStack
from settings import SettingsError, declared_settings

# Short enough to watch (about a minute healthy), long enough for a 1 s scrape to fill each window.
STEPS = "10,50,100"
INTERVAL = "10s"
WINDOW = "10s"
FAILING_ERROR_RATIO = 0.25  # the canary's share of 5xx with --failing: a success rate of 75 %, under 99
# The release the demo starts from: the declared defaults (v1 stable, v2 the canary), no header, no mirror.
RELEASE_KEYS = (
    "stableVersion",
    "stableImage",
    "stableReplicas",
    "canaryVersion",
    "canaryImage",
    "canaryReplicas",
    "canaryWeight",
    "canaryHeaderName",
    "mirrorPercent",
)


def start_of_release() -> dict[str, str]:
    """The config the demo starts from: the declared defaults, with one canary replica to send traffic to."""
    changes = {key: str(declared_settings()[key]["default"]) for key in RELEASE_KEYS}
    changes["canaryReplicas"] = "1"
    return changes


def run_argv(stack: str, cwd: Path, prometheus_url: str) -> list[str]:
    """The `canary run` the demo runs (printed, so it can be run by hand)."""
    return [
        "run",
        "--stack",
        stack,
        "--cwd",
        str(cwd),
        "--steps",
        STEPS,
        "--interval",
        INTERVAL,
        "--window",
        WINDOW,
        "--poll",
        "2s",
        "--threshold",
        "2",
        "--prometheus-url",
        prometheus_url,
    ]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so `kill` stops Prometheus and the traffic as Ctrl-C does


def demo(args: argparse.Namespace) -> int:
    stack = PulumiStack(args.stack, args.cwd)
    print(f"[demo] stack {args.stack}: back to the start of the release (v1 stable, v2 canary at weight 0)")
    stack.clear_record()  # a demo killed midway leaves its run on the stack; this one starts over
    stack.apply(start_of_release(), "canary demo: start of the release")
    app = stack.settings().app
    with MeshTraffic(app=app.name, namespace=app.namespace) as mesh:
        mesh.set(app.stable.label, rps=100, error_ratio=0, latency_ms=50)
        mesh.set(app.canary.label, rps=100, error_ratio=FAILING_ERROR_RATIO if args.failing else 0, latency_ms=50)
        with PrometheusServer([mesh.target], scrape_interval="1s") as prometheus:
            print(f"[demo] Istio-shaped metrics on {mesh.target}, Prometheus on {prometheus.url} (scraping every 1s)")
            prometheus.wait_for_series(f"count(count_over_time(istio_requests_total[{WINDOW}]) >= 5) >= 2", 60)
            health = f"answers {FAILING_ERROR_RATIO:.0%} of requests with 5xx" if args.failing else "is healthy"
            print(f"[demo] the canary {app.canary.label} {health}")
            run = run_argv(args.stack, args.cwd, prometheus.url)
            print(f"[demo] canary {' '.join(run)}")
            return cli.main(run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollout.demo", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the trial stack (scripts/try-local prints its name)")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="the project directory (Pulumi.yaml)")
    parser.add_argument("--failing", action="store_true", help="the canary fails its checks: watch it roll back")
    args = parser.parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = demo(args)
    except (SettingsError, RunRefused) as error:
        print(f"canary demo: {error}", file=sys.stderr)
        code = Outcome.REFUSED.exit_code
    except ApplyError as error:
        print(f"canary demo: {error}", file=sys.stderr)
        code = Outcome.UPDATE_FAILED.exit_code
    except (OSError, TimeoutError, RuntimeError, auto.errors.CommandError) as error:
        print(
            f"canary demo: {cli.explain(error, args) if not isinstance(error, RuntimeError) else error}",
            file=sys.stderr,
        )
        code = Outcome.REFUSED.exit_code
    except KeyboardInterrupt:
        print("canary demo: interrupted", file=sys.stderr)
        code = Outcome.INTERRUPTED.exit_code
    print(f"[demo] done in {time.monotonic() - started:.0f} s; its Prometheus and traffic are stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
