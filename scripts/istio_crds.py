"""CustomResourceDefinitions for the three Istio kinds the app uses, as Istio's base chart has them.

Group, kinds, names, scope, served versions (v1 the storage version, v1beta1 and
v1alpha3 served) and the status subresource are Istio's. The schema keeps every field
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
    "Gateway": ("gateways", "gw"),
    "DestinationRule": ("destinationrules", "dr"),
    "VirtualService": ("virtualservices", "vs"),
}


def istio_crd(kind: str) -> dict[str, Any]:
    plural, short_name = KINDS[kind]
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
        "metadata": {"name": f"{plural}.networking.istio.io", "labels": {"app": "istio-pilot"}},
        "spec": {
            "group": "networking.istio.io",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["istio-io", "networking-istio-io"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == "v1",
                    "schema": schema,
                    "subresources": {"status": {}},
                }
                for version in ("v1", "v1alpha3", "v1beta1")
            ],
        },
    }


def istio_crds() -> list[dict[str, Any]]:
    return [istio_crd(kind) for kind in KINDS]


if __name__ == "__main__":
    # `python scripts/istio_crds.py | kubectl apply -f -`
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [*istio_crds(), namespace]}, indent=2))
