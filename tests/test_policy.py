"""The policy pack: every rule passes a good resource and fails a bad one, through its own validation function.

The program's own resources (registered under mocks) are also run through every rule:
the stacks we ship must pass the guardrails we ship, and a bad change must not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policy import rules
from tests.harness import EXISTING_CLUSTER, HEADER_AND_MIRROR, HEADER_ROUTE, ProgramRun, Registered, run_program

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
Validation = Callable[[Any, Callable[[str, str | None], None]], None]


def resource(type_: str, props: dict[str, Any], name: str = "r") -> PolicyResource:
    return PolicyResource(type_, props, f"urn:pulumi:test::canary::{type_}::{name}", name, OPTIONS, None, None, [], {})


def violations(validate: Validation, args: Any) -> list[str]:
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    validate(args, report)
    return found


def check_resource(validate: Validation, type_: str, props: dict[str, Any]) -> list[str]:
    return violations(validate, ResourceValidationArgs(type_, props, "urn", "r", OPTIONS, None))


def check_stack(
    validate: Validation, resources: list[PolicyResource], config: dict[str, Any] | None = None
) -> list[str]:
    return violations(validate, StackValidationArgs(resources, config))


def split(weights: dict[str, int], stable: str = "v1", subsets: tuple[str, ...] = ("v1", "v2")) -> list[PolicyResource]:
    virtual_service = {
        "metadata": {
            "name": "nginx-virtual-svc",
            "namespace": "default",
            "annotations": {"canary/stable-version": stable},
        },
        "spec": {
            "http": [
                {"route": [{"destination": {"host": "nginx", "subset": s}, "weight": w} for s, w in weights.items()]}
            ]
        },
    }
    rule = {
        "metadata": {"name": "nginx-dest-rule", "namespace": "default"},
        "spec": {"host": "nginx", "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]},
    }
    return [resource(rules.VIRTUAL_SERVICE, virtual_service), resource(rules.DESTINATION_RULE, rule)]


# --- traffic split ---------------------------------------------------------------------


def check_split(resources: list[PolicyResource], config: dict[str, Any] | None = None) -> list[str]:
    """The VirtualService through the per-resource rule, as the engine runs it before changing it."""
    virtual_service = resources[0]
    args = ResourceValidationArgs(
        virtual_service.resource_type, virtual_service.props, "urn", "r", OPTIONS, None, config
    )
    return violations(rules.validate_traffic_split, args)


def test_split_within_the_cap_passes() -> None:
    assert check_split(split({"v1": 90, "v2": 10})) == []
    assert check_stack(rules.validate_traffic_split_subsets, split({"v1": 90, "v2": 10})) == []


def test_split_not_summing_to_100_fails() -> None:
    (message,) = check_split(split({"v1": 90, "v2": 20}))
    assert "sum to 110, not 100" in message


def test_split_to_an_undefined_subset_fails() -> None:
    (message,) = check_stack(rules.validate_traffic_split_subsets, split({"v1": 90, "v3": 10}))
    assert "subset 'v3'" in message and "Add the version to the DestinationRule" in message


def test_canary_above_the_cap_fails_unless_promoted() -> None:
    (message,) = check_split(split({"v1": 40, "v2": 60}))
    assert "above the maximum of 50%" in message and "canaryWeight 100" in message
    assert check_split(split({"v1": 0, "v2": 100})) == []
    assert check_split(split({"v1": 40, "v2": 60}), {"maxCanaryWeight": 60}) == []
    blocked = check_split(split({"v1": 0, "v2": 100}), {"allowPromotion": False})
    assert len(blocked) == 1 and "promotions are disabled" in blocked[0]


def test_the_weight_cap_is_a_resource_rule_so_it_acts_before_the_change() -> None:
    """Stack rules run only after every step of an update that skips its preview (Automation API `up`,
    `pulumi/actions`, `pulumi up --skip-preview`); resource rules run before each resource's step."""
    kinds = {policy.name: type(policy).__name__ for policy in rules.POLICIES}
    assert kinds["traffic-split"] == "ResourceValidationPolicy"
    cap = next(policy for policy in rules.POLICIES if policy.name == "traffic-split")
    assert cap.config_schema is rules.SPLIT_CONFIG


# --- workloads -------------------------------------------------------------------------


