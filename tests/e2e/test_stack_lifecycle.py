"""A user's whole session, for real: preview, up, shift the weight, bad input, no-op, refresh, destroy.

The steps run in order on one stack (each builds on the one before).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.cli import Kubectl, Stack

APP_OBJECTS = [
    ("deployment", "nginx-v1"),
    ("deployment", "nginx-v2"),
    ("service", "nginx"),
    ("destinationrules.networking.istio.io", "nginx-dest-rule"),
    ("virtualservices.networking.istio.io", "nginx-virtual-svc"),
]
GATEWAY = ("gateways.networking.istio.io", "default-gateway")


def steps_by_op(preview: dict[str, Any]) -> dict[str, list[str]]:
    ops: dict[str, list[str]] = {}
    for step in preview.get("steps", []):
        ops.setdefault(step["op"], []).append(step["urn"].rsplit("::", 1)[1])
    return ops


def live_weights(cluster: Kubectl) -> dict[str, int]:
    virtual_service = cluster.get("-n", "default", "virtualservices.networking.istio.io", "nginx-virtual-svc")
    routes = virtual_service["spec"]["http"][0]["route"]
    return {route["destination"]["subset"]: route["weight"] for route in routes}


def last_update(stack: Stack) -> dict[str, Any]:
    history = json.loads(stack("stack", "history", "--json").stdout)
    return dict(history[0])


def test_1_preview_of_a_new_stack_lists_the_creates(stack: Stack) -> None:
    ops = steps_by_op(stack.preview())
    assert set(ops) == {"create"}
    expected = {"nginx-v1", "nginx-v2", "nginx", "default-gateway", "nginx-dest-rule", "nginx-virtual-svc"}
    assert expected | {"mesh-app-namespace", "cluster-k8s"} <= set(ops["create"])


def test_2_up_creates_the_seeds_objects(stack: Stack, cluster: Kubectl) -> None:
    stack("up", "--yes", "--skip-preview")
    namespace = cluster.get("namespace", "default")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    for version in ("v1", "v2"):
        deployment = cluster.get("-n", "default", "deployment", f"nginx-{version}")
        assert deployment["metadata"]["labels"] == {"app": "nginx", "version": version}
        available = {c["type"]: c["status"] for c in deployment["status"]["conditions"]}
        assert available["Available"] == "True"
        assert deployment["status"]["readyReplicas"] == 1
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"quay.io/shardul/nginx:{version}"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    service = cluster.get("-n", "default", "service", "nginx")
    assert service["spec"]["selector"] == {"app": "nginx"}
    assert service["spec"]["ports"][0]["name"] == "http"
    gateway = cluster.get("-n", "istio-system", *GATEWAY)
    assert gateway["apiVersion"] == "networking.istio.io/v1"
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    rule = cluster.get("-n", "default", "destinationrules.networking.istio.io", "nginx-dest-rule")
    assert [subset["name"] for subset in rule["spec"]["subsets"]] == ["v1", "v2"]
    assert live_weights(cluster) == {"v1": 100, "v2": 0}
    outputs = json.loads(stack("stack", "output", "--json").stdout)
    assert outputs["traffic_split"] == {"v1": 100, "v2": 0}


def test_3_a_weight_change_is_exactly_one_update(stack: Stack, cluster: Kubectl) -> None:
    stack("config", "set", "canaryWeight", "10")
    preview = stack.preview()
    ops = steps_by_op(preview)
    assert ops.get("update") == ["nginx-virtual-svc"]
    assert not {"create", "replace", "create-replacement", "delete", "delete-replaced"} & ops.keys(), ops
    stack("up", "--yes", "--skip-preview")
    assert live_weights(cluster) == {"v1": 90, "v2": 10}


def test_3b_the_policy_pack_blocks_an_unsafe_step_in_preview(stack: Stack, cluster: Kubectl) -> None:
    policy = str(stack.project / "policy")
    stack("preview", "--policy-pack", policy)  # 90/10 is within the guardrails
    stack("config", "set", "canaryWeight", "60")
    try:
        result = stack("preview", "--policy-pack", policy, check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "traffic-split" in output and "above the maximum of 50%" in output
        assert "mandatory" in output
    finally:
        stack("config", "set", "canaryWeight", "10")
    assert live_weights(cluster) == {"v1": 90, "v2": 10}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("150", 'canaryWeight = "150": must be an integer from 0 to 100'),
        ("ten", "configuration key 'canaryWeight' must be of type 'integer'"),
    ],
)
def test_4_bad_input_fails_and_changes_nothing(stack: Stack, cluster: Kubectl, value: str, message: str) -> None:
    before = last_update(stack)
    resources_before = len(json.loads(stack("stack", "export").stdout)["deployment"]["resources"])
    stack("config", "set", "canaryWeight", value)
    try:
        result = stack("up", "--yes", "--skip-preview", check=False)
        assert result.returncode != 0
        assert message in result.stdout + result.stderr
        assert live_weights(cluster) == {"v1": 90, "v2": 10}
        state = json.loads(stack("stack", "export").stdout)["deployment"]
        assert len(state["resources"]) == resources_before, "the last good state is intact"
        weights = next(r for r in state["resources"] if r["urn"].endswith("::nginx-virtual-svc"))
        assert [route["weight"] for route in weights["outputs"]["spec"]["http"][0]["route"]] == [90, 10]
        after = last_update(stack)
        assert after.get("resourceChanges") == before.get("resourceChanges") or after["result"] == "failed"
    finally:
        stack("config", "set", "canaryWeight", "10")


def test_4b_a_mistyped_key_fails_and_changes_nothing(stack: Stack, cluster: Kubectl) -> None:
    """`pulumi config set canaryWieght 50` would otherwise be ignored while the stack kept 90/10."""
    resources_before = len(json.loads(stack("stack", "export").stdout)["deployment"]["resources"])
    stack("config", "set", "canaryWieght", "50")
    try:
        result = stack("up", "--yes", "--skip-preview", check=False)
        assert result.returncode != 0
        assert (
            "canaryWieght: not a setting of this program (did you mean canaryWeight?" in result.stdout + result.stderr
        )
        assert live_weights(cluster) == {"v1": 90, "v2": 10}
        assert len(json.loads(stack("stack", "export").stdout)["deployment"]["resources"]) == resources_before
    finally:
        stack("config", "rm", "canaryWieght")


def test_5_unchanged_config_is_a_no_op_and_refresh_finds_no_drift(stack: Stack) -> None:
    stack("up", "--yes", "--skip-preview", "--expect-no-changes")
    stack("refresh", "--yes", "--skip-preview", "--expect-no-changes")
    assert set(steps_by_op(stack.preview())) == {"same"}


def test_6_destroy_removes_everything_the_stack_created(stack: Stack, cluster: Kubectl) -> None:
    stack("destroy", "--yes", "--skip-preview")
    for kind, name in APP_OBJECTS:
        assert cluster("get", "-n", "default", kind, name, check=False).returncode != 0, name
    assert cluster("get", "-n", "istio-system", *GATEWAY, check=False).returncode != 0
    pods = cluster.get("-n", "default", "pods", "-l", "app=nginx")
    assert pods["items"] == [] or all(pod["metadata"].get("deletionTimestamp") for pod in pods["items"])
    labels = cluster.get("namespace", "default")["metadata"].get("labels", {})
    assert "istio-injection" not in labels, "the label the stack added is removed with it"
    assert json.loads(stack("stack", "export").stdout)["deployment"].get("resources", []) == []
