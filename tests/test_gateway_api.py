"""trafficApi gateway-api: the ingress Gateway, the per-version Services and the HTTPRoute.

The mesh owns the ingress Gateway (either API); the app's HTTPRoute attaches to it and to
the app's Service (GAMMA), carries the split in weighted backendRefs, and is the one object
a weight change updates. The Gateway API objects' schemas are checked by the real CRDs in
the end-to-end tier (tests/e2e/test_traffic_apis.py); the Kubernetes ones in test_schemas.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from settings import SettingsError, load_settings
from tests.harness import (
    EXISTING_CLUSTER,
    HEADER_AND_MIRROR,
    HEADER_ROUTE,
    HEADER_VALUE,
    DictConfig,
    ProgramRun,
    program_scope,
    run_program,
)

GATEWAY_API = {"trafficApi": "gateway-api"}
K8S_GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
SERVICE = "kubernetes:core/v1:Service"


@pytest.fixture(scope=program_scope)
def eks_run() -> ProgramRun:
    return run_program({**GATEWAY_API, "canaryWeight": "10"})


@pytest.fixture(scope=program_scope)
def header_and_mirror_run() -> ProgramRun:
    return run_program({**EXISTING_CLUSTER, **GATEWAY_API, "canaryWeight": "10", **HEADER_AND_MIRROR})


def backend_weights(route: dict[str, Any], rule: int = -1) -> dict[str, int]:
    return {ref["name"]: int(ref["weight"]) for ref in route["spec"]["rules"][rule]["backendRefs"]}


def test_traffic_api_defaults_to_istio_and_refuses_anything_else() -> None:
    assert load_settings(DictConfig()).mesh.traffic_api == "istio"
    assert load_settings(DictConfig(GATEWAY_API)).mesh.traffic_api == "gateway-api"
    with pytest.raises(SettingsError) as error:
        load_settings(DictConfig({"trafficApi": "gateway"}))
    assert 'trafficApi = "gateway": must be one of istio, gateway-api' in str(error.value)


def test_the_mesh_owns_a_gateway_api_gateway_bound_to_the_charts_ingress_gateway(eks_run: ProgramRun) -> None:
    (gateway,) = eks_run.of_type(K8S_GATEWAY)
    assert not [r for r in eks_run.resources if r.type.endswith("networking.istio.io/v1:Gateway")]
    assert gateway.parent == eks_run.named("mesh").urn
    assert gateway.inputs["metadata"] == {"name": "default-gateway", "namespace": "istio-system"}
    spec = gateway.inputs["spec"]
    assert spec["gatewayClassName"] == "istio"
    # One Hostname address: istiod binds the Gateway to these pods and deploys no proxy of its own.
    assert spec["addresses"] == [{"type": "Hostname", "value": "istio-ingressgateway.istio-system.svc.cluster.local"}]
    (listener,) = spec["listeners"]
    assert (listener["name"], listener["port"], listener["protocol"]) == ("http", 80, "HTTP")
    assert listener["allowedRoutes"]["namespaces"]["selector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "default"}
    }
    assert eks_run.named("istio-ingressgateway", "kubernetes:helm.sh/v3:Release"), "the chart still runs the pods"


def test_the_gateway_api_crds_are_installed_with_istio_and_everything_waits_for_them(eks_run: ProgramRun) -> None:
    crds = eks_run.named("mesh-gateway-api-crds")
    assert crds.type == "kubernetes:yaml/v2:ConfigFile"
    assert crds.inputs["file"] == (
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.0/standard-install.yaml"
    )
    assert eks_run.depends_on(eks_run.named("default-gateway", K8S_GATEWAY), crds)
    assert eks_run.depends_on(eks_run.named("nginx-route", HTTP_ROUTE), crds)
    istio_run = run_program({"canaryWeight": "10"})
    assert not [r for r in istio_run.resources if r.name == "mesh-gateway-api-crds"], "not needed by trafficApi istio"


def test_each_version_has_a_service_beside_the_apps(eks_run: ProgramRun) -> None:
    services = {
        r.name: r.inputs for r in eks_run.of_type(SERVICE) if r.inputs["metadata"].get("namespace") == "default"
    }
    assert set(services) == {"nginx", "nginx-v1", "nginx-v2"}
    assert services["nginx"]["spec"]["selector"] == {"app": "nginx"}
    for version in ("v1", "v2"):
        assert services[f"nginx-{version}"]["spec"] == {
            "ports": [{"name": "http", "port": 80}],
            "selector": {"app": "nginx", "version": version},
        }
    kinds = {r.type.rsplit(":", 1)[1] for r in eks_run.resources if ".istio.io/" in r.type}
    assert kinds == {"PeerAuthentication"}, "no VirtualService, DestinationRule or Istio Gateway"


def test_the_http_route_splits_at_the_ingress_gateway_and_in_the_mesh(eks_run: ProgramRun) -> None:
    route = eks_run.named("nginx-route", HTTP_ROUTE)
    assert route.parent == eks_run.named("app").urn
    assert route.inputs["metadata"]["namespace"] == "default"
    assert route.inputs["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": "istio-system",
            "name": "default-gateway",
        },
        {"group": "", "kind": "Service", "name": "nginx"},
    ]
    (rule,) = route.inputs["spec"]["rules"]
    assert rule["backendRefs"] == [
        {"name": "nginx-v1", "port": 80, "weight": 90},
        {"name": "nginx-v2", "port": 80, "weight": 10},
    ]
    assert "filters" not in rule and "matches" not in rule
    assert eks_run.module["app"].traffic_split == {"v1": 90, "v2": 10}


@pytest.mark.parametrize("weight", [0, 1, 50, 100])
def test_the_route_carries_the_configured_weight(weight: int) -> None:
    run = run_program({**EXISTING_CLUSTER, **GATEWAY_API, "canaryWeight": str(weight)})
    assert backend_weights(run.named("nginx-route").inputs) == {"nginx-v1": 100 - weight, "nginx-v2": weight}


def test_the_header_route_sends_testers_to_the_canary(header_and_mirror_run: ProgramRun) -> None:
    rules = header_and_mirror_run.named("nginx-route").inputs["spec"]["rules"]
    assert rules[0] == {
        "matches": [{"headers": [{"type": "Exact", "name": "x-canary", "value": HEADER_VALUE}]}],
        "backendRefs": [{"name": "nginx-v2", "port": 80}],
    }
    assert backend_weights({"spec": {"rules": rules}}) == {"nginx-v1": 90, "nginx-v2": 10}


def test_mirroring_is_a_request_mirror_filter(header_and_mirror_run: ProgramRun) -> None:
    split = header_and_mirror_run.named("nginx-route").inputs["spec"]["rules"][-1]
    assert split["filters"] == [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "nginx-v2", "port": 80}, "percent": 20}}
    ]


def inputs_by_urn(run: ProgramRun) -> dict[str, Any]:
    return {r.urn: (r.inputs, sorted(r.dependencies), r.provider.rsplit("::", 1)[0]) for r in run.resources}


@pytest.mark.parametrize(
    "mode",
    [
        GATEWAY_API,
        {**EXISTING_CLUSTER, **GATEWAY_API, **HEADER_ROUTE, "mirrorPercent": "5"},
    ],
    ids=["eks", "existing-with-header-and-mirror"],
)
def test_a_weight_change_updates_only_the_http_route(mode: dict[str, str]) -> None:
    before = inputs_by_urn(run_program({**mode, "canaryWeight": "10"}))
    after = inputs_by_urn(run_program({**mode, "canaryWeight": "25"}))
    assert before.keys() == after.keys()
    assert [urn.rsplit("::", 1)[1] for urn in before if before[urn] != after[urn]] == ["nginx-route"]


def test_the_istio_gateway_moved_to_the_mesh_without_a_replacement() -> None:
    run = run_program({"canaryWeight": "10"})
    gateway = run.named("default-gateway", "kubernetes:networking.istio.io/v1:Gateway")
    assert gateway.parent == run.named("mesh").urn
    virtual_service = run.named("nginx-virtual-svc").inputs
    assert virtual_service["spec"]["gateways"] == ["istio-system/default-gateway", "mesh"]
