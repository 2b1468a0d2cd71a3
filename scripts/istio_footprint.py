"""What a running Istio leaves in a cluster besides its CRDs: the istio-system namespace and
the GatewayClasses istiod creates.

Used where Istio's charts cannot be installed (no chart repository offline): the local
cluster gets Istio's and the Gateway API's real CRDs from `scripts/toolchain --print-crds`
(their schemas validate every object), then this, for `kubectl apply -f -`
(scripts/try-local and the end-to-end tests).

istiod creates the GatewayClasses itself once it runs (pilot/pkg/config/kube/gatewaycommon,
classinfo.go: `istio` for gateways, `istio-waypoint` when ambient waypoints are on, the
default); with no istiod here they are applied as istiod would write them.
"""

from __future__ import annotations

import json
from typing import Any

ISTIO_NAMESPACE = "istio-system"
GATEWAY_CLASSES = {
    # name: (controllerName, description), as istiod 1.31 writes them
    "istio": ("istio.io/gateway-controller", "The default Istio GatewayClass"),
    "istio-waypoint": ("istio.io/mesh-controller", "The default Istio waypoint GatewayClass"),
}


def footprint() -> list[dict[str, Any]]:
    classes = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": name},
            "spec": {"controllerName": controller, "description": description},
        }
        for name, (controller, description) in GATEWAY_CLASSES.items()
    ]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NAMESPACE}}, *classes]


if __name__ == "__main__":
    # `python scripts/istio_footprint.py | kubectl apply -f -`, after the CRDs are Established
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": footprint()}, indent=2))
