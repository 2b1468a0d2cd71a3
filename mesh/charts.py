"""Pinned Helm charts of the mesh and the values that wire them together.

Istio's charts follow the `istioVersion` setting; the addon charts are pinned to the
versions Istio 1.31's own addon samples are rendered from (manifests/addons/gen.sh), so
the four are known to work together. Values are pure data, unit-tested as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from settings import IngressServiceType

ISTIO_NAMESPACE = "istio-system"
ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
INGRESS_GATEWAY = "istio-ingressgateway"
INGRESS_GATEWAY_LABEL = "ingressgateway"  # pods carry istio=ingressgateway, as the seed's Gateway selects

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
        "gateway": Chart(INGRESS_GATEWAY, "gateway", ISTIO_CHARTS, version),
    }


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


def istiod_values() -> dict[str, Any]:
    return {"global": {"istioNamespace": ISTIO_NAMESPACE}}


def gateway_values(service_type: IngressServiceType, on_eks: bool) -> dict[str, Any]:
    annotations = {}
    if on_eks and service_type == "LoadBalancer":
        # An internet-facing NLB from the AWS cloud controller, spread over all zones.
        annotations = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
            "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
        }
    return {
        "labels": {"istio": INGRESS_GATEWAY_LABEL, "app": INGRESS_GATEWAY},
        "service": {"type": service_type, "annotations": annotations},
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
            "persistentVolume": {"enabled": False},
            "service": {"servicePort": PROMETHEUS_PORT},
            "global": {"scrape_interval": "15s"},
        },
    }


def prometheus_url() -> str:
    return f"http://prometheus.{ISTIO_NAMESPACE}:{PROMETHEUS_PORT}"


def grafana_url() -> str:
    return f"http://grafana.{ISTIO_NAMESPACE}:{GRAFANA_PORT}"


def grafana_values(istio_version: str) -> dict[str, Any]:
    source = f"https://raw.githubusercontent.com/istio/istio/{istio_version}/manifests/addons/dashboards"
    return {
        "podLabels": NOT_IN_MESH,
        "testFramework": {"enabled": False},
        "service": {"type": "ClusterIP", "port": GRAFANA_PORT},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
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
                "providers": [
                    {
                        "name": "istio",
                        "orgId": 1,
                        "folder": "istio",
                        "type": "file",
                        "disableDeletion": False,
                        "options": {"path": "/var/lib/grafana/dashboards/istio"},
                    }
                ],
            }
        },
        "dashboards": {
            "istio": {
                name: {"url": f"{source}/{file}", "datasource": "Prometheus"} for name, file in ISTIO_DASHBOARDS.items()
            }
        },
    }


def kiali_values(grafana_enabled: bool) -> dict[str, Any]:
    return {
        "fullnameOverride": "kiali",
        # Sign in with a service-account token, not anonymously: Kiali can change mesh config.
        "auth": {"strategy": "token"},
        "deployment": {"pod_labels": NOT_IN_MESH, "ingress": {"enabled": False}},
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
