"""The app's Kubernetes, Istio and Gateway API objects as plain data (metadata and spec).

Pure functions of the settings, so they are validated against the Kubernetes, Istio and
Gateway API schemas in tests, and so a weight change provably touches only the object
that carries the split (the VirtualService, or the HTTPRoute with trafficApi gateway-api).
"""

from __future__ import annotations

from typing import Any

from mesh.charts import zone_spread
from mesh.gateway import HTTP_PORT, IngressGateway
from settings import AppSettings, AppVersion, workload_name

HEALTH_PATH = "/health"
Manifest = dict[str, Any]


def version_labels(app: AppSettings, version: AppVersion) -> dict[str, str]:
    return {"app": app.name, "version": version.label}


def deployment(app: AppSettings, version: AppVersion, spread_over_zones: bool = False) -> Manifest:
    labels = version_labels(app, version)
    probe = {"httpGet": {"path": HEALTH_PATH, "port": HTTP_PORT}}
    container = {
        "name": workload_name(app.name, version.label),
        "image": version.image,
        "imagePullPolicy": "Always",
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "seccompProfile": {"type": "RuntimeDefault"},
            # The seed's nginx starts as root to bind port 80, then drops to its worker user.
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"]},
        },
    }
    pod_spec: Manifest = {"containers": [container]}
    if spread_over_zones:
        pod_spec["topologySpreadConstraints"] = zone_spread(labels)
    return {
        "metadata": {"name": workload_name(app.name, version.label), "namespace": app.namespace, "labels": labels},
        "spec": {
            "replicas": version.replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def disruption_budget(app: AppSettings, version: AppVersion) -> Manifest:
    """Voluntary disruptions (node drains, upgrades) take at most one pod of a version at a time."""
    return {
        "metadata": {"name": workload_name(app.name, version.label), "namespace": app.namespace},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": version_labels(app, version)}},
    }


def service(app: AppSettings) -> Manifest:
    return {
        "metadata": {"name": app.name, "namespace": app.namespace, "labels": {"app": app.name}},
        "spec": {"ports": [{"name": "http", "port": HTTP_PORT}], "selector": {"app": app.name}},
    }


def version_service(app: AppSettings, version: AppVersion) -> Manifest:
    """One version's pods: what an HTTPRoute's weighted backendRefs point at (trafficApi gateway-api)."""
    labels = version_labels(app, version)
    return {
        "metadata": {"name": workload_name(app.name, version.label), "namespace": app.namespace, "labels": labels},
        "spec": {"ports": [{"name": "http", "port": HTTP_PORT}], "selector": labels},
    }


def peer_authentication(app: AppSettings) -> Manifest:
    """Mutual TLS only, for every workload in the app namespace."""
    return {"metadata": {"name": "default", "namespace": app.namespace}, "spec": {"mtls": {"mode": "STRICT"}}}


def destination_rule(app: AppSettings) -> Manifest:
    return {
        "metadata": {"name": f"{app.name}-dest-rule", "namespace": app.namespace},
        "spec": {
            "host": app.name,
            "subsets": [
                {"name": version.label, "labels": {"version": version.label}} for version in (app.stable, app.canary)
            ],
        },
    }


def traffic_split(app: AppSettings) -> dict[str, int]:
    """Percent of requests per version label; always sums to 100."""
    return {app.stable.label: 100 - app.canary_weight, app.canary.label: app.canary_weight}


def _role_annotations(app: AppSettings) -> dict[str, str]:
    # The annotations name the roles so a policy can tell the canary from the stable version.
    return {"canary/stable-version": app.stable.label, "canary/canary-version": app.canary.label}


def virtual_service(app: AppSettings, gateway: IngressGateway) -> Manifest:
    annotations = _role_annotations(app)
    split: Manifest = {
        "route": [
            {"destination": {"host": app.name, "subset": label}, "weight": weight}
            for label, weight in traffic_split(app).items()
        ]
    }
    if app.mirror_percent:
        split["mirror"] = {"host": app.name, "subset": app.canary.label}
        split["mirrorPercentage"] = {"value": app.mirror_percent}
    http = [split]
    if app.canary_header is not None:
        name, value = app.canary_header
        to_canary = {"destination": {"host": app.name, "subset": app.canary.label}}
        http.insert(0, {"match": [{"headers": {name: {"exact": value}}}], "route": [to_canary]})
    # `mesh` as well as the ingress gateway, so calls from inside the mesh split too.
    return {
        "metadata": {"name": f"{app.name}-virtual-svc", "namespace": app.namespace, "annotations": annotations},
        "spec": {
            "hosts": [app.name],
            "gateways": [gateway.virtual_service_ref, "mesh"],
            "http": http,
        },
    }


def _backend(app: AppSettings, version: AppVersion, weight: int | None = None) -> Manifest:
    backend: Manifest = {"name": workload_name(app.name, version.label), "port": HTTP_PORT}
    return backend if weight is None else {**backend, "weight": weight}


def http_route(app: AppSettings, gateway: IngressGateway) -> Manifest:
    """The split as the Gateway API has it: weighted backendRefs to the per-version Services."""
    annotations = {**_role_annotations(app), "canary/stable-backend": workload_name(app.name, app.stable.label)}
    weights = traffic_split(app)
    split: Manifest = {"backendRefs": [_backend(app, v, weights[v.label]) for v in (app.stable, app.canary)]}
    if app.mirror_percent:
        mirror = {"backendRef": _backend(app, app.canary), "percent": app.mirror_percent}
        split["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
    rules = [split]
    if app.canary_header is not None:
        # A rule with a header match takes precedence over one without (Gateway API route matching).
        name, value = app.canary_header
        header = {"type": "Exact", "name": name, "value": value}
        rules.insert(0, {"matches": [{"headers": [header]}], "backendRefs": [_backend(app, app.canary)]})
    # Attached to the ingress Gateway and to the app's Service (GAMMA), so calls from inside
    # the mesh split too, as the VirtualService's `mesh` gateway does.
    service = {"group": "", "kind": "Service", "name": app.name}
    return {
        "metadata": {"name": f"{app.name}-route", "namespace": app.namespace, "annotations": annotations},
        "spec": {"parentRefs": [gateway.parent_ref, service], "rules": rules},
    }
