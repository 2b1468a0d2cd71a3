"""The local cluster validates Istio and Gateway API objects with the upstream schemas.

Its CRDs are Istio's and the Gateway API's own (scripts/toolchain --print-crds), so a
misspelled field or an out-of-range value is refused by the real API server, as in a
cluster with Istio. Server-side dry runs: the API server validates and stores nothing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.e2e.cli import Kubectl

VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "schema-check", "namespace": "default"},
    "spec": {
        "hosts": ["nginx"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "nginx", "subset": "v1"}, "weight": 90},
                    {"destination": {"host": "nginx", "subset": "v2"}, "weight": 10},
                ]
            }
        ],
    },
}
HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "schema-check", "namespace": "default"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "nginx"}],
        "rules": [
            {
                "backendRefs": [
                    {"name": "nginx-v1", "port": 80, "weight": 90},
                    {"name": "nginx-v2", "port": 80, "weight": 10},
                ]
            }
        ],
    },
}


def dry_run(cluster: Kubectl, manifest: dict[str, Any]) -> tuple[bool, str]:
    result = cluster("create", "--dry-run=server", "-f", "-", check=False, stdin=json.dumps(manifest))
    return result.returncode == 0, result.stderr


def first_route(manifest: dict[str, Any]) -> dict[str, Any]:
    if manifest["kind"] == "VirtualService":
        route: dict[str, Any] = manifest["spec"]["http"][0]["route"][1]
    else:
        route = manifest["spec"]["rules"][0]["backendRefs"][1]
    return route


@pytest.mark.parametrize("manifest", [VIRTUAL_SERVICE, HTTP_ROUTE], ids=["VirtualService", "HTTPRoute"])
def test_a_valid_object_is_accepted(cluster: Kubectl, manifest: dict[str, Any]) -> None:
    accepted, error = dry_run(cluster, manifest)
    assert accepted, error


@pytest.mark.parametrize("manifest", [VIRTUAL_SERVICE, HTTP_ROUTE], ids=["VirtualService", "HTTPRoute"])
def test_a_misspelled_field_is_refused(cluster: Kubectl, manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    route = first_route(broken)
    route["wieght"] = route.pop("weight")
    accepted, error = dry_run(cluster, broken)
    assert not accepted
    assert 'unknown field "spec.' in error and "wieght" in error, error


@pytest.mark.parametrize("weight", [-10, 1_000_001], ids=["negative", "over-1000000"])
def test_an_out_of_range_http_route_weight_is_refused(cluster: Kubectl, weight: int) -> None:
    broken = copy.deepcopy(HTTP_ROUTE)
    first_route(broken)["weight"] = weight
    accepted, error = dry_run(cluster, broken)
    assert not accepted
    assert "backendRefs[1].weight: Invalid value" in error, error


def test_an_out_of_range_number_in_a_virtual_service_is_refused(cluster: Kubectl) -> None:
    broken = copy.deepcopy(VIRTUAL_SERVICE)
    first_route(broken)["destination"]["port"] = {"number": 4_294_967_296}
    accepted, error = dry_run(cluster, broken)
    assert not accepted
    assert "destination.port.number: Invalid value: 4294967296" in error, error


def test_istio_leaves_the_virtual_service_weight_range_to_its_webhook(cluster: Kubectl) -> None:
    """Istio's CRD gives VirtualService weights no bounds: istiod's validating webhook refuses a negative
    one in a real cluster (no istiod runs here). The stack's settings (canaryWeight 0-100) and the policy
    pack's traffic-split rule refuse it before it is sent; this test notices when Istio's schema changes."""
    broken = copy.deepcopy(VIRTUAL_SERVICE)
    first_route(broken)["weight"] = -10
    accepted, error = dry_run(cluster, broken)
    assert accepted, error


def test_an_istio_gateway_with_a_misspelled_field_is_refused(cluster: Kubectl) -> None:
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "schema-check", "namespace": "istio-system"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{"hosts": ["*"], "prot": {"number": 80}}]},
    }
    accepted, error = dry_run(cluster, gateway)
    assert not accepted
    assert "prot" in error, error
