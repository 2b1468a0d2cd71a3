"""The ingress gateway object the app's routes attach to; the mesh owns it, as it runs the gateway.

trafficApi istio: Istio's Gateway, selecting the ingress gateway pods of Istio's `gateway`
chart (the seed's). trafficApi gateway-api: a Kubernetes Gateway API Gateway of Istio's
`istio` class, bound to the same pods: its single Hostname address names the chart's
ingress Service, which makes it a "manual deployment" for istiod (gatewaycommon.IsManaged
in istio.io/istio), so istiod deploys no second proxy and the NLB, its cleanup order and
the capacity plan stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mesh.charts import GATEWAY_SELECTOR, INGRESS_GATEWAY, ISTIO_NAMESPACE
from settings import TrafficApi

GATEWAY_NAME = "default-gateway"
HTTP_PORT = 80
ISTIO_NETWORKING = "networking.istio.io/v1"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAY_API = f"{GATEWAY_API_GROUP}/v1"
GATEWAY_CLASS = "istio"  # created by istiod (PILOT_GATEWAY_API_DEFAULT_GATEWAYCLASS_NAME)
Manifest = dict[str, Any]


@dataclass(frozen=True)
class IngressGateway:
    """How routes name the ingress gateway: which API it belongs to, its namespace and name."""

    api_version: str
    namespace: str = ISTIO_NAMESPACE
    name: str = GATEWAY_NAME

    @property
    def gateway_api(self) -> bool:
        """A Kubernetes Gateway API Gateway: routes attached to it are HTTPRoutes."""
        return self.api_version == GATEWAY_API

    @property
    def virtual_service_ref(self) -> str:
        """A VirtualService's `gateways` entry."""
        return f"{self.namespace}/{self.name}"

    @property
    def parent_ref(self) -> Manifest:
        """An HTTPRoute's `parentRefs` entry."""
        return {"group": GATEWAY_API_GROUP, "kind": "Gateway", "namespace": self.namespace, "name": self.name}


def ingress_gateway(traffic_api: TrafficApi) -> IngressGateway:
    return IngressGateway(GATEWAY_API if traffic_api == "gateway-api" else ISTIO_NETWORKING)


def istio_gateway() -> Manifest:
    return {
        "metadata": {"name": GATEWAY_NAME, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "selector": GATEWAY_SELECTOR,
            "servers": [{"hosts": ["*"], "port": {"name": "http", "number": HTTP_PORT, "protocol": "HTTP"}}],
        },
    }


def kubernetes_gateway(app_namespace: str) -> Manifest:
    return {
        "metadata": {"name": GATEWAY_NAME, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "addresses": [{"type": "Hostname", "value": f"{INGRESS_GATEWAY}.{ISTIO_NAMESPACE}.svc.cluster.local"}],
            "listeners": [
                {
                    "name": "http",
                    "port": HTTP_PORT,
                    "protocol": "HTTP",
                    # Only the app's namespace may attach routes to the public entry point.
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {"matchLabels": {"kubernetes.io/metadata.name": app_namespace}},
                        }
                    },
                }
            ],
        },
    }


def gateway_manifest(traffic_api: TrafficApi, app_namespace: str) -> Manifest:
    return kubernetes_gateway(app_namespace) if traffic_api == "gateway-api" else istio_gateway()


WAYPOINT_NAME = "waypoint"
WAYPOINT_CLASS = "istio-waypoint"  # created by istiod when ambient waypoints are enabled
HBONE_PORT = 15008


def waypoint(app_namespace: str) -> Manifest:
    """The app namespace's waypoint proxy (ambient mode), as `istioctl waypoint generate` writes it.

    It serves the namespace's Services (istio.io/waypoint-for: service), so the HTTPRoute
    attached to the app's Service is applied here, and reports the app's L7 metrics.
    """
    return {
        "metadata": {
            "name": WAYPOINT_NAME,
            "namespace": app_namespace,
            "labels": {"istio.io/waypoint-for": "service"},
        },
        "spec": {
            "gatewayClassName": WAYPOINT_CLASS,
            "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
        },
    }
