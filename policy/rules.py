"""The canary guardrails: mandatory rules checked on every preview and update.

Each rule is a plain validation function of (args, report_violation), unit-tested through
pulumi-policy's own argument types; `__main__.py` only assembles them into the pack.
Every message says what to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

ISTIO = "kubernetes:networking.istio.io/v1:"
VIRTUAL_SERVICE = f"{ISTIO}VirtualService"
DESTINATION_RULE = f"{ISTIO}DestinationRule"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
POD_SPEC_PATHS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
NAMESPACE_TYPES = ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:NamespacePatch")
INGRESS_GATEWAY_CHART = "gateway"
INGRESS_GATEWAY_SERVICE = "istio-ingressgateway"
# pulumi-eks's component, with the inputs the program gives it: the engine gives a policy
# pack components as well as custom resources (tests/e2e/test_policy_engine.py).
EKS_CLUSTER = "eks:index:Cluster"
REQUIRED_LOG_TYPES = {"api", "audit", "authenticator"}
WORLD = "0.0.0.0/0"
PUBLIC_ENDPOINT_TAG = "canary-public-endpoint"
PUBLIC_ENDPOINT_EXPLICIT = "open-to-world-by-stack-config"
DEFAULT_MAX_CANARY_WEIGHT = 50
# Keys that hold a credential; names of keys inside a Secret (passwordKey) and references
# to Secrets (existingSecret) are not credentials.
CREDENTIAL_KEY = re.compile(r"^(?!existing).*(password|passwd|secret|token|signing_key)$", re.IGNORECASE)
KUBECONFIG_CREDENTIALS = re.compile(r"client-key-data|\btoken:|\bpassword:")


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _name(props: Mapping[str, Any]) -> str:
    return str(_get(props, "metadata", "name") or "?")


# --- traffic split -------------------------------------------------------------------


def _check_route_weights(
    args: ResourceValidationArgs,
    what: str,
    weighted_rules: list[tuple[str, list[int], list[tuple[Any, int]], bool]],
    stable: Any,
    report_violation: ReportViolation,
) -> None:
    """One route's rules: (where, weights that must sum to 100 or [] if none must, (destination, share)
    pairs, chosen by request). The canary stays under the pack's cap unless the change is a promotion."""
    config = args.get_config() or {}
    max_weight = int(config.get("maxCanaryWeight", DEFAULT_MAX_CANARY_WEIGHT))
    allow_promotion = bool(config.get("allowPromotion", True))
    for where, weights, shares, chosen_by_request in weighted_rules:
        if weights and sum(weights) != 100:
            report_violation(
                f"{what}: the weights of {where} sum to {sum(weights)}, not 100. "
                "Set canaryWeight (0-100); the stable version gets the rest.",
                None,
            )
        for destination, share in shares:
            is_canary = stable is not None and destination != stable
            promotion = share == 100 and allow_promotion
            # A header route for testers is not a share of traffic.
            if is_canary and share > max_weight and not promotion and not chosen_by_request:
                report_violation(
                    f"{what} sends {share}% to canary {destination!r}, above the maximum of "
                    f"{max_weight}%. Step up to at most {max_weight}, or promote explicitly with canaryWeight 100"
                    + ("" if allow_promotion else " (promotions are disabled for this stack by allowPromotion)")
                    + ".",
                    None,
                )


