"""Workloads: the seed's objects and names, the split, and promotion as a config change."""

from __future__ import annotations

from typing import Any

import pytest

from mesh import gateway
from mesh.gateway import ingress_gateway
from settings import load_settings
from tests.harness import (
    EXISTING_CLUSTER,
    HEADER_AND_MIRROR,
    HEADER_VALUE,
    DictConfig,
    ProgramRun,
    program_scope,
    run_program,
    wait,
)
from workloads import manifests

ISTIO_TYPES = [f"kubernetes:networking.istio.io/v1:{kind}" for kind in ("Gateway", "DestinationRule", "VirtualService")]


@pytest.fixture(scope=program_scope)
def eks_run() -> ProgramRun:
    return run_program({"canaryWeight": "10"})


def route_weights(virtual_service: dict[str, Any]) -> dict[str, int]:
    return {
        route["destination"]["subset"]: int(route["weight"]) for route in virtual_service["spec"]["http"][0]["route"]
    }


def test_deployments_are_the_seeds(eks_run: ProgramRun) -> None:
    for version in ("v1", "v2"):
        deployment = eks_run.named(f"nginx-{version}", "kubernetes:apps/v1:Deployment").inputs
        labels = {"app": "nginx", "version": version}
        assert deployment["metadata"]["name"] == f"nginx-{version}"
        assert deployment["metadata"]["namespace"] == "default"
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        assert deployment["spec"]["template"]["metadata"]["labels"] == labels
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"quay.io/shardul/nginx:{version}"
        assert container["ports"] == [{"name": "http", "containerPort": 80}]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": 80}


def test_service_gateway_and_destination_rule_are_the_seeds(eks_run: ProgramRun) -> None:
    service = eks_run.named("nginx").inputs
    assert service["spec"] == {"ports": [{"name": "http", "port": 80}], "selector": {"app": "nginx"}}
    gateway = eks_run.named("default-gateway").inputs
    assert gateway["metadata"] == {"name": "default-gateway", "namespace": "istio-system"}
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateway["spec"]["servers"] == [{"hosts": ["*"], "port": {"name": "http", "number": 80, "protocol": "HTTP"}}]
    rule = eks_run.named("nginx-dest-rule").inputs
    assert rule["spec"] == {
        "host": "nginx",
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
    }
    assert {
        r.type for r in eks_run.resources if r.name in {"default-gateway", "nginx-dest-rule", "nginx-virtual-svc"}
    } == set(ISTIO_TYPES)


def test_virtual_service_splits_90_10_at_the_gateway_and_in_the_mesh(eks_run: ProgramRun) -> None:
    virtual_service = eks_run.named("nginx-virtual-svc").inputs
    assert virtual_service["spec"]["hosts"] == ["nginx"]
    assert virtual_service["spec"]["gateways"] == ["istio-system/default-gateway", "mesh"]
    assert route_weights(virtual_service) == {"v1": 90, "v2": 10}
    assert eks_run.module["app"].traffic_split == {"v1": 90, "v2": 10}


@pytest.mark.parametrize("weight", range(0, 101))
def test_every_weight_sums_to_100_and_the_canary_gets_it(weight: int) -> None:
    app = load_settings(DictConfig({"canaryWeight": str(weight)})).app
    weights = route_weights(manifests.virtual_service(app, ingress_gateway("istio")))
    assert sum(weights.values()) == 100
    assert weights == {"v1": 100 - weight, "v2": weight}


@pytest.mark.parametrize("weight", [0, 1, 50, 99, 100])
def test_the_program_routes_the_configured_weight(weight: int) -> None:
    run = run_program({**EXISTING_CLUSTER, "canaryWeight": str(weight)})
    assert route_weights(run.named("nginx-virtual-svc").inputs) == {"v1": 100 - weight, "v2": weight}


def inputs_by_urn(run: ProgramRun) -> dict[str, Any]:
    return {r.urn: (r.inputs, sorted(r.dependencies), r.provider.rsplit("::", 1)[0]) for r in run.resources}


