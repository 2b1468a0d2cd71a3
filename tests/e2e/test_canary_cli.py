"""The `canary` command end to end: the real Pulumi engine, the local cluster and a real Prometheus.

The stack runs nginx in `default` on the local cluster (pods are simulated, so the
series come from the in-process mesh exporter, labelled as Istio's sidecars label
them). Intervals are seconds instead of a minute; every other part is what a user runs.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any, ClassVar

import pytest

from rollout.demo import MeshTraffic, PrometheusServer
from tests.e2e.cli import ROOT, Kubectl, Stack, run
from tests.e2e.conftest import WINDOW

FAST = ["--interval", "2s", "--poll", "1s", "--window", WINDOW]
CANARY = str(ROOT / "venv/bin/canary")


class CanaryCommand:
    def __init__(self, stack: Stack, prometheus: PrometheusServer) -> None:
        self.stack = stack
        self.env = {**stack.env, "CANARY_PROMETHEUS_URL": prometheus.url}

    def argv(self, *args: str) -> list[str]:
        return [CANARY, *args, "--stack", self.stack.name, "--cwd", str(self.stack.project)]

    def __call__(self, *args: str) -> tuple[int, dict[str, Any], str]:
        result = run(self.argv(*args, "--json"), self.stack.log, self.env, check=False)
        return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}, result.stderr


class Background:
    """`canary ... --json` running in the background; its progress (stderr) read line by line as it comes."""

    started: ClassVar[list[Background]] = []

    def __init__(self, canary: CanaryCommand, *args: str, env: dict[str, str] | None = None) -> None:
        self.canary = canary
        self.argv = canary.argv(*args, "--json")
        self.process = subprocess.Popen(
            self.argv, env=env or canary.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        Background.started.append(self)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline and self.process.poll() is None, "".join(self.lines)
            time.sleep(0.05)

    @classmethod
    def stop_all(cls) -> None:
        """Stops the runs a failed test left going (SIGTERM: each cancels its update cleanly) and waits for them."""
        for leftover in cls.started:
            if leftover.process.poll() is None:
                leftover.process.terminate()
                leftover.process.communicate(timeout=180)
        cls.started.clear()

    def finish(self, timeout: float = 180) -> tuple[int | None, dict[str, Any], str]:
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        code = self.process.wait(timeout)
        self._reader.join(10)
        stderr = "".join(self.lines)
        self.canary.stack.log.record(self.argv, subprocess.CompletedProcess(self.argv, code, stdout, stderr), 0)
        return code, json.loads(stdout) if stdout.strip() else {}, stderr


@pytest.fixture(scope="module")
def canary(stack: Stack, prometheus: PrometheusServer) -> CanaryCommand:
    stack("up", "--yes")
    return CanaryCommand(stack, prometheus)


def split(cluster: Kubectl) -> dict[str, int]:
    virtual_service = cluster.get("virtualservice", "nginx-virtual-svc", "-n", "default")
    weighted = virtual_service["spec"]["http"][-1]["route"]
    return {route["destination"]["subset"]: route.get("weight", 0) for route in weighted}


def config(stack: Stack, key: str) -> str:
    return stack("config", "get", key).stdout.strip()


def weights(report: dict[str, Any]) -> list[str]:
    return [update["changes"]["canaryWeight"] for update in report["updates"] if "canaryWeight" in update["changes"]]


def healthy(mesh_traffic: MeshTraffic, prometheus: PrometheusServer, version: str) -> None:
    """The version serves without errors, and the analysis window no longer holds earlier errors."""
    mesh_traffic.set(version, error_ratio=0, latency_ms=50)
    errors = f'istio_requests_total{{destination_workload="nginx-{version}",response_code="500"}}'
    prometheus.wait_for_series(f"(sum(rate({errors}[{WINDOW}])) == 0) or absent({errors})", 20)


def new_canary(stack: Stack, version: str) -> None:
    for key, value in {"canaryVersion": version, "canaryImage": f"quay.io/shardul/nginx:{version}"}.items():
        stack.set_config(key, value)
    stack.set_config("canaryReplicas", "1")
    stack("up", "--yes")


def test_status_shows_the_split_the_versions_and_their_live_metrics(canary: CanaryCommand, cluster: Kubectl) -> None:
    code, status, _ = canary("status", "--window", WINDOW)
    assert code == 0
    assert status["deployed_split"] == {"v1": 100, "v2": 0} == split(cluster)
    assert status["run"] is None
    stable_checks = status["versions"]["stable"]["checks"]
    assert [check["name"] for check in stable_checks] == ["request-success-rate", "request-duration"]
    assert stable_checks[0]["value"] == 100 and stable_checks[0]["passed"]


def test_a_healthy_canary_walks_its_steps_and_is_promoted(
    canary: CanaryCommand, cluster: Kubectl, mesh_traffic: MeshTraffic, prometheus: PrometheusServer
) -> None:
    healthy(mesh_traffic, prometheus, "v2")
    code, report, _ = canary("run", "--steps", "10,50,100", *FAST)
    assert (code, report["outcome"]) == (0, "promoted"), report
    assert weights(report) == ["10", "50", "100", "0"]
    assert {analysis["verdict"] for analysis in report["analyses"]} <= {"advance", "complete"}
    stack = canary.stack
    assert (config(stack, "stableVersion"), config(stack, "canaryVersion"), config(stack, "canaryReplicas")) == (
        "v2",
        "v1",
        "0",
    )
    assert split(cluster) == {"v2": 100, "v1": 0}
    assert cluster.get("deployment", "nginx-v1", "-n", "default")["spec"]["replicas"] == 0
    code, _, refusal = canary("promote")
    assert code == 2 and "v1 is a retired version, not a canary" in refusal, "promoting twice would bring v1 back"
    assert split(cluster) == {"v2": 100, "v1": 0}
    history = json.loads(stack("stack", "history", "--json").stdout)
    messages = [update.get("message", "") for update in history]
    assert any(f"canary {report['run']}: step 2/3: canaryWeight=50" in message for message in messages), messages


def test_a_failing_canary_is_rolled_back_after_the_threshold(
    canary: CanaryCommand, cluster: Kubectl, mesh_traffic: MeshTraffic
) -> None:
    new_canary(canary.stack, "v3")
    mesh_traffic.set("v3", error_ratio=0.2, latency_ms=50)
    code, report, _ = canary("run", "--steps", "10,50", "--threshold", "2", "--error-limit", "10", *FAST)
    assert (code, report["outcome"]) == (1, "rolled-back"), report
    assert weights(report) == ["10", "0"]
    assert report["analyses"][-1]["verdict"] == "rollback"
    failed = [check for analysis in report["analyses"] for check in analysis["checks"] if check["value"] is not None]
    assert any(check["name"] == "request-success-rate" and check["value"] < 90 for check in failed)
    assert split(cluster) == {"v2": 100, "v3": 0}
    assert config(canary.stack, "canaryWeight") == "0"


def test_prometheus_down_refuses_a_start_and_mid_run_never_advances_and_rolls_back(
    canary: CanaryCommand, cluster: Kubectl, mesh_traffic: MeshTraffic, prometheus: PrometheusServer
) -> None:
    mesh_traffic.set("v3", error_ratio=0, latency_ms=50)
    before = split(cluster)
    prometheus.stop()
    try:
        # Down from the start: a run that could only roll back is refused, in one line, before any change.
        code, report, stderr = canary("run", "--steps", "10,50", *FAST)
        assert (code, report) == (2, {})
        assert len(stderr.strip().splitlines()) == 1 and "cannot be reached" in stderr, stderr
        assert split(cluster) == before
        # Down once the run has started: no analysis ever passes, and the run rolls back at the error limit.
        prometheus.start()
        argv = canary.argv("run", "--steps", "10,50", "--error-limit", "2", *FAST, "--json")
        run_ = subprocess.Popen(argv, env=canary.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert run_.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 90
        while not any("step 1/2: applied" in line for line in seen):
            assert time.monotonic() < deadline and run_.poll() is None, seen
            seen.append(run_.stderr.readline())
        prometheus.stop()
        stdout, rest = run_.communicate(timeout=120)
        print("".join(seen) + rest)
    finally:
        prometheus.start()
    report = json.loads(stdout)
    assert (run_.returncode, report["outcome"]) == (1, "rolled-back"), report
    assert weights(report) == ["10", "0"]
    assert [analysis["verdict"] for analysis in report["analyses"]][-2:] == ["hold", "rollback"]
    assert all("cannot be reached" in check["error"] for check in report["analyses"][-1]["checks"])
    assert split(cluster) == {"v2": 100, "v3": 0}


def test_a_killed_run_refuses_a_second_and_resumes_where_it_stopped(
    canary: CanaryCommand, cluster: Kubectl, mesh_traffic: MeshTraffic, prometheus: PrometheusServer
) -> None:
    healthy(mesh_traffic, prometheus, "v3")
    argv = canary.argv("run", "--steps", "10,50,100", "--interval", "60s", "--poll", "1s", "--window", WINDOW)
    first = subprocess.Popen(argv, env=canary.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while not any("step 1 weight 10: " in line and "left" in line for line in seen):  # waiting in step 1
        assert time.monotonic() < deadline and first.poll() is None, seen
        seen.append(first.stdout.readline())
    first.kill()
    first.wait()
    print("".join(seen))
    assert split(cluster) == {"v2": 90, "v3": 10}

    code, _, refusal = canary("run", "--steps", "25", *FAST)
    assert code == 2
    assert "already has a canary run" in refusal and "at step 1 of 3, weight 10" in refusal
    assert "canary run --resume" in refusal
    assert split(cluster) == {"v2": 90, "v3": 10}

    code, report, _ = canary("run", "--resume", *FAST)
    assert (code, report["outcome"]) == (0, "promoted"), report
    assert report["steps"] == [10, 50, 100]
    assert weights(report) == ["10", "50", "100", "0"]
    assert split(cluster) == {"v3": 100, "v2": 0}
    assert canary("status")[1]["run"] is None


def test_a_step_the_policy_blocks_keeps_the_config_and_abort_ends_the_run(
    canary: CanaryCommand, cluster: Kubectl
) -> None:
    new_canary(canary.stack, "v4")
    code, report, _ = canary("run", "--steps", "60", "--policy-pack", str(canary.stack.project / "policy"), *FAST)
    assert (code, report["outcome"]) == (1, "update-failed"), report
    assert split(cluster) == {"v3": 100, "v4": 0}, "refused before the VirtualService changed"
    assert config(canary.stack, "canaryWeight") == "0", "the refused weight is not left in the config"
    assert canary("status")[1]["run"] is not None, "kept for --resume or abort"
    code, report, _ = canary("abort")
    assert (code, report["outcome"]) == (0, "aborted")
    assert canary("status")[1]["run"] is None
    assert split(cluster) == {"v3": 100, "v4": 0}


def test_bad_options_are_refused_before_anything_changes(canary: CanaryCommand, cluster: Kubectl) -> None:
    before = canary.stack("stack", "history", "--json").stdout
    served = split(cluster)
    for args, message in [
        (["--steps", "50,10"], "--steps '50,10': must be comma-separated weights from 1 to 100, increasing"),
        (["--interval", "0s"], "--interval '0s': must be a duration like 60s or 1m"),
        (["--check", "x:above:1:up"], "the bound kind 'above' must be min or max"),
    ]:
        result = run(canary.argv("run", *args), canary.stack.log, canary.env, check=False)
        assert result.returncode == 2 and message in result.stderr
    assert canary.stack("stack", "history", "--json").stdout == before
    assert split(cluster) == served
