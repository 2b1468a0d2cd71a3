"""The demo's plan (rollout/demo): where it starts the release, the run it makes, and its errors in one line.

Its run itself (Prometheus, traffic, `canary run` on a stack) is end-to-end: tests/e2e/test_try_local.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout import cli
from rollout.checks import parse_duration
from rollout.demo.__main__ import main, run_argv, start_of_release
from rollout.outcome import Outcome
from settings import load_settings
from tests.harness import EXISTING_CLUSTER, PROJECT_DIR, DictConfig
from tests.test_rollout_errors import PULUMI_SAYS, stand_in_pulumi

PROMOTED = {"stableVersion": "v2", "stableImage": "quay.io/shardul/nginx:v2", "canaryVersion": "v1",
            "canaryImage": "quay.io/shardul/nginx:v1", "canaryReplicas": "0", "canaryWeight": "0",
            "canaryHeaderName": "x-canary", "mirrorPercent": "20"}  # fmt: skip


def test_the_demo_starts_every_time_from_v1_stable_and_v2_the_canary_at_weight_0() -> None:
    """Also after a promoted demo (the roles swapped, the canary slot empty) and with a header route set."""
    app = load_settings(DictConfig({**EXISTING_CLUSTER, **PROMOTED, **start_of_release()})).app
    assert (app.stable.label, app.canary.label, app.canary_weight) == ("v1", "v2", 0)
    assert (app.stable.replicas, app.canary.replicas, app.canary_header, app.mirror_percent) == (1, 1, None, 0)


def test_the_demos_run_is_a_valid_canary_run_well_under_three_minutes() -> None:
    args = cli.build_parser().parse_args(run_argv("local-0a1b2c3d", PROJECT_DIR, "http://127.0.0.1:9"))
    assert (args.command, args.stack, args.steps, args.threshold) == ("run", "local-0a1b2c3d", (10, 50, 100), 2)
    assert parse_duration(args.window, "--window", 1) <= args.interval
    assert len(args.steps) * args.interval <= 60  # the analyses' share of the 3 minutes; updates take seconds


def test_a_demo_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in_pulumi(tmp_path / "bin", PULUMI_SAYS["unknown stack"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["--stack", "nope", "--cwd", str(PROJECT_DIR)]) == Outcome.REFUSED.exit_code
    assert capsys.readouterr().err.splitlines() == [
        "canary demo: stack nope does not exist in this backend (no stack named 'nope' found): see `pulumi stack ls`"
    ]
