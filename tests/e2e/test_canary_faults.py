"""Fault injection: one fault at one phase of a `canary` run, against the real engine and local cluster.

Each case asserts the three things an operator cares about: what the VirtualService in the
API server serves, what the stack config and run record say, and the command's exit code
and report. docs/canary.md's table "What happens when…" lists the same cases.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.demo import MeshTraffic, PrometheusServer
from tests.e2e.cli import Kubectl, Stack
from tests.e2e.conftest import WINDOW, failed
from tests.e2e.test_canary_cli import Background, CanaryCommand, config, split
from tests.test_rollout_prometheus import FakePrometheus, json_answer, vector

FAST = ["--interval", "2s", "--poll", "1s", "--window", WINDOW]


@pytest.fixture(scope="module")
def canary(stack: Stack, prometheus: PrometheusServer, mesh_traffic: MeshTraffic) -> CanaryCommand:
    mesh_traffic.set("v2", error_ratio=0, latency_ms=50)
    stack.set_config("canaryReplicas", "1")
    stack("up", "--yes")
    return CanaryCommand(stack, prometheus)


@pytest.fixture(autouse=True)
def a_failed_case_leaves_the_next_a_stack_at_stable(
    request: pytest.FixtureRequest, canary: CanaryCommand
) -> Iterator[None]:
    """The cases share one stack, and each ends by sending all traffic back to stable. One that fails before its
    end would leave a run going or recorded, and every later case would fail on it: after a failure, its runs
    are stopped and `canary abort` ends what they left (the failure itself is reported as it was)."""
    yield
    if failed(request):
        Background.stop_all()
        canary("abort")
    Background.started.clear()


@pytest.fixture(scope="module")
def garbage() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    fake.answer = json_answer(vector("+Inf"))
    yield fake
    fake.server.shutdown()


def engine_of(pid: int, timeout: float = 60) -> int:
    """The pid of the `pulumi up` that process `pid` started, once it runs."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in Path("/proc").iterdir():
            try:
                stat = (proc / "stat").read_text()
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid and b"up" in argv and b"--skip-preview" in argv:
                return int(proc.name)
        assert time.monotonic() < deadline, f"no `pulumi up` started by {pid}"
        time.sleep(0.05)


def running(proc: Path) -> bool:
    """The process exists and has not exited (an orphan's zombie may wait for a reaper)."""
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def record(canary: CanaryCommand) -> dict[str, Any] | None:
    run: dict[str, Any] | None = canary("status", "--window", WINDOW)[1]["run"]
    return run


def header_route(cluster: Kubectl) -> bool:
    http = cluster.get("virtualservice", "nginx-virtual-svc", "-n", "default")["spec"]["http"]
    return any(route.get("match") for route in http)


def state(stack: Stack) -> dict[str, Any]:
    return dict(json.loads(stack("stack", "export").stdout)["deployment"])


def assert_clean(stack: Stack) -> None:
    """No operation left pending and the stack not locked: the next update can run."""
    assert not state(stack).get("pending_operations")
    locks = Path(stack.env["PULUMI_BACKEND_URL"].removeprefix("file://")) / ".pulumi" / "locks"
    held = list(locks.rglob("*.json")) if locks.exists() else []
    assert held == [], held


def abort_to_stable(canary: CanaryCommand, cluster: Kubectl) -> None:
    code, report, _ = canary("abort")
    assert (code, report["outcome"]) == (0, "aborted"), report
    assert split(cluster) == {"v1": 100, "v2": 0}
    assert record(canary) is None


def test_a_refused_step_by_hand_with_skip_preview_never_reaches_the_cluster(
    canary: CanaryCommand, cluster: Kubectl
) -> None:
    stack = canary.stack
    stack.set_config("canaryWeight", "60")
    result = stack("up", "--yes", "--skip-preview", "--policy-pack", str(stack.project / "policy"), check=False)
    assert result.returncode != 0
    assert "traffic-split" in result.stdout + result.stderr and "above the maximum of 50%" in result.stdout
    assert split(cluster) == {"v1": 100, "v2": 0}, "the resource rule ran before the VirtualService changed"
    output = json.loads(stack("stack", "output", "traffic_split", "--json").stdout)
    assert output == {"v1": 100, "v2": 0}, "the stack output says what is served, not what was refused"
    stack.set_config("canaryWeight", "0")
    assert_clean(stack)