@pytest.mark.parametrize("mode", [{}, EXISTING_CLUSTER], ids=["eks", "existing"])
def test_changing_only_the_weight_changes_only_the_virtual_service(mode: dict[str, str]) -> None:
    before = inputs_by_urn(run_program({**mode, "canaryWeight": "10"}))
    after = inputs_by_urn(run_program({**mode, "canaryWeight": "25"}))
    assert before.keys() == after.keys(), "a weight change must not create or delete resources"
    changed = [urn for urn in before if before[urn] != after[urn]]
    assert [urn.rsplit("::", 1)[1] for urn in changed] == ["nginx-virtual-svc"]


def test_promotion_is_a_config_change() -> None:
    """v2 becomes stable, v1 is retired, v3 is the next canary: objects follow the versions."""
    run = run_program(
        {
            **EXISTING_CLUSTER,
            "stableVersion": "v2",
            "stableImage": "quay.io/shardul/nginx:v2",
            "canaryVersion": "v3",
            "canaryImage": "quay.io/shardul/nginx:v3",
            "canaryWeight": "0",
        }
    )
    deployments = {r.name for r in run.of_type("kubernetes:apps/v1:Deployment")}
    assert deployments == {"nginx-v2", "nginx-v3"}
    assert route_weights(run.named("nginx-virtual-svc").inputs) == {"v2": 100, "v3": 0}
    subsets = [subset["name"] for subset in run.named("nginx-dest-rule").inputs["spec"]["subsets"]]
    assert subsets == ["v2", "v3"]


def test_app_name_replicas_and_namespace_come_from_config() -> None:
    run = run_program({**EXISTING_CLUSTER, "appName": "shop", "appNamespace": "store", "canaryReplicas": "3"})
    deployment = run.named("shop-v2", "kubernetes:apps/v1:Deployment").inputs
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["namespace"] == "store"
    assert run.named("shop-virtual-svc").inputs["spec"]["hosts"] == ["shop"]


def test_app_namespace_requires_mutual_tls(eks_run: ProgramRun) -> None:
    policy = eks_run.named("nginx-mtls")
    assert policy.type == "kubernetes:security.istio.io/v1:PeerAuthentication"
    assert policy.inputs["metadata"] == {"name": "default", "namespace": "default"}
    assert policy.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    assert eks_run.depends_on(policy, eks_run.named("istio-base"))


def test_containers_run_without_privilege_escalation(eks_run: ProgramRun) -> None:
    for name in ("nginx-v1", "nginx-v2"):
        (container,) = eks_run.named(name, "kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"][
            "containers"
        ]
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert security["capabilities"]["drop"] == ["ALL"]
        assert set(security["capabilities"]["add"]) <= {"CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"}


def test_each_version_has_a_disruption_budget(eks_run: ProgramRun) -> None:
    for version in ("v1", "v2"):
        budget = eks_run.named(f"nginx-{version}", "kubernetes:policy/v1:PodDisruptionBudget").inputs
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app": "nginx", "version": version}},
        }


