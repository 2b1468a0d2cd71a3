"""The app's Kubernetes and Istio objects as plain data (metadata and spec).

Pure functions of the settings, so they are validated against the Kubernetes and Istio
schemas in tests, and so a weight change provably touches only the VirtualService.
"""

from __future__ import annotations

from typing import Any

from mesh.charts import GATEWAY_SELECTOR, ISTIO_NAMESPACE, zone_spread
from settings import AppSettings, AppVersion, workload_name

GATEWAY_NAME = "default-gateway"
HTTP_PORT = 80
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


def gateway() -> Manifest:
    return {
        "metadata": {"name": GATEWAY_NAME, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "selector": GATEWAY_SELECTOR,
            "servers": [{"hosts": ["*"], "port": {"name": "http", "number": HTTP_PORT, "protocol": "HTTP"}}],
        },
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


def virtual_service(app: AppSettings) -> Manifest:
    # The annotations name the roles so a policy can tell the canary from the stable version.
    annotations = {"canary/stable-version": app.stable.label, "canary/canary-version": app.canary.label}
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
            "gateways": [f"{ISTIO_NAMESPACE}/{GATEWAY_NAME}", "mesh"],
            "http": http,
        },
    }
