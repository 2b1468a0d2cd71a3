"""CustomResourceDefinitions for the Istio kinds the stack uses, as Istio's base chart has them.

Groups, kinds, names, scope, served versions (v1 the storage version) and the status
subresource are Istio's. The schema keeps every field
(Istio's full OpenAPI schema is checked in the unit tier against Istio's own models);
here the point is that the API server accepts and stores networking.istio.io/v1 objects.

Used where Istio's charts cannot be installed (no chart repository offline): run as a
script it prints these CRDs and the istio-system namespace, what an Istio install
leaves behind, for `kubectl apply -f -` (scripts/try-local and the end-to-end tests).
"""

from __future__ import annotations

import json
from typing import Any

KINDS = {
    # kind: (group, plural, short name, served versions; the first is the storage version)
    "Gateway": ("networking", "gateways", "gw", ("v1", "v1alpha3", "v1beta1")),
    "DestinationRule": ("networking", "destinationrules", "dr", ("v1", "v1alpha3", "v1beta1")),
    "VirtualService": ("networking", "virtualservices", "vs", ("v1", "v1alpha3", "v1beta1")),
    "PeerAuthentication": ("security", "peerauthentications", "pa", ("v1", "v1beta1")),
}


def istio_crd(kind: str) -> dict[str, Any]:
    group, plural, short_name, versions = KINDS[kind]
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}.istio.io", "labels": {"app": "istio-pilot"}},
        "spec": {
            "group": f"{group}.istio.io",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["istio-io", f"{group}-istio-io"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == versions[0],
                    "schema": schema,
                    "subresources": {"status": {}},
                }
                for version in versions
            ],
        },
    }


def istio_crds() -> list[dict[str, Any]]:
    return [istio_crd(kind) for kind in KINDS]


if __name__ == "__main__":
    # `python scripts/istio_crds.py | kubectl apply -f -`
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [*istio_crds(), namespace]}, indent=2))
