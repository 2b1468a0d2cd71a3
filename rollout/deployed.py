"""What the stack really deployed, read back from its state (the engine's record of what the API server accepted).

After a failed or interrupted update the config may say one thing and the cluster serve
another; these functions read the VirtualService (or the HTTPRoute) and the Deployments in the state so the
tool can say what is served and put the config back in line with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from settings import workload_name

VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"  # trafficApi gateway-api
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _get(obj: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(key, int):
            obj = obj[key] if isinstance(obj, list) and len(obj) > key else None
        elif isinstance(obj, Mapping):
            obj = obj.get(key)
        else:
            return None
    return obj


@dataclass(frozen=True)
class Served:
    """The split a VirtualService serves: weight per version, the header route and mirroring."""

    split: dict[str, int]
    stable: str
    canary: str
    header: str | None = None
    mirror_percent: int = 0

    @property
    def canary_weight(self) -> int:
        return self.split.get(self.canary, 0)

    def describe(self) -> str:
        parts = [" / ".join(f"{version} {weight}%" for version, weight in self.split.items())]
        if self.header:
            parts.append(f"header route {self.header} -> {self.canary}")
        if self.mirror_percent:
            parts.append(f"{self.mirror_percent}% mirrored to {self.canary}")
        return ", ".join(parts)


def _percent_shares(weights: list[int]) -> list[int]:
    """Each destination's percent of the requests: both APIs split by weight / sum of the weights."""
    total = sum(weights)
    return [round(100 * weight / total) if total else 0 for weight in weights]


def _live(resources: Iterable[Mapping[str, Any]], type_: str) -> list[Mapping[str, Any]]:
    return [r for r in resources if r.get("type") == type_ and not r.get("delete")]


def served_by(resources: Iterable[Mapping[str, Any]]) -> Served | None:
    """The split of the stack's VirtualService (or HTTPRoute) as the state holds it; None before the first update."""
    resources = list(resources)
    services = _live(resources, VIRTUAL_SERVICE)
    if not services:
        routes = _live(resources, HTTP_ROUTE)
        return _served_by_http_route(routes[0].get("outputs") or {}) if routes else None
    outputs = services[0].get("outputs") or {}
    annotations = _get(outputs, "metadata", "annotations") or {}
    header, split, mirror = None, {}, 0
    for http in _get(outputs, "spec", "http") or []:
        if http.get("match"):
            headers = _get(http, "match", 0, "headers") or {}
            header = next(iter(headers), None)
            continue
        routes = http.get("route") or []
        # Istio: a lone destination takes every request whatever its weight; beside others, no weight is 0.
        weights = [100] if len(routes) == 1 else [int(route.get("weight", 0)) for route in routes]
        subsets = [str(_get(route, "destination", "subset")) for route in routes]
        split = dict(zip(subsets, _percent_shares(weights), strict=True))
        # Istio mirrors every request when a mirror has no mirrorPercentage.
        mirror = int(_get(http, "mirrorPercentage", "value") or 100) if http.get("mirror") else 0
    stable = str(annotations.get("canary/stable-version", ""))
    canary = str(annotations.get("canary/canary-version", ""))
    return Served(split, stable, canary, header, mirror)


def _route_app(route: Mapping[str, Any]) -> str:
    """The app an HTTPRoute splits: the Service it is attached to (GAMMA)."""
    parents = _get(route, "spec", "parentRefs") or []
    return str(next((p.get("name") for p in parents if p.get("kind") == "Service"), ""))


def _version_of(app: str, service: str) -> str:
    """The version label of a backend Service named by workload_name(app, version)."""
    return service.removeprefix(workload_name(app, ""))


def _served_by_http_route(route: Mapping[str, Any]) -> Served:
    """An HTTPRoute's split: weighted backendRefs to the Services `<app>-<version>`."""
    annotations = _get(route, "metadata", "annotations") or {}
    app = _route_app(route)
    header, split, mirror = None, {}, 0
    for rule in _get(route, "spec", "rules") or []:
        # The API server gives every rule a match (path prefix /): the header route is the one matching headers.
        if headers := [h for m in rule.get("matches") or [] for h in m.get("headers") or []]:
            header = headers[0].get("name")
            continue
        backends = rule.get("backendRefs") or []
        # The Gateway API: no weight is weight 1, and a weight 0 backend gets nothing (a lone one too).
        weights = [int(backend.get("weight", 1)) for backend in backends]
        versions = [_version_of(app, str(backend.get("name", ""))) for backend in backends]
        split = dict(zip(versions, _percent_shares(weights), strict=True))
        mirrors = [f for f in rule.get("filters") or [] if f.get("type") == "RequestMirror"]
        # The Gateway API mirrors every request when a RequestMirror has no percent (nor fraction).
        mirror = int(_get(mirrors[0], "requestMirror", "percent") or 100) if mirrors else 0
    stable = str(annotations.get("canary/stable-version", ""))
    canary = str(annotations.get("canary/canary-version", ""))
    return Served(split, stable, canary, header, mirror)


def deployed_config(resources: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The stack config keys whose deployed values the state tells: the split, the roles, replicas and images."""
    resources = list(resources)
    split = served_by(resources)
    if split is None:
        return {}
    config = {
        "canaryWeight": str(split.canary_weight),
        "canaryHeaderName": split.header or "",
        "mirrorPercent": str(split.mirror_percent),
        "stableVersion": split.stable,
        "canaryVersion": split.canary,
    }
    services = _live(resources, VIRTUAL_SERVICE)
    routes = _live(resources, HTTP_ROUTE)
    app = (
        _get(services[0].get("outputs"), "spec", "hosts", 0) if services else _route_app(routes[0].get("outputs") or {})
    )
    deployments = {_get(d.get("outputs"), "metadata", "name"): d.get("outputs") for d in _live(resources, DEPLOYMENT)}
    for role, version in (("stable", split.stable), ("canary", split.canary)):
        deployment = deployments.get(workload_name(app, version))
        if deployment is None:
            continue
        replicas = _get(deployment, "spec", "replicas")
        if isinstance(replicas, int | float):  # state JSON numbers may come back as floats
            config[f"{role}Replicas"] = str(int(replicas))
        image = _get(deployment, "spec", "template", "spec", "containers", 0, "image")
        if isinstance(image, str):  # a Deployment the state holds without its containers tells no image
            config[f"{role}Image"] = image
    return config
