"""The workloads layer: two versions of the app behind one Service, split by Istio."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mesh import Mesh
from mesh.gateway import GATEWAY_API, ISTIO_NETWORKING
from settings import AppSettings, workload_name
from workloads import manifests

ISTIO_SECURITY = "security.istio.io/v1"


@dataclass(frozen=True)
class CanaryAppArgs:
    settings: AppSettings
    mesh: Mesh
    """The mesh the app runs in: the app goes into its app namespace (as the mesh created or labelled
    it), the routes attach to its ingress Gateway and are of its API, the pods wait for its sidecar
    injector and the mesh objects for its CRDs."""
    spread_over_zones: bool = False
    """Spread the stable version's pods over availability zones (EKS)."""


class CanaryApp(pulumi.ComponentResource):
    """`canary:workloads:CanaryApp`: stable and canary Deployments, their Services and routing."""

    traffic_split: dict[str, int]
    """The split the settings ask for."""
    applied_split: pulumi.Output[dict[str, int]]
    """The same split, known only once the object that carries it has been applied: an update that is refused
    or fails before it leaves a stack output built from this as it was, instead of announcing a split the
    cluster does not serve."""
    deployments: dict[str, k8s.apps.v1.Deployment]
    """By version label."""
    service: k8s.core.v1.Service
    """The app's Service (`appName`), the one clients call."""
    services: dict[str, k8s.core.v1.Service]
    """By name: the app's Service and, with trafficApi gateway-api, one per version."""
    istio_objects: dict[str, k8s.apiextensions.CustomResource]
    """The mesh objects by kind (VirtualService and DestinationRule, or HTTPRoute; PeerAuthentication)."""

    def __init__(self, name: str, args: CanaryAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("canary:workloads:CanaryApp", name, None, opts)
        app, mesh = args.settings, args.mesh
        if args.spread_over_zones and app.stable.replicas < 2:
            pulumi.log.warn(
                f"stableReplicas = {app.stable.replicas}: the stable version lives in one zone and a node drain "
                "stops it; set stableReplicas to 2 or more for zone redundancy"
            )

        def in_namespace(manifest: manifests.Manifest) -> manifests.Manifest:
            return {**manifest, "metadata": {**manifest["metadata"], "namespace": mesh.app_namespace}}

        self.deployments, self.istio_objects = {}, {}
        for version in (app.stable, app.canary):
            name = workload_name(app.name, version.label)
            spread = args.spread_over_zones and version is app.stable
            manifest = in_namespace(manifests.deployment(app, version, spread_over_zones=spread))
            self.deployments[version.label] = k8s.apps.v1.Deployment(
                name,
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=mesh.sidecar_injector),
            )
            budget = in_namespace(manifests.disruption_budget(app, version))
            k8s.policy.v1.PodDisruptionBudget(
                name, metadata=budget["metadata"], spec=budget["spec"], opts=pulumi.ResourceOptions(parent=self)
            )
        gateway = mesh.ingress_gateway
        services = [manifests.service(app)]
        if gateway.gateway_api:
            services += [manifests.version_service(app, version) for version in (app.stable, app.canary)]
        self.services = {}
        for service in map(in_namespace, services):
            name = service["metadata"]["name"]
            self.services[name] = k8s.core.v1.Service(
                name, metadata=service["metadata"], spec=service["spec"], opts=pulumi.ResourceOptions(parent=self)
            )
        self.service = self.services[app.name]

        if gateway.gateway_api:
            routing = [(GATEWAY_API, "HTTPRoute", in_namespace(manifests.http_route(app, gateway)))]
        else:
            routing = [
                (ISTIO_NETWORKING, "DestinationRule", in_namespace(manifests.destination_rule(app))),
                (ISTIO_NETWORKING, "VirtualService", in_namespace(manifests.virtual_service(app, gateway))),
            ]
        mesh_objects = [
            *routing,
            (ISTIO_SECURITY, "PeerAuthentication", in_namespace(manifests.peer_authentication(app))),
        ]
        for api_version, kind, manifest in mesh_objects:
            name = manifest["metadata"]["name"]
            self.istio_objects[kind] = k8s.apiextensions.CustomResource(
                f"{app.name}-mtls" if kind == "PeerAuthentication" else name,
                api_version=api_version,
                kind=kind,
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=mesh.istio_crds),
            )

        self.traffic_split = manifests.traffic_split(app)
        carrier = self.istio_objects["HTTPRoute" if gateway.gateway_api else "VirtualService"]
        split = dict(self.traffic_split)
        # The engine answers a registration only after the step ran; in a preview that is the planned step.
        self.applied_split = carrier.urn.apply(lambda _: split)
        self.register_outputs({"traffic_split": self.applied_split})