def deployment(**container: Any) -> dict[str, Any]:
    base = {
        "name": "nginx-v1",
        "image": "quay.io/shardul/nginx:v1",
        "livenessProbe": {"httpGet": {"path": "/health", "port": 80}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": 80}},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
    }
    base.update(container)
    return {
        "metadata": {"name": "nginx-v1", "namespace": "default"},
        "spec": {
            "template": {"metadata": {"labels": {"app": "nginx", "version": "v1"}}, "spec": {"containers": [base]}}
        },
    }


@pytest.mark.parametrize("image", ["quay.io/shardul/nginx:v1", "nginx@sha256:" + "a" * 64, "localhost:5000/app:1.2"])
def test_pinned_image_passes(image: str) -> None:
    assert check_resource(rules.validate_pinned_images, "kubernetes:apps/v1:Deployment", deployment(image=image)) == []


@pytest.mark.parametrize("image", ["nginx", "quay.io/shardul/nginx:latest", "localhost:5000/app"])
def test_unpinned_image_fails(image: str) -> None:
    (message,) = check_resource(rules.validate_pinned_images, "kubernetes:apps/v1:Deployment", deployment(image=image))
    assert "Pin it by tag" in message


def test_probes_and_resources_present_pass() -> None:
    assert check_resource(rules.validate_probes_and_resources, "kubernetes:apps/v1:Deployment", deployment()) == []


def test_missing_probe_or_limit_fails() -> None:
    bad = deployment(readinessProbe=None, resources={"requests": {"cpu": "50m", "memory": "64Mi"}})
    (message,) = check_resource(rules.validate_probes_and_resources, "kubernetes:apps/v1:Deployment", bad)
    assert "readinessProbe" in message and "resources.limits.cpu" in message and "resources.limits.memory" in message


def namespace(labels: dict[str, str]) -> PolicyResource:
    return resource("kubernetes:core/v1:NamespacePatch", {"metadata": {"name": "default", "labels": labels}}, "ns")


def test_injected_namespace_passes() -> None:
    app = resource("kubernetes:apps/v1:Deployment", deployment())
    assert check_stack(rules.validate_sidecar_injection, [app, namespace({"istio-injection": "enabled"})]) == []


def test_namespace_without_injection_fails() -> None:
    app = resource("kubernetes:apps/v1:Deployment", deployment())
    (message,) = check_stack(rules.validate_sidecar_injection, [app, namespace({})])
    assert "istio-injection=enabled" in message
    (undeclared,) = check_stack(rules.validate_sidecar_injection, [app])
    assert "does not declare" in undeclared


# --- exposure --------------------------------------------------------------------------


def release(chart: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"name": chart, "chart": chart, "values": values}


def test_only_the_ingress_gateway_is_a_load_balancer() -> None:
    check = rules.validate_only_ingress_is_public
    service = "kubernetes:core/v1:Service"
    gateway = {"metadata": {"name": "istio-ingressgateway"}, "spec": {"type": "LoadBalancer"}}
    assert check_resource(check, service, gateway) == []
    assert check_resource(check, service, {"metadata": {"name": "grafana"}, "spec": {"type": "ClusterIP"}}) == []
    (message,) = check_resource(check, service, {"metadata": {"name": "grafana"}, "spec": {"type": "LoadBalancer"}})
    assert "Only istio-ingressgateway may be" in message
    helm = "kubernetes:helm.sh/v3:Release"
    assert check_resource(check, helm, release("gateway", {"service": {"type": "LoadBalancer"}})) == []
    assert check_resource(check, helm, release("grafana", {"service": {"type": "ClusterIP"}})) == []
    (exposed,) = check_resource(check, helm, release("grafana", {"service": {"type": "LoadBalancer"}}))
    assert "values.service.type = LoadBalancer" in exposed
    (kiali,) = check_resource(check, helm, release("kiali-server", {"deployment": {"service_type": "LoadBalancer"}}))
    assert "values.deployment.service_type" in kiali


# --- cluster ---------------------------------------------------------------------------


def eks_cluster(**props: Any) -> dict[str, Any]:
    return {"enabledClusterLogTypes": ["api", "audit", "authenticator"], "publicAccessCidrs": ["127.0.0.0/8"], **props}


def test_logged_cluster_with_narrow_endpoint_passes() -> None:
    check = rules.validate_eks_control_plane
    assert check_resource(check, rules.EKS_CLUSTER, eks_cluster()) == []
    assert (
        check_resource(check, rules.EKS_CLUSTER, eks_cluster(endpointPublicAccess=False, publicAccessCidrs=None)) == []
    )
    explicit = eks_cluster(
        publicAccessCidrs=[rules.WORLD], clusterTags={rules.PUBLIC_ENDPOINT_TAG: rules.PUBLIC_ENDPOINT_EXPLICIT}
    )
    assert check_resource(check, rules.EKS_CLUSTER, explicit) == []


def test_unlogged_or_world_open_cluster_fails() -> None:
    check = rules.validate_eks_control_plane
    (logs,) = check_resource(check, rules.EKS_CLUSTER, eks_cluster(enabledClusterLogTypes=["api"]))
    assert "must log at least" in logs
    (world,) = check_resource(check, rules.EKS_CLUSTER, eks_cluster(publicAccessCidrs=None))
    assert "open to the whole internet" in world and "apiAccessCidrs" in world


# --- secrets ---------------------------------------------------------------------------


def test_credentials_in_plain_inputs_fail() -> None:
    check = rules.validate_secrets
    helm = "kubernetes:helm.sh/v3:Release"
    assert check_resource(check, helm, release("grafana", {"admin": {"existingSecret": ""}})) == []
    (password,) = check_resource(check, helm, release("grafana", {"adminPassword": "admin"}))
    assert "values.adminPassword in plain text" in password
    provider = "pulumi:providers:kubernetes"
    assert check_resource(check, provider, {"kubeconfig": "/home/me/.kube/config"}) == []
    (kubeconfig,) = check_resource(check, provider, {"kubeconfig": "users:\n- user:\n    token: abc\n"})
    assert "embedded credentials" in kubeconfig


# --- the shipped stacks against the shipped pack -----------------------------------------


def as_policy_resources(run: ProgramRun) -> list[PolicyResource]:
    """What the engine gives a policy pack: every resource the program registers, components too, such as
    pulumi-eks's `eks:index:Cluster` with its inputs (tests/e2e/test_policy_engine.py). The resources a
    remote component creates inside itself are made by its provider, which the mocks do not run."""

    def props(registered: Registered) -> dict[str, Any]:
        return copy.deepcopy(registered.inputs)

    return [resource(r.type, props(r), r.name) for r in run.resources if not r.read]


def pack_violations(run: ProgramRun, config: dict[str, Any] | None = None) -> list[str]:
    resources = as_policy_resources(run)
    found: list[str] = []
    for stack_rule in rules.STACK_RULES.values():
        found += check_stack(stack_rule, resources, config)
    for resource_rule in rules.RESOURCE_RULES.values():
        for item in resources:
            args = ResourceValidationArgs(item.resource_type, dict(item.props), "urn", "r", OPTIONS, None, config)
            found += violations(resource_rule, args)
    return found


def test_the_pack_holds_every_rule_as_mandatory() -> None:
    assert {policy.name for policy in rules.POLICIES} == {*rules.STACK_RULES, *rules.RESOURCE_RULES}
    assert rules.ENFORCEMENT.value == "mandatory"


@pytest.mark.parametrize(
    "config",
    [
        {"canaryWeight": "10", "apiAccessCidrs": '["0.0.0.0/0"]'},
        {"canaryWeight": "50"},
        {**EXISTING_CLUSTER, "canaryWeight": "100"},
    ],
    ids=["dev", "eks-private-endpoint", "existing-promoted"],
)
def test_shipped_stacks_pass_every_rule(config: dict[str, str]) -> None:
    assert pack_violations(run_program(config)) == []


def test_a_lone_unweighted_route_to_the_canary_counts_as_all_traffic() -> None:
    resources = split({"v1": 0, "v2": 0})
    lone = {"route": [{"destination": {"host": "nginx", "subset": "v2"}}]}
    resources[0].props["spec"]["http"] = [lone]
    (message,) = check_split(resources, {"allowPromotion": False})
    assert "sends 100% to canary 'v2'" in message
    resources[0].props["spec"]["http"] = [{"match": [{"headers": {"x-canary": {"exact": "s3cr3t-t3st3r"}}}], **lone}]
    assert check_split(resources, {"allowPromotion": False}) == []


def test_a_header_route_to_the_canary_is_not_a_traffic_share() -> None:
    config = {**EXISTING_CLUSTER, "canaryWeight": "10", **HEADER_AND_MIRROR}
    assert pack_violations(run_program(config), {"allowPromotion": False}) == []


def test_a_bad_change_to_the_program_is_caught() -> None:
    found = pack_violations(run_program({**EXISTING_CLUSTER, "canaryWeight": "60"}))
    assert len(found) == 1 and "above the maximum of 50%" in found[0]


def test_references_to_secrets_are_not_credentials() -> None:
    values = {"admin": {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}}
    assert check_resource(rules.validate_secrets, "kubernetes:helm.sh/v3:Release", release("grafana", values)) == []
    (token,) = check_resource(rules.validate_secrets, "kubernetes:helm.sh/v3:Release", release("kiali", {"token": "x"}))
    assert "values.token" in token


# --- HTTPRoute split (trafficApi gateway-api) -------------------------------------------


def http_route(weights: dict[str, int], header_rule: bool = False) -> dict[str, Any]:
    split_rule = {"backendRefs": [{"name": f"nginx-{v}", "port": 80, "weight": w} for v, w in weights.items()]}
    rules_ = [split_rule]
    if header_rule:
        header = {"type": "Exact", "name": "x-canary", "value": "always"}
        rules_.insert(0, {"matches": [{"headers": [header]}], "backendRefs": [{"name": "nginx-v2", "port": 80}]})
    return {
        "metadata": {"name": "nginx-route", "annotations": {"canary/stable-backend": "nginx-v1"}},
        "spec": {"rules": rules_},
    }


def check_route(props: dict[str, Any], config: dict[str, Any] | None = None) -> list[str]:
    args = ResourceValidationArgs(rules.HTTP_ROUTE, props, "urn", "r", OPTIONS, None, config)
    return violations(rules.validate_http_route_split, args)


def test_an_http_route_within_the_cap_passes() -> None:
    assert check_route(http_route({"v1": 90, "v2": 10}, header_rule=True)) == []
    assert check_route(http_route({"v1": 0, "v2": 100})) == [], "promotion"


def test_an_http_route_not_summing_to_100_fails() -> None:
    (message,) = check_route(http_route({"v1": 90, "v2": 20}))
    assert "HTTPRoute nginx-route: the weights of rules[0] sum to 110, not 100" in message


def test_an_http_route_above_the_cap_fails_unless_promoted() -> None:
    (message,) = check_route(http_route({"v1": 40, "v2": 60}))
    assert "sends 60% to canary 'nginx-v2', above the maximum of 50%" in message
    (message,) = check_route(http_route({"v1": 0, "v2": 100}), {"allowPromotion": False})
    assert "promotions are disabled" in message
    assert check_route(http_route({"v1": 40, "v2": 60}), {"maxCanaryWeight": 60}) == []


def test_an_http_route_as_stored_is_judged_the_same() -> None:
    """The API server gives every rule a path match: only a header match makes a rule a tester route."""
    stored = http_route({"v1": 40, "v2": 60}, header_rule=True)
    for rule in stored["spec"]["rules"]:
        rule.setdefault("matches", [{}])
        for match in rule["matches"]:
            match["path"] = {"type": "PathPrefix", "value": "/"}
    (message,) = check_route(stored)
    assert "sends 60% to canary 'nginx-v2'" in message


def test_a_lone_backend_of_an_http_route_gets_all_of_its_requests() -> None:
    lone = http_route({"v2": 1})
    (message,) = check_route(lone, {"allowPromotion": False})
    assert "sends 100% to canary 'nginx-v2'" in message
    assert check_route(http_route({"v2": 0}), {"allowPromotion": False}) == [], "weight 0: nothing, even alone"


@pytest.mark.parametrize("weight", ["10", "50", "100"])
def test_shipped_gateway_api_stacks_pass_every_rule(weight: str) -> None:
    config = {"trafficApi": "gateway-api", "canaryWeight": weight, **HEADER_ROUTE, "mirrorPercent": "5"}
    assert pack_violations(run_program(config)) == []


def test_a_bad_gateway_api_change_is_caught() -> None:
    found = pack_violations(run_program({**EXISTING_CLUSTER, "trafficApi": "gateway-api", "canaryWeight": "60"}))
    assert len(found) == 1 and "HTTPRoute nginx-route sends 60% to canary 'nginx-v2'" in found[0]


def test_the_shipped_eks_cluster_reaches_the_control_plane_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = as_policy_resources(run_program({"canaryWeight": "10", "apiAccessCidrs": '["0.0.0.0/0"]'}))
    (cluster,) = [r for r in sent if r.resource_type == rules.EKS_CLUSTER]
    assert (cluster.props["endpointPublicAccess"], cluster.props["publicAccessCidrs"]) == (True, ["0.0.0.0/0"])
    assert {r.resource_type for r in sent} >= {"canary:infra:Cluster", "canary:mesh:Mesh", "canary:workloads:CanaryApp"}
    monkeypatch.setattr("infra.cluster.CONTROL_PLANE_LOGS", ["api"])
    found = pack_violations(run_program({"canaryWeight": "10"}))
    assert len(found) == 1 and "EKS cluster logs ['api']; it must log at least" in found[0]
    monkeypatch.setattr("infra.cluster.PUBLIC_ENDPOINT_EXPLICIT", "oops")
    found = pack_violations(run_program({"canaryWeight": "10", "apiAccessCidrs": '["0.0.0.0/0"]'}))
    assert any("open to the whole internet" in message for message in found)
