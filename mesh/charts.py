"""Pinned Helm charts of the mesh and the values that wire them together.

Istio's charts follow the `istioVersion` setting; the addon charts are pinned to the
versions Istio 1.31's own addon samples are rendered from (manifests/addons/gen.sh), so
the four are known to work together. Values are pure data, unit-tested as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from settings import DataplaneMode, IngressServiceType

ISTIO_NAMESPACE = "istio-system"
ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
INGRESS_GATEWAY = "istio-ingressgateway"
INGRESS_GATEWAY_LABEL = "ingressgateway"  # pods carry istio=ingressgateway, as the seed's Gateway selects
ZONE = "topology.kubernetes.io/zone"

PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
KIALI_PORT = 20001


@dataclass(frozen=True)
class Chart:
    release: str
    chart: str
    repo: str
    version: str


def istio_charts(version: str) -> dict[str, Chart]:
    return {
        "base": Chart("istio-base", "base", ISTIO_CHARTS, version),
        "istiod": Chart("istiod", "istiod", ISTIO_CHARTS, version),
        "cni": Chart("istio-cni", "cni", ISTIO_CHARTS, version),
        "gateway": Chart(INGRESS_GATEWAY, "gateway", ISTIO_CHARTS, version),
        "ztunnel": Chart("ztunnel", "ztunnel", ISTIO_CHARTS, version),
    }


# Istio's charts (cni, istiod, ztunnel) read a `profile` value and merge the chart's own
# files/profile-<name>.yaml under the user's values (templates/zzz_profile.yaml). The ambient
# profile turns on PILOT_ENABLE_AMBIENT in istiod, cni.ambient.enabled in the CNI node agent
# and HBONE for proxies, as Istio's Helm install of ambient mode does (--set profile=ambient).
AMBIENT_PROFILE = {"profile": "ambient"}


# The Gateway API release Istio 1.31 is built against (sigs.k8s.io/gateway-api in the go.mod of
# istio.io/istio on its 1.31 line). Its CRDs are not in Istio's charts: the stack installs the
# release's standard channel for trafficApi gateway-api (scripts/toolchain reads this pin too).
GATEWAY_API_VERSION = "v1.6.0"
GATEWAY_API_CRDS = (
    f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml"
)

PROMETHEUS = Chart("prometheus", "prometheus", "https://prometheus-community.github.io/helm-charts", "28.13.0")
GRAFANA = Chart("grafana", "grafana", "https://grafana.github.io/helm-charts", "9.2.2")
KIALI = Chart("kiali", "kiali-server", "https://kiali.org/helm-charts", "2.27.0")

# Istio's dashboards, taken from the Istio release that is installed so they match its metrics.
ISTIO_DASHBOARDS = {
    "istio-mesh": "istio-mesh-dashboard.gen.json",
    "istio-service": "istio-service-dashboard.json",
    "istio-workload": "istio-workload-dashboard.json",
    "istio-performance": "istio-performance-dashboard.json",
    "istio-control-plane": "pilot-dashboard.gen.json",
}
NOT_IN_MESH = {"sidecar.istio.io/inject": "false"}


def base_values() -> dict[str, Any]:
    return {"defaultRevision": "default"}


def zone_spread(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Spread replicas over availability zones when the nodes allow, never blocking scheduling."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }
    ]


HA_REPLICAS = 2
"""istiod and gateway replicas on EKS: with the charts' PodDisruptionBudgets (minAvailable 1)
a node can then drain during node group updates while the mesh keeps serving."""
CHART_REPLICAS = 1
"""istiod's and the gateway's replicas when not set: their charts' replicaCount / autoscaling minimum."""

# Explicit requests for every pod the mesh installs: what the scheduler reserves for it, and
# what the capacity preflight counts (mesh.footprint reads them back from these values).
# istiod, the gateway, the CNI agent and the sidecar keep Istio's chart defaults; Prometheus
# and Grafana set none in their charts, so these are ours; Kiali keeps its chart's.
ISTIOD_REQUESTS = {"cpu": "500m", "memory": "2048Mi"}
GATEWAY_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
CNI_REQUESTS = {"cpu": "100m", "memory": "100Mi"}
SIDECAR_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
PROMETHEUS_REQUESTS = {"cpu": "500m", "memory": "512Mi"}
GRAFANA_REQUESTS = {"cpu": "250m", "memory": "256Mi"}
KIALI_REQUESTS = {"cpu": "10m", "memory": "64Mi"}
ZTUNNEL_REQUESTS = {"cpu": "200m", "memory": "512Mi"}  # ambient mode; the ztunnel chart's default
WAYPOINT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}  # ambient mode; istiod's global.waypoint default


def cni_values(dataplane_mode: DataplaneMode = "sidecar") -> dict[str, Any]:
    # Chained after the VPC CNI on EKS (the chart's defaults); it sets up each pod's traffic
    # redirection, so pods need no privileged istio-init container. In ambient mode it
    # redirects the pods' traffic to the node's ztunnel instead.
    values: dict[str, Any] = {"resources": {"requests": CNI_REQUESTS}}
    return values | AMBIENT_PROFILE if dataplane_mode == "ambient" else values


def ztunnel_values() -> dict[str, Any]:
    return {**AMBIENT_PROFILE, "resources": {"requests": ZTUNNEL_REQUESTS}}


