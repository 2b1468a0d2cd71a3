"""What the app runs on the nodes: each version's Deployment, with the requests its manifest declares."""

from __future__ import annotations

from capacity.footprint import NO_REQUESTS, Footprint, requests_of
from settings import AppSettings
from workloads import manifests


def footprint(app: AppSettings) -> list[Footprint]:
    """One entry per version; its pods also carry the mesh's sidecar (`injected`)."""
    items = []
    for version in (app.stable, app.canary):
        manifest = manifests.deployment(app, version)
        containers = manifest["spec"]["template"]["spec"]["containers"]
        pod = sum((requests_of(container.get("resources")) for container in containers), NO_REQUESTS)
        items.append(Footprint(manifest["metadata"]["name"], manifest["spec"]["replicas"], pod, injected=True))
    return items
