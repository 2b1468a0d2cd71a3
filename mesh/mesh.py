"""The mesh layer: Istio from its Helm charts, the dashboards, and the app namespace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mesh import canary_dashboard, charts, gateway
from settings import MeshSettings

PREEXISTING_NAMESPACES = {"default"}
INJECTION_LABEL = {"istio-injection": "enabled"}
# Ambient mode: the CNI hands the namespace's pods to ztunnel, and their Services' traffic
# goes through the namespace's waypoint (where L7 routing and metrics happen).
AMBIENT_LABELS = {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": gateway.WAYPOINT_NAME}
# Pod Security Admission: with the Istio CNI, injected pods meet "baseline" (the seed's nginx
# runs as root, so not "restricted"; that level is only warned about and audited). When Istio
# is installed outside the stack, it may use istio-init containers that baseline rejects, so
# baseline is then only warned about and audited too.
POD_SECURITY = "pod-security.kubernetes.io"
PSA_WITH_ISTIO_CNI = {
    f"{POD_SECURITY}/enforce": "baseline",
    f"{POD_SECURITY}/warn": "restricted",
    f"{POD_SECURITY}/audit": "restricted",
}
PSA_WITHOUT_ISTIO_CNI = {f"{POD_SECURITY}/warn": "baseline", f"{POD_SECURITY}/audit": "baseline"}


@dataclass(frozen=True)
class MeshArgs:
    settings: MeshSettings
    on_eks: bool
    schedulable: Sequence[pulumi.Resource] = field(default_factory=list)
    """Resources every pod needs first (the node group); the mesh is removed before them."""


class Mesh(pulumi.ComponentResource):
    """`canary:mesh:Mesh`: Istio, its ingress gateway and dashboards, and an injected app namespace."""

    istio_crds: list[pulumi.Resource]
    """What Istio and Gateway API objects (Gateway, routes, DestinationRule) must wait for."""
    ingress_gateway: gateway.IngressGateway
    """The ingress Gateway object the app's routes attach to, by API and name."""
    sidecar_injector: list[pulumi.Resource]
    """What app pods must wait for, so that every pod joins the mesh (its sidecar, or ztunnel in ambient mode)."""
    app_namespace: pulumi.Output[str]
    ingress_host: pulumi.Output[str]
    ingress_external: bool = False
    """ingress_host is the gateway's load balancer, reachable from outside (else a name inside the cluster)."""
    dashboards: dict[str, str]
    grafana_admin_password: pulumi.Output[str] | None = None
    """Generated when Grafana is installed; a stack secret."""
    app_namespace_object: k8s.core.v1.Namespace | k8s.core.v1.NamespacePatch

    def __init__(self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("canary:mesh:Mesh", name, None, opts)
        settings = args.settings
        self.istio_crds = []
        self.sidecar_injector = []
        # Annotated here, not on the class: Pulumi resolves a component class's annotations, which
        # would load the Helm SDK on every `pulumi up`, also of stacks that install no chart.
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        """The Helm releases installed, by release name."""
        self.ingress_service: k8s.core.v1.Service | None = None
        """The ingress gateway's Service (None when Istio is installed outside the stack)."""
        self.ingress_host = pulumi.Output.from_input(f"{charts.INGRESS_GATEWAY}.{charts.ISTIO_NAMESPACE}")
        self._schedulable = list(args.schedulable)

        if settings.install_istio:
            self._install_istio(name, settings, args.on_eks)
        self.ingress_gateway = self._declare_ingress_gateway(settings)
        self.dashboards = self._install_addons(settings)

        self.app_namespace = self._label_app_namespace(name, settings)
        if settings.dataplane_mode == "ambient":
            self._declare_waypoint(settings)

        self.register_outputs(
            {"app_namespace": self.app_namespace, "ingress_host": self.ingress_host, "dashboards": self.dashboards}
        )

    def _label_app_namespace(self, name: str, settings: MeshSettings) -> pulumi.Output[str]:
        """Label the app namespace into the mesh (creating it unless it is one every cluster has)."""
        namespace_name = settings.app_namespace
        mesh_labels = AMBIENT_LABELS if settings.dataplane_mode == "ambient" else INJECTION_LABEL
        labels = {**mesh_labels, **(PSA_WITH_ISTIO_CNI if settings.install_istio else PSA_WITHOUT_ISTIO_CNI)}
        opts = self._after(*self.sidecar_injector)
        namespace: k8s.core.v1.Namespace | k8s.core.v1.NamespacePatch
        if namespace_name in PREEXISTING_NAMESPACES:
            patch = k8s.meta.v1.ObjectMetaPatchArgs(name=namespace_name, labels=labels)
            namespace = k8s.core.v1.NamespacePatch(f"{name}-app-namespace", metadata=patch, opts=opts)
        else:
            metadata = k8s.meta.v1.ObjectMetaArgs(name=namespace_name, labels=labels)
            namespace = k8s.core.v1.Namespace(f"{name}-app-namespace", metadata=metadata, opts=opts)
        self.app_namespace_object = namespace
        # The name once the namespace carries its labels, so the app waits for it.
        return namespace.metadata.apply(lambda _: namespace_name)

    def _declare_ingress_gateway(self, settings: MeshSettings) -> gateway.IngressGateway:
        ref = gateway.ingress_gateway(settings.traffic_api)
        manifest = gateway.gateway_manifest(settings.traffic_api, settings.app_namespace)
        # The seed's Istio Gateway was declared by the workloads layer: the alias keeps it in place.
        moved_from_workloads = pulumi.Alias(parent=pulumi.create_urn("app", "canary:workloads:CanaryApp"))
        k8s.apiextensions.CustomResource(
            ref.name,
            api_version=ref.api_version,
            kind="Gateway",
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions.merge(
                self._after(*self.istio_crds), pulumi.ResourceOptions(aliases=[moved_from_workloads])
            ),
        )
        return ref

    def _declare_waypoint(self, settings: MeshSettings) -> None:
        manifest = gateway.waypoint(settings.app_namespace)
        k8s.apiextensions.CustomResource(
            f"{settings.app_namespace}-{gateway.WAYPOINT_NAME}",
            api_version=gateway.GATEWAY_API,
            kind="Gateway",
            metadata={**manifest["metadata"], "namespace": self.app_namespace},
            spec=manifest["spec"],
            opts=self._after(*self.istio_crds),
        )

    def _after(self, *resources: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for a child that waits for the nodes and for `resources`."""
        return pulumi.ResourceOptions(parent=self, depends_on=[*self._schedulable, *resources])

    def _release(
        self, chart: charts.Chart, values: dict[str, Any], opts: pulumi.ResourceOptions
    ) -> k8s.helm.v3.Release:
        release = self.releases[chart.release] = k8s.helm.v3.Release(
            chart.release,
            name=chart.release,
            chart=chart.chart,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
            namespace=charts.ISTIO_NAMESPACE,
            values=values,
            # Wait for every object to be ready: istiod's webhook before any injected pod.
            skip_await=False,
            opts=opts,
        )
        return release

    def _install_istio(self, name: str, settings: MeshSettings, on_eks: bool) -> None:
        istio = charts.istio_charts(settings.istio_version)
        namespace = k8s.core.v1.Namespace(
            f"{name}-istio-system", metadata=k8s.meta.v1.ObjectMetaArgs(name=charts.ISTIO_NAMESPACE), opts=self._after()
        )
        base = self._release(istio["base"], charts.base_values(), self._after(namespace))
        self.istio_crds = [base]
        if settings.traffic_api == "gateway-api":
            # Istio's charts do not carry the Gateway API's CRDs: its release's standard channel does.
            self.istio_crds.append(
                k8s.yaml.v2.ConfigFile(f"{name}-gateway-api-crds", file=charts.GATEWAY_API_CRDS, opts=self._after())
            )
        mode = settings.dataplane_mode
        cni = self._release(istio["cni"], charts.cni_values(mode), self._after(base))
        istiod = self._release(istio["istiod"], charts.istiod_values(on_eks, mode), self._after(cni))
        self.sidecar_injector = [istiod]
        if mode == "ambient":
            # App pods wait for the node proxy, so they are in the mesh from their first request.
            ztunnel = self._release(istio["ztunnel"], charts.ztunnel_values(), self._after(istiod))
            self.sidecar_injector.append(ztunnel)
        # A gateway installed before istiod runs gets no proxy image (istio#35789).
        gateway = self._release(istio["gateway"], charts.gateway_values(on_eks), self._after(istiod))
        # The gateway's Service is ours, not the chart's: Pulumi waits for a LoadBalancer's
        # address on create, and on destroy for the load balancer to be gone (the Service's
        # cleanup finalizer) before the node group, cluster and VPC are deleted.
        manifest = charts.ingress_service(settings.ingress_service_type, on_eks)
        service = self.ingress_service = k8s.core.v1.Service(
            charts.INGRESS_GATEWAY, metadata=manifest["metadata"], spec=manifest["spec"], opts=self._after(gateway)
        )
        if settings.ingress_service_type == "LoadBalancer":
            self.ingress_host = service.status.apply(_load_balancer_address)
            self.ingress_external = True

    def _grafana_admin(self) -> k8s.core.v1.Secret:
        import pulumi_random as random  # only with Grafana: one SDK less to load for every other stack

        password = random.RandomPassword(
            "grafana-admin-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.grafana_admin_password = pulumi.Output.secret(password.result)
        return k8s.core.v1.Secret(
            "grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=charts.GRAFANA_ADMIN_SECRET, namespace=charts.ISTIO_NAMESPACE),
            string_data={"admin-user": charts.GRAFANA_ADMIN_USER, "admin-password": password.result},
            opts=self._after(*self.istio_crds),
        )

    def _install_addons(self, settings: MeshSettings) -> dict[str, str]:
        addons = settings.addons
        after_istio = self._after(*self.istio_crds)
        commands = {}
        forward = f"kubectl -n {charts.ISTIO_NAMESPACE} port-forward svc/{{service}} {{port}}:{{port}}"
        if addons.prometheus:
            self._release(charts.PROMETHEUS, charts.prometheus_values(), after_istio)
            commands["prometheus"] = forward.format(service="prometheus", port=charts.PROMETHEUS_PORT)
        if addons.grafana:
            admin = self._grafana_admin()
            canary = k8s.core.v1.ConfigMap(
                charts.CANARY_DASHBOARD_CONFIGMAP,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=charts.CANARY_DASHBOARD_CONFIGMAP, namespace=charts.ISTIO_NAMESPACE
                ),
                data={
                    "canary.json": canary_dashboard.dashboard_json(
                        settings.app_name, settings.app_namespace, settings.metrics_reporter
                    )
                },
                opts=after_istio,
            )
            values = charts.grafana_values(settings.istio_version)
            self._release(charts.GRAFANA, values, self._after(*self.istio_crds, admin, canary))
            commands["grafana"] = forward.format(service="grafana", port=charts.GRAFANA_PORT)
        if addons.kiali:
            self._release(charts.KIALI, charts.kiali_values(addons.grafana), after_istio)
            commands["kiali"] = f"kubectl -n {charts.ISTIO_NAMESPACE} create token kiali && " + forward.format(
                service="kiali", port=charts.KIALI_PORT
            )
        return commands


def _load_balancer_address(status: Any) -> str:
    ingress = (status.load_balancer.ingress if status and status.load_balancer else None) or []
    if not ingress:
        return "<pending>"
    return str(ingress[0].hostname or ingress[0].ip)