def test_a_refused_step_of_a_run_never_reaches_the_cluster_and_the_config_follows_what_is_deployed(
    canary: CanaryCommand, cluster: Kubectl
) -> None:
    code, report, stderr = canary("run", "--steps", "10,60", *FAST)  # the project's pack runs by default
    assert (code, report["outcome"]) == (1, "update-failed"), report
    assert split(cluster) == {"v1": 90, "v2": 10}
    assert "above the maximum of 50%" in stderr and "deployed: v1 90% / v2 10%" in stderr
    assert config(canary.stack, "canaryWeight") == "10"
    kept = record(canary)
    assert kept is not None and kept["step"] == 1
    abort_to_stable(canary, cluster)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_an_update_cancels_it_cleanly_and_reports_what_is_deployed(
    canary: CanaryCommand, cluster: Kubectl, signum: signal.Signals
) -> None:
    run = Background(canary, "run", "--steps", "10,20", *FAST)
    run.wait_for("step 1/2: canaryWeight=10 (pulumi up)")
    engine_of(run.process.pid)
    time.sleep(1.0)  # the engine is running the program
    run.process.send_signal(signum)
    code, report, stderr = run.finish()
    assert (code, report["outcome"]) == (130, "interrupted"), stderr
    served = split(cluster)["v2"]
    assert served in (0, 10)
    assert report["weight"] == served and f"v2 {served}%" in report["deployed"]
    assert config(canary.stack, "canaryWeight") == str(served), "config says what the cluster serves"
    assert_clean(canary.stack)
    kept = record(canary)
    assert kept is not None and kept["phase"] == "steps", "kept for --resume and abort"
    abort_to_stable(canary, cluster)


def test_a_kill_during_an_update_leaves_the_engine_to_finish_and_resume_continues(
    canary: CanaryCommand, cluster: Kubectl
) -> None:
    run = Background(canary, "run", "--steps", "10,20", *FAST)
    run.wait_for("step 1/2: canaryWeight=10 (pulumi up)")
    run_id = next(line.split()[2] for line in run.lines if line.startswith("canary run "))
    engine = Path(f"/proc/{engine_of(run.process.pid)}")
    time.sleep(1.0)
    run.process.kill()
    assert run.finish()[0] == -signal.SIGKILL
    deadline = time.monotonic() + 90
    while running(engine):
        assert time.monotonic() < deadline, "the engine, in a session of its own, finishes the update"
        time.sleep(0.5)
    assert f"canary {run_id}: step 1/2" in canary.stack("stack", "history", "--json").stdout
    assert split(cluster) == {"v1": 90, "v2": 10}
    assert_clean(canary.stack)
    code, report, _ = canary("run", "--resume", "--no-promote", *FAST)
    assert (code, report["outcome"]) == (0, "completed"), report
    assert [update["changes"]["canaryWeight"] for update in report["updates"]] == ["10", "20"]
    assert split(cluster) == {"v1": 80, "v2": 20}
    abort_to_stable(canary, cluster)


def test_an_interrupt_during_an_interval_keeps_the_step(canary: CanaryCommand, cluster: Kubectl) -> None:
    run = Background(canary, "run", "--steps", "10,20", "--interval", "30s", "--poll", "1s", "--window", WINDOW)
    run.wait_for("s left |")
    run.process.send_signal(signal.SIGINT)
    code, report, _ = run.finish()
    assert (code, report["outcome"], report["weight"]) == (130, "interrupted", 10)
    assert split(cluster) == {"v1": 90, "v2": 10}
    assert config(canary.stack, "canaryWeight") == "10"
    kept = record(canary)
    assert kept is not None and (kept["step"], kept["phase"]) == (0, "steps")
    abort_to_stable(canary, cluster)


def test_an_abort_from_another_shell_is_never_overwritten(canary: CanaryCommand, cluster: Kubectl) -> None:
    run = Background(canary, "run", "--steps", "10,20", "--interval", "8s", "--poll", "1s", "--window", WINDOW)
    run.wait_for("s left |")
    aborted, abort_report, _ = canary("abort")
    assert (aborted, abort_report["outcome"]) == (0, "aborted")
    code, report, stderr = run.finish()
    assert (code, report["outcome"]) == (1, "lost"), stderr
    assert [update["changes"] for update in report["updates"]] == [{"canaryWeight": "10"}]
    assert split(cluster) == {"v1": 100, "v2": 0}
    assert config(canary.stack, "canaryWeight") == "0"
    assert record(canary) is None


def test_a_manual_update_during_an_interval_stops_the_run_holding(canary: CanaryCommand, cluster: Kubectl) -> None:
    # The run looks at what is served when its interval ends: the hand's `config set` and `up` (3-10 s, more on a
    # loaded machine) must end before that, or the run's own next update meets the hand's instead.
    run = Background(canary, "run", "--steps", "10,20", "--interval", "25s", "--poll", "1s", "--window", WINDOW)
    run.wait_for("s left |")
    canary.stack.set_config("canaryWeight", "30")
    canary.stack("up", "--yes", "--message", "by hand")
    code, report, stderr = run.finish()
    assert (code, report["outcome"], report["weight"]) == (1, "held", 30), stderr
    assert "someone else changed" in stderr and "by hand" in stderr
    assert [update["changes"] for update in report["updates"]] == [{"canaryWeight": "10"}]
    assert split(cluster) == {"v1": 70, "v2": 30}
    kept = record(canary)
    assert kept is not None, "resume or abort decides"
    abort_to_stable(canary, cluster)