def validate_traffic_split(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """VirtualService weights sum to 100 and the canary stays under the cap.

    A resource rule, so the engine checks it before it changes the VirtualService, even in an
    update that skips its preview (Automation API, `pulumi/actions`, `pulumi up --skip-preview`).
    """
    if args.resource_type != VIRTUAL_SERVICE:
        return
    weighted_rules = []
    for index, http in enumerate(_get(args.props, "spec", "http") or []):
        routes = http.get("route") or []
        implicit = 100 if len(routes) == 1 else 0  # Istio: a lone destination gets all of its requests
        weights = [int(route.get("weight", implicit)) for route in routes]
        shares = [(_get(route, "destination", "subset"), weight) for route, weight in zip(routes, weights, strict=True)]
        weighted_rules.append((f"http[{index}]", weights, shares, bool(http.get("match"))))
    stable = _get(args.props, "metadata", "annotations", "canary/stable-version")
    _check_route_weights(args, f"VirtualService {_name(args.props)}", weighted_rules, stable, report_violation)


def validate_traffic_split_subsets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """VirtualService routes name only subsets a DestinationRule defines (needs both resources: a stack rule)."""
    subsets: dict[tuple[str, str], set[str]] = {}
    for resource in args.resources:
        if resource.resource_type == DESTINATION_RULE:
            namespace = _get(resource.props, "metadata", "namespace") or "default"
            host = str(_get(resource.props, "spec", "host"))
            names = {str(subset.get("name")) for subset in _get(resource.props, "spec", "subsets") or []}
            subsets.setdefault((namespace, host), set()).update(names)
    for resource in args.resources:
        if resource.resource_type != VIRTUAL_SERVICE:
            continue
        name = _name(resource.props)
        namespace = _get(resource.props, "metadata", "namespace") or "default"
        for http in _get(resource.props, "spec", "http") or []:
            for route in http.get("route") or []:
                host = str(_get(route, "destination", "host"))
                subset = _get(route, "destination", "subset")
                defined = subsets.get((namespace, host), set())
                if subset is not None and subset not in defined:
                    report_violation(
                        f"VirtualService {name} routes to subset {subset!r} of {host}, which no DestinationRule "
                        f"defines (defined: {sorted(defined) or 'none'}). Add the version to the DestinationRule "
                        "or route to a defined subset.",
                        resource.urn,
                    )


def validate_http_route_split(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTPRoute weights sum to 100 and the canary stays under the cap (trafficApi gateway-api)."""
    # A resource rule: it runs before the route changes, even on `up --skip-preview`.
    if args.resource_type != HTTP_ROUTE:
        return
    weighted_rules = []
    for index, rule in enumerate(_get(args.props, "spec", "rules") or []):
        backends = rule.get("backendRefs") or []
        # The Gateway API's default weight is 1: a lone backend gets all of the rule's requests.
        weights = [int(backend.get("weight", 1)) for backend in backends]
        shares = [100] if len(backends) == 1 and weights[0] > 0 else weights
        # Every stored rule gets a path prefix match: only a header match makes a header route.
        chosen_by_request = any(match.get("headers") for match in rule.get("matches") or [])
        pairs = [(backend.get("name"), share) for backend, share in zip(backends, shares, strict=True)]
        weighted_rules.append((f"rules[{index}]", weights if len(backends) > 1 else [], pairs, chosen_by_request))
    stable = _get(args.props, "metadata", "annotations", "canary/stable-backend")
    _check_route_weights(args, f"HTTPRoute {_name(args.props)}", weighted_rules, stable, report_violation)


# --- workloads -------------------------------------------------------------------------


def _containers(
    args: ResourceValidationArgs, kinds: tuple[str, ...] = ("initContainers", "containers")
) -> Iterator[Mapping[str, Any]]:
    path = POD_SPEC_PATHS.get(args.resource_type)
    if path is None:
        return
    pod_spec = _get(args.props, *path) or {}
    for key in kinds:
        yield from pod_spec.get(key) or []


def validate_pinned_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Images are pinned by tag or digest, never `latest` or untagged."""
    for container in _containers(args):
        image = str(container.get("image", ""))
        last_part = image.rsplit("/", 1)[-1]
        if "@sha256:" in image:
            continue
        if ":" not in last_part or last_part.endswith(":latest"):
            report_violation(
                f"{_name(args.props)}: container {container.get('name')} uses image {image!r}. "
                "Pin it by tag (repo/app:v2) or digest (repo/app@sha256:...), never latest.",
                None,
            )


def validate_probes_and_resources(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every container has liveness and readiness probes and CPU/memory requests and limits."""
    for container in _containers(args, ("containers",)):
        missing = [probe for probe in ("livenessProbe", "readinessProbe") if not container.get(probe)]
        resources = container.get("resources") or {}
        missing += [
            f"resources.{kind}.{unit}"
            for kind in ("requests", "limits")
            for unit in ("cpu", "memory")
            if not (resources.get(kind) or {}).get(unit)
        ]
        if missing:
            report_violation(
                f"{_name(args.props)}: container {container.get('name')} lacks {', '.join(missing)}. "
                "Add them to the container spec (workloads/manifests.py).",
                None,
            )


def validate_sidecar_injection(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The namespaces of the app's versions (pods labelled `version`) have sidecar injection or ambient mode on."""
    labels_by_namespace = {
        _name(r.props): _get(r.props, "metadata", "labels") or {}
        for r in args.resources
        if r.resource_type in NAMESPACE_TYPES
    }
    for resource in args.resources:
        if resource.resource_type not in POD_SPEC_PATHS:
            continue
        pod_labels = _get(resource.props, "spec", "template", "metadata", "labels") or {}
        if "version" not in pod_labels:
            continue
        namespace = _get(resource.props, "metadata", "namespace") or "default"
        labels = labels_by_namespace.get(namespace)
        if labels is None:
            report_violation(
                f"{_name(resource.props)} runs in namespace {namespace!r}, which this stack does not declare. "
                "Declare it (or a NamespacePatch) with the label istio-injection=enabled.",
                resource.urn,
            )
        elif not _in_mesh(labels):
            report_violation(
                f"Namespace {namespace!r} of {_name(resource.props)} has no sidecar injection. "
                "Label it istio-injection=enabled (or istio.io/dataplane-mode=ambient) so its pods join the mesh "
                "and the split applies.",
                resource.urn,
            )


def _in_mesh(labels: Mapping[str, Any]) -> bool:
    """Sidecar injection, or ambient mode (ztunnel, no sidecars)."""
    injected = labels.get("istio-injection") == "enabled" or bool(labels.get("istio.io/rev"))
    return injected or labels.get("istio.io/dataplane-mode") == "ambient"


# --- exposure --------------------------------------------------------------------------


def _entries(values: Any, path: str = "values") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of nested chart values."""
    if isinstance(values, Mapping):
        for key, value in values.items():
            yield f"{path}.{key}", str(key), value
            yield from _entries(value, f"{path}.{key}")
    elif isinstance(values, list):
        for index, item in enumerate(values):
            yield from _entries(item, f"{path}[{index}]")


def _load_balancers_in_values(values: Any) -> Iterator[str]:
    for path, key, value in _entries(values):
        if key in {"type", "service_type"} and value == "LoadBalancer":
            yield path


def validate_only_ingress_is_public(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Only the ingress gateway is exposed through a LoadBalancer; dashboards are not."""
    if args.resource_type == "kubernetes:core/v1:Service":
        if _get(args.props, "spec", "type") == "LoadBalancer" and _name(args.props) != INGRESS_GATEWAY_SERVICE:
            report_violation(
                f"Service {_name(args.props)} is of type LoadBalancer. Only {INGRESS_GATEWAY_SERVICE} may be; "
                "use ClusterIP and reach it through the gateway or kubectl port-forward.",
                None,
            )
    elif args.resource_type == "kubernetes:helm.sh/v3:Release" and args.props.get("chart") != INGRESS_GATEWAY_CHART:
        for where in _load_balancers_in_values(args.props.get("values")):
            report_violation(
                f"Helm release {args.props.get('name', args.name)} sets {where} = LoadBalancer. Dashboards stay "
                "inside the cluster: use ClusterIP and kubectl port-forward.",
                None,
            )


# --- cluster ---------------------------------------------------------------------------


def validate_eks_control_plane(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The EKS cluster logs its control plane and keeps its public endpoint off the open internet."""
    if args.resource_type != EKS_CLUSTER:
        return
    logged = set(args.props.get("enabledClusterLogTypes") or [])
    if not logged >= REQUIRED_LOG_TYPES:
        report_violation(
            f"EKS cluster logs {sorted(logged) or 'nothing'}; it must log at least {sorted(REQUIRED_LOG_TYPES)} "
            "(enabled_cluster_log_types in infra/cluster.py).",
            None,
        )
    public = args.props.get("endpointPublicAccess", True)
    cidrs = args.props.get("publicAccessCidrs") or [WORLD]
    tags = args.props.get("clusterTags") or {}
    if public and WORLD in cidrs and tags.get(PUBLIC_ENDPOINT_TAG) != PUBLIC_ENDPOINT_EXPLICIT:
        report_violation(
            "The EKS API endpoint is open to the whole internet. Set apiAccessCidrs to your networks "
            "(pulumi config set --path 'apiAccessCidrs[0]' <cidr>), or to 0.0.0.0/0 explicitly in the stack config.",
            None,
        )


# --- secrets ---------------------------------------------------------------------------


def _plaintext_credentials(values: Any) -> Iterator[str]:
    for path, key, value in _entries(values):
        if isinstance(value, str) and value and CREDENTIAL_KEY.search(key):
            yield path


def validate_secrets(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Credentials never sit in plain program inputs: no passwords in chart values, no keys in a kubeconfig."""
    if args.resource_type == "kubernetes:helm.sh/v3:Release":
        for where in _plaintext_credentials(args.props.get("values")):
            report_violation(
                f"Helm release {args.props.get('name', args.name)} sets {where} in plain text. Let the chart "
                "generate it into a Kubernetes Secret (existingSecret), or pass a Pulumi secret.",
                None,
            )
    elif args.resource_type == "pulumi:providers:kubernetes":
        kubeconfig = str(args.props.get("kubeconfig") or "")
        if KUBECONFIG_CREDENTIALS.search(kubeconfig):
            report_violation(
                "The Kubernetes provider is given a kubeconfig with embedded credentials. Pass a kubeconfig path "
                "(kubeconfig setting) or the cluster's generated kubeconfig, which is a stack secret.",
                None,
            )


SPLIT_CONFIG = PolicyConfigSchema(
    properties={
        "maxCanaryWeight": {"type": "integer", "minimum": 0, "maximum": 100, "default": DEFAULT_MAX_CANARY_WEIGHT},
        "allowPromotion": {"type": "boolean", "default": True},
    }
)
# Stack rules see every resource but run only after the update's steps when it skips its preview;
# a rule that can judge one resource alone is a resource rule, checked before that resource changes.
STACK_RULES = {
    "traffic-split-subsets": validate_traffic_split_subsets,
    "sidecar-injection": validate_sidecar_injection,
}
RESOURCE_RULES = {
    "traffic-split": validate_traffic_split,
    "http-route-split": validate_http_route_split,
    "pinned-images": validate_pinned_images,
    "probes-and-resources": validate_probes_and_resources,
    "only-ingress-is-public": validate_only_ingress_is_public,
    "eks-control-plane": validate_eks_control_plane,
    "no-plaintext-credentials": validate_secrets,
}
ENFORCEMENT = EnforcementLevel.MANDATORY
POLICIES: list[StackValidationPolicy | ResourceValidationPolicy] = [
    *(
        StackValidationPolicy(
            name=name,
            description=(validate.__doc__ or name).strip(),
            validate=validate,
        )
        for name, validate in STACK_RULES.items()
    ),
    *(
        ResourceValidationPolicy(
            name=name,
            description=(validate.__doc__ or name).strip().splitlines()[0],
            validate=validate,
            config_schema=SPLIT_CONFIG if validate in (validate_traffic_split, validate_http_route_split) else None,
        )
        for name, validate in RESOURCE_RULES.items()
    ),
]
