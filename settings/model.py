"""The typed settings every layer receives: what the stack config says, validated."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import pulumi

WORLD = "0.0.0.0/0"
ClusterMode = Literal["eks", "existing"]
IngressServiceType = Literal["LoadBalancer", "NodePort", "ClusterIP"]
TrafficApi = Literal["istio", "gateway-api"]
DataplaneMode = Literal["sidecar", "ambient"]


class SettingsError(pulumi.RunError):
    """Invalid stack configuration; shown to the user without a stack trace."""


class ConfigSource(Protocol):
    """What settings need from `pulumi.Config`: the raw string of a key, or None."""

    def get(self, key: str) -> str | None: ...


@runtime_checkable
class ListedConfigSource(ConfigSource, Protocol):
    """A ConfigSource that also lists the keys set in the project's namespace, so typos are caught."""

    def keys(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class Vpc:
    """Either a dedicated VPC (cidr, zone_count) or an existing one (vpc_id and subnets)."""

    cidr: str
    zone_count: int
    vpc_id: str | None
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class NodeGroup:
    name: str
    instance_type: str
    desired_count: int
    min_count: int
    max_count: int


@dataclass(frozen=True)
class EksCluster:
    name: str
    kubernetes_version: str
    vpc: Vpc
    node_group: NodeGroup
    admin_arns: tuple[str, ...]
    viewer_arns: tuple[str, ...]
    """Principals in the preview group (infra/preview.py: read, dry runs only), e.g. the role CI previews with."""
    prefix_delegation: bool
    """VPC CNI prefix delegation: far more pods per node (t3a.medium: 110 instead of 17)."""
    api_access_cidrs: tuple[str, ...]
    """Networks that reach the public API endpoint; empty turns the public endpoint off."""

    @property
    def api_open_to_world(self) -> bool:
        return WORLD in self.api_access_cidrs


@dataclass(frozen=True)
class ExistingCluster:
    """A cluster made elsewhere, reached through a kubeconfig file and context (None: kubectl's defaults)."""

    kubeconfig: str | None
    context: str | None
    ignored: tuple[str, ...] = ()
    """EKS-only settings this stack sets (to other than their defaults): nothing uses them in this mode."""


@dataclass(frozen=True)
class MeshSettings:
    install_istio: bool
    istio_version: str
    ingress_service_type: IngressServiceType
    addons: Addons
    app_namespace: str
    app_name: str
    traffic_api: TrafficApi = "istio"
    """Which API carries the ingress gateway and the split: Istio's or the Kubernetes Gateway API."""
    dataplane_mode: DataplaneMode = "sidecar"
    """Sidecars in the app's pods, or ambient: ztunnel per node and a waypoint for the namespace."""

    @property
    def metrics_reporter(self) -> str:
        """The `reporter` label of the app's request metrics (istio_requests_total and its latency histogram).

        With sidecars the server-side sidecar of each pod reports them (reporter="destination"). In
        ambient mode pods have no proxy: ztunnel reports TCP metrics only, and the L7 series come from
        the waypoint, whose stats filter istiod sets to Reporter SERVER_GATEWAY (pilot/pkg/model/telemetry.go
        in istio.io/istio), exported as reporter="waypoint" with the same destination_workload(_namespace),
        destination_app and destination_version labels (tests/integration/ambient/baseline_test.go).
        """
        return "waypoint" if self.dataplane_mode == "ambient" else "destination"


@dataclass(frozen=True)
class Addons:
    prometheus: bool
    grafana: bool
    kiali: bool


def workload_name(app_name: str, version_label: str) -> str:
    """`<app>-<version>`: one version's Deployment, its pods' workload in Istio's metrics (destination_workload)."""
    return f"{app_name}-{version_label}"


@dataclass(frozen=True)
class AppVersion:
    """One version of the app: its `version` label, image and replica count."""

    label: str
    image: str
    replicas: int


@dataclass(frozen=True)
class AppSettings:
    name: str
    namespace: str
    stable: AppVersion
    canary: AppVersion
    canary_weight: int
    canary_header: tuple[str, str] | None = None
    """(name, value): requests carrying this header go to the canary whatever the weight."""
    mirror_percent: int = 0
    """Percent of the stable version's requests copied to the canary (responses discarded)."""


@dataclass(frozen=True)
class Settings:
    cluster: EksCluster | ExistingCluster
    mesh: MeshSettings
    app: AppSettings