def test_garbage_from_prometheus_rolls_back_and_turns_the_header_route_off(
    canary: CanaryCommand, cluster: Kubectl, garbage: FakePrometheus
) -> None:
    stack = canary.stack
    stack.set_config("canaryHeaderName", "x-canary")
    stack.set_config("canaryHeaderValue", "3f9c2a7be1d04c58")
    stack("up", "--yes")
    assert header_route(cluster)
    env = {**canary.env, "CANARY_PROMETHEUS_URL": garbage.url}
    run = Background(canary, "run", "--steps", "10,20", "--error-limit", "2", *FAST, env=env)
    code, report, _ = run.finish()
    assert (code, report["outcome"]) == (1, "rolled-back"), report
    assert all("value is inf" in check["error"] for check in report["analyses"][0]["checks"])
    assert report["turned_off"] == ["header route x-canary"]
    assert split(cluster) == {"v1": 100, "v2": 0} and not header_route(cluster)
    assert (config(stack, "canaryWeight"), config(stack, "canaryHeaderName")) == ("0", "")
    assert record(canary) is None


DENY_WEIGHT_ZERO = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: e2e-deny-weight-zero}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [networking.istio.io], apiVersions: ["*"], operations: [UPDATE], resources: [virtualservices]}
  validations:
  - expression: "!object.spec.http.exists(h, has(h.route) && h.route.exists(r, has(r.weight) && r.weight == 0))"
    message: e2e refuses weight 0
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: e2e-deny-weight-zero}
spec:
  policyName: e2e-deny-weight-zero
  validationActions: [Deny]
"""


def test_a_rollback_the_api_server_rejects_is_finished_on_resume_never_undone(
    canary: CanaryCommand, cluster: Kubectl, garbage: FakePrometheus
) -> None:
    env = {**canary.env, "CANARY_PROMETHEUS_URL": garbage.url}
    run = Background(canary, "run", "--steps", "10,20", "--error-limit", "1", *FAST, env=env)
    run.wait_for("s left |")
    cluster("apply", "-f", "-", stdin=DENY_WEIGHT_ZERO)
    try:
        code, report, stderr = run.finish()
        assert (code, report["outcome"]) == (1, "update-failed"), stderr
        assert "e2e refuses weight 0" in stderr and "attempt 2 of 3" in stderr
        assert split(cluster) == {"v1": 90, "v2": 10}
        assert config(canary.stack, "canaryWeight") == "10"
        kept = record(canary)
        assert kept is not None and kept["phase"] == "rollback"
    finally:
        cluster("delete", "-f", "-", stdin=DENY_WEIGHT_ZERO)
    time.sleep(1)  # the admission policy is gone from the API server's cache
    code, report, _ = canary("run", "--resume", *FAST)
    assert (code, report["outcome"]) == (1, "rolled-back"), report
    assert [update["changes"] for update in report["updates"]] == [{"canaryWeight": "0"}], "never the failing step"
    assert report["analyses"] == []
    assert split(cluster) == {"v1": 100, "v2": 0}
    assert record(canary) is None


def test_an_interrupted_promotion_is_finished_phase_by_phase_on_resume(
    canary: CanaryCommand, cluster: Kubectl, mesh_traffic: MeshTraffic
) -> None:
    run = Background(canary, "run", "--steps", "50", *FAST)
    run.wait_for("promote: send all traffic to v2: canaryWeight=100 (pulumi up)")
    engine_of(run.process.pid)
    time.sleep(1.0)
    run.process.send_signal(signal.SIGINT)
    code, report, stderr = run.finish()
    assert (code, report["outcome"]) == (130, "interrupted"), stderr
    kept = record(canary)
    assert kept is not None and kept["phase"] == "promotion"
    assert split(cluster)["v2"] == int(config(canary.stack, "canaryWeight"))
    assert_clean(canary.stack)
    code, report, _ = canary("run", "--resume", *FAST)
    assert (code, report["outcome"]) == (0, "promoted"), report
    assert report["analyses"] == [], "a promotion is finished, not judged again"
    assert split(cluster) == {"v2": 100, "v1": 0}
    assert (config(canary.stack, "stableVersion"), config(canary.stack, "canaryReplicas")) == ("v2", "0")
    assert record(canary) is None