def test_stable_version_spreads_over_zones_on_eks(eks_run: ProgramRun) -> None:
    def spread(run: ProgramRun, name: str) -> Any:
        pod = run.named(name, "kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
        return pod.get("topologySpreadConstraints")

    (constraint,) = spread(eks_run, "nginx-v1")
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["labelSelector"] == {"matchLabels": {"app": "nginx", "version": "v1"}}
    assert spread(eks_run, "nginx-v2") is None, "the canary is small and short-lived"
    assert spread(run_program(EXISTING_CLUSTER), "nginx-v1") is None


def test_a_single_stable_replica_on_eks_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("workloads.canary_app.pulumi.log.warn", lambda message, *args, **kwargs: said.append(message))
    run_program({"canaryWeight": "10"})
    assert any("stableReplicas = 1" in message for message in said)
    said.clear()
    run_program({"canaryWeight": "10", "stableReplicas": "2"})
    run_program({**EXISTING_CLUSTER, "stableReplicas": "1"})
    assert not any("stableReplicas" in message for message in said)


WITH_HEADER_AND_MIRROR = {**EXISTING_CLUSTER, "canaryWeight": "10", **HEADER_AND_MIRROR}


def test_header_route_sends_testers_to_the_canary_whatever_the_weight() -> None:
    http = run_program(WITH_HEADER_AND_MIRROR).named("nginx-virtual-svc").inputs["spec"]["http"]
    assert http[0] == {
        "match": [{"headers": {"x-canary": {"exact": HEADER_VALUE}}}],
        "route": [{"destination": {"host": "nginx", "subset": "v2"}}],
    }, "the header route comes first: Istio takes the first match"
    assert route_weights({"spec": {"http": http[1:]}}) == {"v1": 90, "v2": 10}


def test_mirroring_copies_a_share_of_requests_to_the_canary() -> None:
    split = run_program(WITH_HEADER_AND_MIRROR).named("nginx-virtual-svc").inputs["spec"]["http"][1]
    assert split["mirror"] == {"host": "nginx", "subset": "v2"}
    assert split["mirrorPercentage"] == {"value": 20}
    plain = run_program(EXISTING_CLUSTER).named("nginx-virtual-svc").inputs["spec"]["http"]
    assert len(plain) == 1 and "mirror" not in plain[0]


def test_with_a_header_route_a_weight_change_still_touches_only_the_virtual_service() -> None:
    before = inputs_by_urn(run_program(WITH_HEADER_AND_MIRROR))
    after = inputs_by_urn(run_program({**WITH_HEADER_AND_MIRROR, "canaryWeight": "30"}))
    assert [urn.rsplit("::", 1)[1] for urn in before if before[urn] != after[urn]] == ["nginx-virtual-svc"]


def test_the_app_component_exposes_its_children(eks_run: ProgramRun) -> None:
    app = eks_run.module["app"]
    deployments = {label: eks_run.output(deployment.urn) for label, deployment in app.deployments.items()}
    assert deployments == {v: eks_run.named(f"nginx-{v}", "kubernetes:apps/v1:Deployment").urn for v in ("v1", "v2")}
    assert eks_run.output(app.service.urn) == eks_run.named("nginx", "kubernetes:core/v1:Service").urn
    assert eks_run.output(app.istio_objects["VirtualService"].urn) == eks_run.named("nginx-virtual-svc").urn
    assert eks_run.output(app.istio_objects["DestinationRule"].urn) == eks_run.named("nginx-dest-rule").urn


# --- every manifest in full: what the API server is given, field by field ------------------

APP = load_settings(DictConfig({**EXISTING_CLUSTER, "canaryWeight": "10", "stableReplicas": "2"})).app
ISTIO_INGRESS = ingress_gateway("istio")
V1 = {"app": "nginx", "version": "v1"}
SECURITY = {
    "allowPrivilegeEscalation": False,
    "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"]},
}


def test_the_deployment_in_full() -> None:
    probe = {"httpGet": {"path": "/health", "port": 80}}
    container = {
        "name": "nginx-v1",
        "image": "quay.io/shardul/nginx:v1",
        "imagePullPolicy": "Always",
        "ports": [{"name": "http", "containerPort": 80}],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "securityContext": SECURITY,
    }
    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": V1},
    }
    expected = {
        "metadata": {"name": "nginx-v1", "namespace": "default", "labels": V1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": V1},
            "template": {"metadata": {"labels": V1}, "spec": {"containers": [container]}},
        },
    }
    assert manifests.deployment(APP, APP.stable) == expected
    spread_out = manifests.deployment(APP, APP.stable, spread_over_zones=True)
    assert spread_out["spec"]["template"]["spec"] == {"containers": [container], "topologySpreadConstraints": [spread]}
    canary = manifests.deployment(APP, APP.canary)
    assert (canary["metadata"]["name"], canary["spec"]["replicas"]) == ("nginx-v2", 1)
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "quay.io/shardul/nginx:v2"


