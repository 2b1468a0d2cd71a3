"""The policy rules at their edges: each condition of each rule, and the exact words a user is shown."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import ResourceValidationArgs, StackValidationArgs

from policy import rules
from tests.test_policy import OPTIONS, check_resource, check_split, check_stack, deployment, release, resource, split

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HELM = "kubernetes:helm.sh/v3:Release"


def reported(validate: Any, args: Any) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    validate(args, lambda message, urn=None: found.append((message, urn)))
    return found


# --- traffic split ---------------------------------------------------------------------------


def test_split_messages_in_full() -> None:
    (message,) = check_split(split({"v1": 90, "v2": 20}))
    assert message == (
        "VirtualService nginx-virtual-svc: the weights of http[0] sum to 110, not 100. "
        "Set canaryWeight (0-100); the stable version gets the rest."
    )
    (message,) = check_split(split({"v1": 40, "v2": 60}), {"allowPromotion": False})
    assert message == (
        "VirtualService nginx-virtual-svc sends 60% to canary 'v2', above the maximum of 50%. Step up to at most 50, "
        "or promote explicitly with canaryWeight 100 (promotions are disabled for this stack by allowPromotion)."
    )
    assert check_split(split({"v1": 40, "v2": 60}), {"maxCanaryWeight": 60, "allowPromotion": False}) == []


def test_only_virtual_services_are_split_checked() -> None:
    (_, destination_rule) = split({"v1": 90, "v2": 20})
    assert check_split([destination_rule]) == []


@pytest.mark.parametrize(("weight", "cap", "violations"), [(50, 50, 0), (51, 50, 1), (20, 19, 1), (20, 20, 0)])
def test_the_cap_is_inclusive(weight: int, cap: int, violations: int) -> None:
    assert len(check_split(split({"v1": 100 - weight, "v2": weight}), {"maxCanaryWeight": cap})) == violations


def test_the_stable_version_is_never_capped_and_without_roles_nothing_is() -> None:
    assert check_split(split({"v1": 100, "v2": 0})) == []
    unlabelled = split({"v1": 10, "v2": 90})
    del unlabelled[0].props["metadata"]["annotations"]
    assert check_split(unlabelled) == [], "without roles no route is a canary"
    assert len(check_split(split({"v1": 90, "v2": 10}, stable="v2"))) == 1


def test_subsets_count_only_in_the_virtual_services_namespace() -> None:
    resources = split({"v1": 90, "v2": 10})
    resources[1].props["metadata"]["namespace"] = "other"
    found = check_stack(rules.validate_traffic_split_subsets, resources)
    assert len(found) == 2 and all("which no DestinationRule defines (defined: none)" in m for m in found)
    resources[0].props["metadata"].pop("namespace")
    resources[1].props["metadata"].pop("namespace")
    assert check_stack(rules.validate_traffic_split_subsets, resources) == [], "no namespace is the default namespace"


def test_an_undefined_subset_names_the_defined_ones_on_the_virtual_service() -> None:
    resources = split({"v1": 90, "v3": 10}, subsets=("v1", "v2"))
    ((message, urn),) = reported(rules.validate_traffic_split_subsets, StackValidationArgs(resources, None))
    assert message == (
        "VirtualService nginx-virtual-svc routes to subset 'v3' of nginx, which no DestinationRule defines "
        "(defined: ['v1', 'v2']). Add the version to the DestinationRule or route to a defined subset."
    )
    assert urn == resources[0].urn
    resources[0].props["spec"]["http"][0]["route"][1]["destination"].pop("subset")
    assert check_stack(rules.validate_traffic_split_subsets, resources) == [], "a route without a subset is the host"


def test_routes_without_weights_count_as_the_istio_defaults() -> None:
    resources = split({"v1": 0, "v2": 0})
    http = resources[0].props["spec"]["http"]
    http[0]["route"] = [{"destination": {"host": "nginx", "subset": "v1"}}]
    assert check_split(resources) == [], "a lone route gets everything"
    http[0]["route"].append({"destination": {"host": "nginx", "subset": "v2"}})
    (message,) = check_split(resources)
    assert "sum to 0, not 100" in message, "with two routes an unweighted one gets nothing"
    http[0]["route"] = []
    assert check_split(resources) == []


def test_every_http_block_is_checked_with_its_index() -> None:
    resources = split({"v1": 90, "v2": 10})
    http = resources[0].props["spec"]["http"]
    http.append({"route": [{"destination": {"host": "nginx", "subset": "v1"}, "weight": 70}]})
    (message,) = check_split(resources)
    assert "http[1] sum to 70" in message


def test_the_pack_config_defaults_to_a_cap_of_50_with_promotion() -> None:
    assert rules.SPLIT_CONFIG.properties == {
        "maxCanaryWeight": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
        "allowPromotion": {"type": "boolean", "default": True},
    }
    by_name = {policy.name: policy for policy in rules.POLICIES}
    split_rules = {"traffic-split", "http-route-split"}
    assert all(by_name[name].config_schema is rules.SPLIT_CONFIG for name in split_rules)
    assert all(policy.config_schema is None for name, policy in by_name.items() if name not in split_rules)
    assert all(policy.description and not policy.description.startswith(name) for name, policy in by_name.items())


# --- workloads -------------------------------------------------------------------------------


def pod_spec(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


def test_images_are_checked_in_init_containers_and_in_every_workload_kind() -> None:
    unpinned = {"name": "init", "image": "busybox"}
    bad = deployment()
    bad["spec"]["template"]["spec"]["initContainers"] = [unpinned]
    (message,) = check_resource(rules.validate_pinned_images, DEPLOYMENT, bad)
    assert message == (
        "nginx-v1: container init uses image 'busybox'. Pin it by tag (repo/app:v2) or digest "
        "(repo/app@sha256:...), never latest."
    )
    assert len(check_resource(rules.validate_pinned_images, "kubernetes:core/v1:Pod", pod_spec(containers=[unpinned])))
    for kind in ("StatefulSet", "DaemonSet"):
        assert len(check_resource(rules.validate_pinned_images, f"kubernetes:apps/v1:{kind}", bad)) == 1
    assert len(check_resource(rules.validate_pinned_images, "kubernetes:batch/v1:Job", bad)) == 1
    assert check_resource(rules.validate_pinned_images, "kubernetes:core/v1:Service", bad) == []


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("registry:5000/team/app:1.0", True),
        ("registry:5000/team/app", False),
        ("app@sha256:" + "0" * 64, True),
        ("app:latest", False),
        ("app:latest-1", True),
        ("", False),
    ],
)
def test_what_counts_as_pinned(image: str, pinned: bool) -> None:
    found = check_resource(rules.validate_pinned_images, DEPLOYMENT, deployment(image=image))
    assert (found == []) is pinned


def test_every_container_is_checked_after_a_digest_pinned_one() -> None:
    pod = deployment(image="app@sha256:" + "0" * 64)
    pod["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    (message,) = check_resource(rules.validate_pinned_images, DEPLOYMENT, pod)
    assert "container sidecar uses image 'busybox'" in message


@pytest.mark.parametrize(
    "missing",
    ["livenessProbe", "readinessProbe", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"],
)
def test_each_missing_probe_or_resource_is_named(missing: str) -> None:
    container: dict[str, Any] = {
        "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
        "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
        "resources": {"requests": {"cpu": "1", "memory": "1Mi"}, "limits": {"cpu": "1", "memory": "1Mi"}},
    }
    if "." in missing:
        kind, unit = missing.split(".")
        del container["resources"][kind][unit]
    else:
        container[missing] = None
    (message,) = check_resource(rules.validate_probes_and_resources, DEPLOYMENT, deployment(**container))
    named = missing if "." not in missing else f"resources.{missing}"
    assert message == (
        f"nginx-v1: container nginx-v1 lacks {named}. Add them to the container spec (workloads/manifests.py)."
    )


def test_init_containers_need_no_probes() -> None:
    app = deployment()
    app["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1"}]
    assert check_resource(rules.validate_probes_and_resources, DEPLOYMENT, app) == []


def test_injection_by_revision_label_counts_and_unversioned_pods_are_not_the_apps() -> None:
    app = resource(DEPLOYMENT, deployment())
    revision = resource(
        "kubernetes:core/v1:Namespace", {"metadata": {"name": "default", "labels": {"istio.io/rev": "1-31"}}}
    )
    assert check_stack(rules.validate_sidecar_injection, [app, revision]) == []
    other = deployment()
    other["spec"]["template"]["metadata"]["labels"] = {"app": "tool"}
    assert check_stack(rules.validate_sidecar_injection, [resource(DEPLOYMENT, other)]) == []
    elsewhere = deployment()
    elsewhere["metadata"]["namespace"] = "shop"
    (message,) = check_stack(rules.validate_sidecar_injection, [resource(DEPLOYMENT, elsewhere), revision])
    assert message == (
        "nginx-v1 runs in namespace 'shop', which this stack does not declare. "
        "Declare it (or a NamespacePatch) with the label istio-injection=enabled."
    )
    off = resource(
        "kubernetes:core/v1:Namespace", {"metadata": {"name": "default", "labels": {"istio-injection": "disabled"}}}
    )
    (message,) = check_stack(rules.validate_sidecar_injection, [app, off])
    assert message == (
        "Namespace 'default' of nginx-v1 has no sidecar injection. "
        "Label it istio-injection=enabled (or istio.io/dataplane-mode=ambient) so its pods join the mesh "
        "and the split applies."
    )


# --- exposure, cluster, secrets ---------------------------------------------------------------


def test_load_balancers_anywhere_in_chart_values_are_found() -> None:
    values = {"a": [{"b": {"type": "LoadBalancer"}}], "service": {"type": "NodePort"}}
    (message,) = check_resource(rules.validate_only_ingress_is_public, HELM, release("kiali-server", values))
    assert message == (
        "Helm release kiali-server sets values.a[0].b.type = LoadBalancer. Dashboards stay inside the cluster: "
        "use ClusterIP and kubectl port-forward."
    )
    assert check_resource(rules.validate_only_ingress_is_public, HELM, {"chart": "grafana"}) == []
    (service,) = check_resource(
        rules.validate_only_ingress_is_public,
        "kubernetes:core/v1:Service",
        {"metadata": {"name": "grafana"}, "spec": {"type": "LoadBalancer"}},
    )
    assert service == (
        "Service grafana is of type LoadBalancer. Only istio-ingressgateway may be; "
        "use ClusterIP and reach it through the gateway or kubectl port-forward."
    )


def test_control_plane_messages_in_full() -> None:
    check = rules.validate_eks_control_plane
    (logs,) = check_resource(check, rules.EKS_CLUSTER, {"publicAccessCidrs": ["10.0.0.0/8"]})
    assert logs == (
        "EKS cluster logs nothing; it must log at least ['api', 'audit', 'authenticator'] "
        "(enabled_cluster_log_types in infra/cluster.py)."
    )
    logged = {"enabledClusterLogTypes": ["api", "audit", "authenticator", "scheduler"]}
    (open_to_world,) = check_resource(check, rules.EKS_CLUSTER, logged)
    assert open_to_world == (
        "The EKS API endpoint is open to the whole internet. Set apiAccessCidrs to your networks "
        "(pulumi config set --path 'apiAccessCidrs[0]' <cidr>), or to 0.0.0.0/0 explicitly in the stack config."
    )
    private = {**logged, "endpointPublicAccess": False, "publicAccessCidrs": ["0.0.0.0/0"]}
    assert check_resource(check, rules.EKS_CLUSTER, private) == []
    world: dict[str, Any] = {**logged, "publicAccessCidrs": ["0.0.0.0/0"]}
    assert (
        len(check_resource(check, rules.EKS_CLUSTER, {**world, "clusterTags": {rules.PUBLIC_ENDPOINT_TAG: "yes"}})) == 1
    )
    explicit = {**world, "clusterTags": {rules.PUBLIC_ENDPOINT_TAG: rules.PUBLIC_ENDPOINT_EXPLICIT}}
    assert check_resource(check, rules.EKS_CLUSTER, explicit) == []
    assert check_resource(check, "aws:ec2/vpc:Vpc", {}) == []


@pytest.mark.parametrize(
    ("key", "credential"),
    [
        ("password", True),
        ("adminPassword", True),
        ("DB_PASSWD", True),
        ("clientSecret", True),
        ("token", True),
        ("signing_key", True),
        ("existingSecret", False),
        ("passwordKey", False),
        ("secretName", False),
    ],
)
def test_what_counts_as_a_credential_key(key: str, credential: bool) -> None:
    found = check_resource(rules.validate_secrets, HELM, release("x", {"nested": [{key: "value"}]}))
    assert bool(found) is credential
    if credential:
        assert found == [
            f"Helm release x sets values.nested[0].{key} in plain text. Let the chart generate it into a "
            "Kubernetes Secret (existingSecret), or pass a Pulumi secret."
        ]


def test_empty_and_non_text_credentials_are_not_reported() -> None:
    assert check_resource(rules.validate_secrets, HELM, release("x", {"password": "", "token": 3})) == []


@pytest.mark.parametrize(
    ("kubeconfig", "embedded"),
    [
        ("users:\n- user:\n    client-key-data: AAAA\n", True),
        ("users:\n- user:\n    password: hunter2\n", True),
        ("users:\n- user:\n    token: abc\n", True),
        ("users:\n- user:\n    exec: {command: aws}\n", False),
        ("/home/me/.kube/config", False),
    ],
    ids=["client-key-data", "password", "token", "exec", "a-path"],
)
def test_what_counts_as_an_embedded_kubeconfig_credential(kubeconfig: str, embedded: bool) -> None:
    found = check_resource(rules.validate_secrets, "pulumi:providers:kubernetes", {"kubeconfig": kubeconfig})
    assert bool(found) is embedded


def test_a_release_without_a_name_is_named_by_its_resource() -> None:
    args = ResourceValidationArgs(
        HELM,
        {"chart": "grafana", "values": {"service": {"type": "LoadBalancer"}}},
        "urn",
        "grafana-release",
        OPTIONS,
        None,
    )
    (message,) = [m for m, _ in reported(rules.validate_only_ingress_is_public, args)]
    assert message.startswith("Helm release grafana-release sets values.service.type = LoadBalancer.")


def http_route(*rules_: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "nginx", "annotations": {"canary/stable-backend": "nginx-v1"}},
        "spec": {"rules": list(rules_)},
    }


def backends(**weights: int | None) -> list[dict[str, Any]]:
    return [{"name": name, **({} if w is None else {"weight": w})} for name, w in weights.items()]


PATH_MATCH = [{"path": {"type": "PathPrefix", "value": "/"}}]  # every rule the API server stores has one


def check_route(*rules_: dict[str, Any]) -> list[str]:
    return check_resource(rules.validate_http_route_split, rules.HTTP_ROUTE, http_route(*rules_))


def test_an_http_route_split_is_held_to_the_cap_and_to_100() -> None:
    assert check_route({"matches": PATH_MATCH, "backendRefs": backends(**{"nginx-v1": 90, "nginx-v2": 10})}) == []
    (above,) = check_route({"matches": PATH_MATCH, "backendRefs": backends(**{"nginx-v1": 40, "nginx-v2": 60})})
    assert above.startswith("HTTPRoute nginx sends 60% to canary 'nginx-v2', above the maximum of 50%.")
    (unbalanced,) = check_route({"backendRefs": backends(**{"nginx-v1": 90, "nginx-v2": 20})})
    assert unbalanced.startswith("HTTPRoute nginx: the weights of rules[0] sum to 110, not 100.")


def test_an_http_route_header_rule_may_send_testers_anywhere_but_a_path_match_is_no_header_rule() -> None:
    mostly_canary = backends(**{"nginx-v1": 40, "nginx-v2": 60})
    header = [{"headers": [{"name": "x-canary", "value": "on"}], "path": {"type": "PathPrefix", "value": "/"}}]
    split = {"matches": PATH_MATCH, "backendRefs": backends(**{"nginx-v1": 100, "nginx-v2": 0})}
    assert check_route({"matches": header, "backendRefs": mostly_canary}, split) == []
    (refused,) = check_route({"matches": PATH_MATCH, "backendRefs": mostly_canary}, split)
    assert refused.startswith("HTTPRoute nginx sends 60% to canary 'nginx-v2'"), refused
    (weightless,) = check_route({"backendRefs": backends(**{"nginx-v1": None, "nginx-v2": None})})
    assert "sum to 2, not 100" in weightless, "the Gateway API's default weight is 1"


# --- edges the mutation run found untested ------------------------------------------------------


def test_the_cap_message_in_full_when_promotions_are_allowed() -> None:
    (message,) = check_split(split({"v1": 40, "v2": 60}))
    assert message == (
        "VirtualService nginx-virtual-svc sends 60% to canary 'v2', above the maximum of 50%. Step up to at most 50, "
        "or promote explicitly with canaryWeight 100."
    )


def test_subsets_are_looked_up_in_the_virtual_services_own_namespace_in_any_order() -> None:
    virtual_service, destination_rule = split({"v1": 90, "v3": 10})
    for resource_ in (virtual_service, destination_rule):
        resource_.props["metadata"]["namespace"] = "shop"
    assert check_stack(rules.validate_traffic_split_subsets, [destination_rule, virtual_service]) == [
        "VirtualService nginx-virtual-svc routes to subset 'v3' of nginx, which no DestinationRule defines "
        "(defined: ['v1', 'v2']). Add the version to the DestinationRule or route to a defined subset."
    ]
    del virtual_service.props["spec"]["http"][0]["route"][1]
    args = StackValidationArgs([destination_rule, virtual_service], None)
    assert reported(rules.validate_traffic_split_subsets, args) == []


def test_every_versioned_workload_is_checked_after_others_and_named_with_its_urn() -> None:
    injected = resource(
        "kubernetes:core/v1:Namespace", {"metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}}
    )
    tool = deployment()
    tool["spec"]["template"]["metadata"]["labels"] = {"app": "tool"}
    unplaced = deployment()
    del unplaced["metadata"]["namespace"]
    in_default = resource(DEPLOYMENT, unplaced, name="in-default")  # no namespace: the default one
    elsewhere = deployment()
    elsewhere["metadata"]["namespace"] = "shop"
    shop = resource(DEPLOYMENT, elsewhere, name="in-shop")
    resources = [injected, resource(DEPLOYMENT, tool), in_default, shop]
    assert reported(rules.validate_sidecar_injection, StackValidationArgs(resources, None)) == [
        (
            "nginx-v1 runs in namespace 'shop', which this stack does not declare. "
            "Declare it (or a NamespacePatch) with the label istio-injection=enabled.",
            shop.urn,
        )
    ]
    off = resource("kubernetes:core/v1:Namespace", {"metadata": {"name": "default", "labels": {}}})
    ((_, urn),) = reported(rules.validate_sidecar_injection, StackValidationArgs([off, in_default], None))
    assert urn == in_default.urn


def test_every_missing_part_is_named_and_an_unnamed_workload_is_shown_as_a_question_mark() -> None:
    app = deployment(livenessProbe=None, readinessProbe=None)
    del app["metadata"]["name"]
    (message,) = check_resource(rules.validate_probes_and_resources, DEPLOYMENT, app)
    assert message == (
        "?: container nginx-v1 lacks livenessProbe, readinessProbe. Add them to the container spec "
        "(workloads/manifests.py)."
    )


def test_secret_messages_in_full_and_a_release_without_a_name_is_named_by_its_resource() -> None:
    (message,) = check_resource(
        rules.validate_secrets, "pulumi:providers:kubernetes", {"kubeconfig": "users:\n- user:\n    token: abc\n"}
    )
    assert message == (
        "The Kubernetes provider is given a kubeconfig with embedded credentials. Pass a kubeconfig path "
        "(kubeconfig setting) or the cluster's generated kubeconfig, which is a stack secret."
    )
    args = ResourceValidationArgs(
        HELM, {"chart": "grafana", "values": {"adminPassword": "hunter2"}}, "urn", "grafana-release", OPTIONS, None
    )
    assert [message for message, _ in reported(rules.validate_secrets, args)] == [
        "Helm release grafana-release sets values.adminPassword in plain text. Let the chart generate it into a "
        "Kubernetes Secret (existingSecret), or pass a Pulumi secret."
    ]
