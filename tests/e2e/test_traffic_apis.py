"""trafficApi gateway-api and dataplaneMode ambient on the real API server, with real CRDs.

One stack, in order: `pulumi up` with the Gateway API (the CRDs' schemas accept every
object we declare), a weight change that is exactly one update and is read back from the
API server, the header route and mirroring, a `canary run` against the real Prometheus,
promoted; then the same stack switched to ambient mode, and a weight change there.
"""

from __future__ import annotations

from typing import Any

import pytest

from rollout.demo import MeshTraffic, PrometheusServer
from tests.e2e.cli import Kubectl, Stack
from tests.e2e.conftest import WINDOW
from tests.e2e.test_canary_cli import FAST, CanaryCommand, healthy, weights
from tests.e2e.test_stack_lifecycle import steps_by_op

HTTP_ROUTE = "httproutes.gateway.networking.k8s.io"
TESTER_HEADER_VALUE = "3f9c2a7be1d04c58"


@pytest.fixture(scope="module")
def gateway_api(stack: Stack) -> Stack:
    stack.set_config("trafficApi", "gateway-api")
    return stack


def route(cluster: Kubectl) -> dict[str, Any]:
    return dict(cluster.get("-n", "default", HTTP_ROUTE, "nginx-route"))


def route_weights(cluster: Kubectl) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in route(cluster)["spec"]["rules"][-1]["backendRefs"]}


def test_1_up_creates_the_gateway_api_objects(gateway_api: Stack, cluster: Kubectl) -> None:
    gateway_api("up", "--yes", "--skip-preview")
    gateway = cluster.get("-n", "istio-system", "gateways.gateway.networking.k8s.io", "default-gateway")
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert gateway["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"] == "Selector"
    for version in ("v1", "v2"):
        service = cluster.get("-n", "default", "service", f"nginx-{version}")
        assert service["spec"]["selector"] == {"app": "nginx", "version": version}
    parents = route(cluster)["spec"]["parentRefs"]
    assert [(parent["kind"], parent["name"]) for parent in parents] == [
        ("Gateway", "default-gateway"),
        ("Service", "nginx"),
    ]
    assert route_weights(cluster) == {"nginx-v1": 100, "nginx-v2": 0}
    virtual_services = cluster.get("-n", "default", "virtualservices.networking.istio.io")["items"]
    assert virtual_services == [], "the split lives in the HTTPRoute only"


def test_2_a_weight_change_is_one_update_of_the_route(gateway_api: Stack, cluster: Kubectl) -> None:
    gateway_api.set_config("canaryWeight", "10")
    ops = steps_by_op(gateway_api.preview())
    assert ops.get("update") == ["nginx-route"]
    assert not {"create", "delete", "replace", "create-replacement"} & set(ops)
    gateway_api("up", "--yes", "--skip-preview")
    assert route_weights(cluster) == {"nginx-v1": 90, "nginx-v2": 10}


def test_3_header_route_and_mirroring_are_accepted_by_the_real_schema(gateway_api: Stack, cluster: Kubectl) -> None:
    gateway_api.set_config("canaryHeaderName", "x-canary")
    gateway_api.set_config("canaryHeaderValue", TESTER_HEADER_VALUE)
    gateway_api.set_config("mirrorPercent", "20")
    gateway_api("up", "--yes", "--skip-preview")
    header_rule, split_rule = route(cluster)["spec"]["rules"]
    assert header_rule["matches"][0]["headers"] == [{"type": "Exact", "name": "x-canary", "value": TESTER_HEADER_VALUE}]
    assert split_rule["filters"][0]["requestMirror"]["percent"] == 20
    gateway_api("config", "rm", "canaryHeaderName")
    gateway_api("config", "rm", "canaryHeaderValue")
    gateway_api("config", "rm", "mirrorPercent")
    gateway_api.set_config("canaryWeight", "0")
    gateway_api("up", "--yes", "--skip-preview")
    assert len(route(cluster)["spec"]["rules"]) == 1


def test_4_a_canary_run_walks_the_route_to_promotion(
    gateway_api: Stack, cluster: Kubectl, mesh_traffic: MeshTraffic, prometheus: PrometheusServer
) -> None:
    canary = CanaryCommand(gateway_api, prometheus)
    code, status, _ = canary("status", "--window", WINDOW)
    assert code == 0 and status["deployed_split"] == {"v1": 100, "v2": 0}
    healthy(mesh_traffic, prometheus, "v2")
    code, report, _ = canary("run", "--steps", "10,50,100", *FAST)
    assert (code, report["outcome"]) == (0, "promoted"), report
    assert weights(report) == ["10", "50", "100", "0"]
    assert route_weights(cluster) == {"nginx-v2": 100, "nginx-v1": 0}
    assert route(cluster)["metadata"]["annotations"]["canary/stable-backend"] == "nginx-v2"


def test_5_ambient_mode_labels_the_namespace_and_declares_its_waypoint(gateway_api: Stack, cluster: Kubectl) -> None:
    gateway_api.set_config("dataplaneMode", "ambient")
    gateway_api.set_config("canaryReplicas", "1")  # v1, retired by the promotion, comes back as the canary
    gateway_api("up", "--yes", "--skip-preview")
    labels = cluster.get("namespace", "default")["metadata"]["labels"]
    assert labels["istio.io/dataplane-mode"] == "ambient" and labels["istio.io/use-waypoint"] == "waypoint"
    assert "istio-injection" not in labels
    waypoint = cluster.get("-n", "default", "gateways.gateway.networking.k8s.io", "waypoint")
    assert waypoint["spec"]["gatewayClassName"] == "istio-waypoint"
    (listener,) = waypoint["spec"]["listeners"]
    assert (listener["name"], listener["port"], listener["protocol"]) == ("mesh", 15008, "HBONE")
    peer = cluster.get("-n", "default", "peerauthentications.security.istio.io", "default")
    assert peer["spec"]["mtls"]["mode"] == "STRICT"


def test_6_in_ambient_mode_a_weight_change_is_one_update_of_the_route(gateway_api: Stack, cluster: Kubectl) -> None:
    gateway_api.set_config("canaryWeight", "20")
    ops = steps_by_op(gateway_api.preview())
    assert ops.get("update") == ["nginx-route"]
    assert not {"create", "delete", "replace", "create-replacement"} & set(ops)
    gateway_api("up", "--yes", "--skip-preview")
    assert route_weights(cluster) == {"nginx-v2": 80, "nginx-v1": 20}