def test_the_service_budget_gateway_and_policies_in_full() -> None:
    assert manifests.service(APP) == {
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": "nginx"}},
    }
    assert manifests.disruption_budget(APP, APP.canary) == {
        "metadata": {"name": "nginx-v2", "namespace": "default"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "nginx", "version": "v2"}}},
    }
    assert gateway.istio_gateway() == {
        "metadata": {"name": "default-gateway", "namespace": "istio-system"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"hosts": ["*"], "port": {"name": "http", "number": 80, "protocol": "HTTP"}}],
        },
    }
    assert manifests.peer_authentication(APP) == {
        "metadata": {"name": "default", "namespace": "default"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    assert manifests.destination_rule(APP) == {
        "metadata": {"name": "nginx-dest-rule", "namespace": "default"},
        "spec": {
            "host": "nginx",
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
        },
    }


def test_the_virtual_service_in_full_with_and_without_header_and_mirror() -> None:
    weighted = [
        {"destination": {"host": "nginx", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "nginx", "subset": "v2"}, "weight": 10},
    ]
    metadata = {
        "name": "nginx-virtual-svc",
        "namespace": "default",
        "annotations": {"canary/stable-version": "v1", "canary/canary-version": "v2"},
    }
    assert manifests.virtual_service(APP, ISTIO_INGRESS) == {
        "metadata": metadata,
        "spec": {
            "hosts": ["nginx"],
            "gateways": ["istio-system/default-gateway", "mesh"],
            "http": [{"route": weighted}],
        },
    }
    both = load_settings(
        DictConfig(
            {
                **EXISTING_CLUSTER,
                "canaryWeight": "10",
                "canaryHeaderName": "x-canary",
                "canaryHeaderValue": "0123456789abcdef",
                "mirrorPercent": "1",
            }
        )
    ).app
    assert manifests.virtual_service(both, ISTIO_INGRESS)["spec"]["http"] == [
        {
            "match": [{"headers": {"x-canary": {"exact": "0123456789abcdef"}}}],
            "route": [{"destination": {"host": "nginx", "subset": "v2"}}],
        },
        {"route": weighted, "mirror": {"host": "nginx", "subset": "v2"}, "mirrorPercentage": {"value": 1}},
    ]
    assert manifests.traffic_split(APP) == {"v1": 90, "v2": 10}


def test_the_http_route_in_full_with_header_and_mirror() -> None:
    from mesh.gateway import GATEWAY_API, IngressGateway

    app = load_settings(
        DictConfig(
            {
                **EXISTING_CLUSTER,
                "canaryWeight": "10",
                "canaryHeaderName": "x-canary",
                "canaryHeaderValue": "0123456789abcdef",
                "mirrorPercent": "5",
            }
        )
    ).app
    route = manifests.http_route(app, IngressGateway(GATEWAY_API))
    assert route["metadata"] == {
        "name": "nginx-route",
        "namespace": "default",
        "annotations": {
            "canary/stable-version": "v1",
            "canary/canary-version": "v2",
            "canary/stable-backend": "nginx-v1",
        },
    }
    assert route["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "namespace": "istio-system",
                "name": "default-gateway",
            },
            {"group": "", "kind": "Service", "name": "nginx"},
        ],
        "rules": [
            {
                "matches": [{"headers": [{"type": "Exact", "name": "x-canary", "value": "0123456789abcdef"}]}],
                "backendRefs": [{"name": "nginx-v2", "port": 80}],
            },
            {
                "backendRefs": [
                    {"name": "nginx-v1", "port": 80, "weight": 90},
                    {"name": "nginx-v2", "port": 80, "weight": 10},
                ],
                "filters": [
                    {
                        "type": "RequestMirror",
                        "requestMirror": {"backendRef": {"name": "nginx-v2", "port": 80}, "percent": 5},
                    }
                ],
            },
        ],
    }


@pytest.mark.parametrize("traffic_api", ["istio", "gateway-api"])
def test_the_split_output_waits_for_the_object_that_carries_it(traffic_api: str) -> None:
    """A refused or failed update of the route never reaches the stack output: it is built from the route."""
    run = run_program({**EXISTING_CLUSTER, "trafficApi": traffic_api, "canaryWeight": "30"})
    app = run.module["app"]
    carrier = app.istio_objects["HTTPRoute" if traffic_api == "gateway-api" else "VirtualService"]
    assert run.output(app.applied_split) == {"v1": 70, "v2": 30}
    assert wait(app.applied_split.resources()) == {carrier}