def istiod_values(on_eks: bool, dataplane_mode: DataplaneMode = "sidecar") -> dict[str, Any]:
    # Sidecars rely on the Istio CNI node agent instead of an istio-init container with
    # NET_ADMIN and NET_RAW: the app namespace can then enforce Pod Security "baseline".
    values: dict[str, Any] = {
        "global": {"istioNamespace": ISTIO_NAMESPACE, "proxy": {"resources": {"requests": SIDECAR_REQUESTS}}},
        "cni": {"enabled": True},
        "resources": {"requests": ISTIOD_REQUESTS},
    }
    if dataplane_mode == "ambient":
        values |= AMBIENT_PROFILE
        # istiod deploys each waypoint from its gateway template, with these resources.
        values["global"]["waypoint"] = {"resources": {"requests": WAYPOINT_REQUESTS}}
    if on_eks:
        values |= {
            "autoscaleMin": HA_REPLICAS,
            "replicaCount": HA_REPLICAS,
            "topologySpreadConstraints": zone_spread({"app": "istiod"}),
        }
    return values


GATEWAY_SELECTOR = {"istio": INGRESS_GATEWAY_LABEL}
"""What the ingress Gateway object selects: the label the seed's Gateway uses."""
GATEWAY_LABELS = {**GATEWAY_SELECTOR, "app": INGRESS_GATEWAY}


def gateway_values(on_eks: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "labels": GATEWAY_LABELS,
        "service": {"type": "None"},  # the Service is declared below
        "resources": {"requests": GATEWAY_REQUESTS},
    }
    if on_eks:
        values |= {
            "autoscaling": {"minReplicas": HA_REPLICAS},
            "podDisruptionBudget": {"minAvailable": 1},
            "topologySpreadConstraints": zone_spread(GATEWAY_LABELS),
        }
    return values


def ingress_service(service_type: IngressServiceType, on_eks: bool) -> dict[str, Any]:
    """The ingress gateway's Service, with the ports of Istio's gateway chart."""
    annotations = {}
    if on_eks and service_type == "LoadBalancer":
        # An internet-facing NLB from the AWS cloud controller, spread over all zones.
        annotations = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
            "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
        }
    ports = [("status-port", 15021), ("http2", 80), ("https", 443)]
    return {
        "metadata": {
            "name": INGRESS_GATEWAY,
            "namespace": ISTIO_NAMESPACE,
            "labels": GATEWAY_LABELS,
            "annotations": annotations,
        },
        "spec": {
            "type": service_type,
            "selector": GATEWAY_LABELS,
            "ports": [{"name": name, "port": port, "targetPort": port, "protocol": "TCP"} for name, port in ports],
        },
    }


def prometheus_values() -> dict[str, Any]:
    # Istio's sidecars and gateways carry prometheus.io/scrape annotations, which the
    # chart's kubernetes-pods job scrapes; the rest of the chart is not needed.
    return {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "server": {
            "fullnameOverride": "prometheus",
            "podLabels": NOT_IN_MESH,
            "resources": {"requests": PROMETHEUS_REQUESTS},
            "persistentVolume": {"enabled": False},
            "service": {"servicePort": PROMETHEUS_PORT},
            "global": {"scrape_interval": "15s"},
        },
    }


def prometheus_url() -> str:
    return f"http://prometheus.{ISTIO_NAMESPACE}:{PROMETHEUS_PORT}"


def grafana_url() -> str:
    return f"http://grafana.{ISTIO_NAMESPACE}:{GRAFANA_PORT}"


GRAFANA_ADMIN_SECRET = "grafana-admin"
CANARY_DASHBOARD_CONFIGMAP = "canary-grafana-dashboard"
GRAFANA_ADMIN_USER = "admin"


def _dashboard_provider(name: str) -> dict[str, Any]:
    """The provider that shows the dashboards of `dashboards.<name>` and `dashboardsConfigMaps.<name>`
    as folder <name>: the chart puts their files where its values.yaml says the provider's path must be."""
    return {
        "name": name,
        "orgId": 1,
        "folder": name,
        "type": "file",
        "disableDeletion": False,
        "options": {"path": f"/var/lib/grafana/dashboards/{name}"},
    }


def grafana_values(istio_version: str) -> dict[str, Any]:
    source = f"https://raw.githubusercontent.com/istio/istio/{istio_version}/manifests/addons/dashboards"
    return {
        "podLabels": NOT_IN_MESH,
        "resources": {"requests": GRAFANA_REQUESTS},
        # The admin password is generated by the stack and kept as a stack secret.
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "testFramework": {"enabled": False},
        "service": {"type": "ClusterIP", "port": GRAFANA_PORT},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "uid": "prometheus",
                        "type": "prometheus",
                        "url": prometheus_url(),
                        "access": "proxy",
                        "isDefault": True,
                        "jsonData": {"timeInterval": "15s"},
                    }
                ],
            }
        },
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [_dashboard_provider(folder) for folder in ("istio", "canary")],
            }
        },
        "dashboardsConfigMaps": {"canary": CANARY_DASHBOARD_CONFIGMAP},
        "dashboards": {
            "istio": {
                name: {"url": f"{source}/{file}", "datasource": "Prometheus"} for name, file in ISTIO_DASHBOARDS.items()
            }
        },
    }


def kiali_values(grafana_enabled: bool) -> dict[str, Any]:
    # The chart has no fullnameOverride: its objects are named by deployment.instance_name ("kiali").
    return {
        # Sign in with a service-account token, not anonymously: Kiali can change mesh config.
        "auth": {"strategy": "token"},
        "deployment": {
            "pod_labels": NOT_IN_MESH,
            "ingress": {"enabled": False},
            "resources": {"requests": KIALI_REQUESTS},
        },
        "external_services": {
            "prometheus": {"url": prometheus_url()},
            "grafana": {
                "enabled": grafana_enabled,
                "internal_url": grafana_url(),
                "external_url": f"http://localhost:{GRAFANA_PORT}",
            },
            "tracing": {"enabled": False},
        },
    }
