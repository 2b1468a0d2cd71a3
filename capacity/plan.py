"""What the stack runs on the EKS node group, and what that asks of the nodes.

The pods and the CPU and memory requests of the system pods, Istio, the addons and the
app (with its sidecars), held against what `nodeDesiredCount` nodes offer (capacity.nodes).
The scheduler places pods by their requests, so requests are what is counted; real usage
can be higher (up to the limits) or lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from capacity.nodes import NO_REQUESTS, NodeCapacity, Requests, mebibytes, millicores, node_capacity
from mesh.charts import HA_REPLICAS
from settings import EksCluster, NodeGroup, Settings
from workloads import manifests

HEADROOM_WARNING = 0.20
"""Warn when less than this share of the pods, CPU or memory of the node group is left."""


MAX_NODES = 450  # the largest nodeDesiredCount settings accept


SIDECAR = "istio-proxy"


# Requests per pod of everything the stack runs besides the app's own containers:
# - coredns, aws-node (VPC CNI) and kube-proxy: the EKS add-ons' requests; where an add-on
#   sets no memory request, 64Mi is assumed.
# - istiod, istio-ingressgateway, istio-proxy: the defaults of Istio's istiod and gateway
#   charts and of the injected sidecar (global.proxy.resources).
# - prometheus and grafana: their charts set no requests, so these are assumptions
#   (prometheus' configmap-reload container requests nothing); kiali: the kiali-server
#   chart's default. The addons run without sidecars.
REQUESTS: dict[str, Requests] = {
    "coredns": Requests(100, 70),
    "aws-node": Requests(25, 64),
    "kube-proxy": Requests(100, 64),
    "istio-cni": Requests(100, 100),
    "istiod": Requests(500, 2048),
    "istio-ingressgateway": Requests(100, 128),
    SIDECAR: Requests(100, 128),
    # Ambient mode: the ztunnel chart's default requests, one per node; the waypoint's are
    # istiod's global.waypoint.resources default (Istio 1.31's charts).
    "ztunnel": Requests(200, 512),
    "waypoint": Requests(100, 128),
    "prometheus": Requests(500, 512),
    "grafana": Requests(250, 256),
    "kiali": Requests(10, 64),
}


COREDNS_REPLICAS = 2


ADDONS = ("prometheus", "grafana", "kiali")


NEEDS_PROMETHEUS = ("grafana", "kiali")  # settings refuse them without prometheus


@dataclass(frozen=True)
class Item:
    """Something the stack runs: `pods` pods of `pod` requests each."""

    name: str
    pods: int
    pod: Requests
    note: str = ""
    per_node: bool = False
    """A DaemonSet: one pod on every node."""
    setting: str | None = None
    """The setting that turns it off."""

    @property
    def requests(self) -> Requests:
        return Requests(self.pods * self.pod.cpu_m, self.pods * self.pod.memory_mib)


@dataclass(frozen=True)
class CapacityPlan:
    """What the stack needs against what `node_count` nodes of `node.instance_type` offer."""

    node: NodeCapacity
    node_count: int
    prefix_delegation: bool
    items: tuple[Item, ...]

    @property
    def pods(self) -> int:
        return sum(item.pods for item in self.items)

    @property
    def needed(self) -> Requests:
        return sum((item.requests for item in self.items), NO_REQUESTS)

    @property
    def capacity_pods(self) -> int:
        return self.node_count * self.node.max_pods

    @property
    def capacity(self) -> Requests:
        return Requests(self.node_count * self.node.cpu_m, self.node_count * self.node.memory_mib)

    @property
    def per_node_daemons(self) -> Requests:
        return sum((item.pod for item in self.items if item.per_node), NO_REQUESTS)

    @property
    def pods_per_node(self) -> int:
        """Pods on the busiest node: its DaemonSet pods and an even share of the rest."""
        daemons = sum(1 for item in self.items if item.per_node) if self.node_count else 0
        others = sum(item.pods for item in self.items if not item.per_node)
        return daemons + (math.ceil(others / self.node_count) if self.node_count else others)

    @property
    def room_per_node(self) -> Requests:
        """What one node has left for other pods after its DaemonSet pods."""
        daemons = self.per_node_daemons
        return Requests(self.node.cpu_m - daemons.cpu_m, self.node.memory_mib - daemons.memory_mib)

    @property
    def too_big_for_a_node(self) -> tuple[Item, ...]:
        """Items whose single pod is larger than what a node has left after its DaemonSet pods."""
        room = self.room_per_node
        return tuple(
            item
            for item in self.items
            if item.pods
            and not item.per_node
            and (item.pod.cpu_m > room.cpu_m or item.pod.memory_mib > room.memory_mib)
        )

    @property
    def shortfall(self) -> dict[str, int]:
        """By how much each dimension is short (pods, cpu in millicores, memory in MiB); empty when it fits."""
        short = {
            "pods": self.pods - self.capacity_pods,
            "cpu": self.needed.cpu_m - self.capacity.cpu_m,
            "memory": self.needed.memory_mib - self.capacity.memory_mib,
        }
        return {dimension: amount for dimension, amount in short.items() if amount > 0}

    @property
    def fits(self) -> bool:
        return self.node_count > 0 and not self.shortfall and not self.too_big_for_a_node

    @property
    def headroom(self) -> dict[str, float]:
        """Share of each dimension left free (pods counted on the busiest node)."""
        if self.node_count == 0:
            return {"pods": 0.0, "cpu": 0.0, "memory": 0.0}
        return {
            "pods": 1 - self.pods_per_node / self.node.max_pods,
            "cpu": 1 - self.needed.cpu_m / self.capacity.cpu_m,
            "memory": 1 - self.needed.memory_mib / self.capacity.memory_mib,
        }


def _container_requests(container: dict[str, object]) -> Requests:
    resources = container.get("resources")
    requests = resources.get("requests", {}) if isinstance(resources, dict) else {}
    return Requests(millicores(requests.get("cpu", 0)), mebibytes(requests.get("memory", 0)))


def _app_items(settings: Settings) -> list[Item]:
    """The app's Deployments, with the requests their manifests declare and an Istio sidecar per pod (none in
    ambient mode)."""
    sidecar = REQUESTS[SIDECAR] if settings.mesh.dataplane_mode == "sidecar" else NO_REQUESTS
    items = []
    for version in (settings.app.stable, settings.app.canary):
        manifest = manifests.deployment(settings.app, version)
        containers = manifest["spec"]["template"]["spec"]["containers"]
        app = sum((_container_requests(container) for container in containers), NO_REQUESTS)
        items.append(
            Item(
                manifest["metadata"]["name"],
                manifest["spec"]["replicas"],
                app + sidecar,
                note=f"app {app} + {SIDECAR} sidecar {sidecar}" if sidecar != NO_REQUESTS else "ambient: no sidecar",
            )
        )
    return items


def _ambient_items(node_count: int) -> list[Item]:
    """Ambient mode's proxies: ztunnel on every node, and the app namespace's waypoint."""
    return [
        Item("ztunnel", node_count, REQUESTS["ztunnel"], note="one per node", per_node=True),
        Item("waypoint", 1, REQUESTS["waypoint"], note="the app namespace's L7 proxy"),
    ]


def _items(settings: Settings, node_count: int) -> tuple[Item, ...]:
    istio_note = "" if settings.mesh.install_istio else "installIstio = false: installed outside the stack, same nodes"
    addons = settings.mesh.addons
    return (
        Item("coredns", COREDNS_REPLICAS, REQUESTS["coredns"]),
        Item("aws-node", node_count, REQUESTS["aws-node"], note="one per node", per_node=True),
        Item("kube-proxy", node_count, REQUESTS["kube-proxy"], note="one per node", per_node=True),
        # In EKS mode this node group is the cluster's only one: Istio runs on it however it is installed.
        *(
            [Item("istio-cni", node_count, REQUESTS["istio-cni"], note="one per node", per_node=True)]
            if settings.mesh.install_istio  # an Istio installed elsewhere may not use the CNI node agent
            else []
        ),
        Item("istiod", HA_REPLICAS, REQUESTS["istiod"], note=istio_note),
        Item("istio-ingressgateway", HA_REPLICAS, REQUESTS["istio-ingressgateway"], note=istio_note),
        *(_ambient_items(node_count) if settings.mesh.dataplane_mode == "ambient" else []),
        *(
            Item(addon, 1, REQUESTS[addon], note="assumed: chart sets none" if addon != "kiali" else "", setting=addon)
            for addon in ADDONS
            if getattr(addons, addon)
        ),
        *_app_items(settings),
    )


def plan_for(instance_type: str, node_count: int, prefix_delegation: bool, items: Sequence[Item]) -> CapacityPlan:
    resized = tuple(replace(item, pods=node_count) if item.per_node else item for item in items)
    return CapacityPlan(node_capacity(instance_type, prefix_delegation), node_count, prefix_delegation, resized)


def plan_capacity(settings: Settings, prefix_delegation: bool | None = None) -> CapacityPlan | None:
    """What the stack needs against its node group at nodeDesiredCount; None in existing-cluster mode.

    `prefix_delegation` defaults to the vpcCniPrefixDelegation setting."""
    if not isinstance(settings.cluster, EksCluster):
        return None  # the nodes of an existing cluster are not known here
    delegation = settings.cluster.prefix_delegation if prefix_delegation is None else prefix_delegation
    return _plan_group(settings, settings.cluster.node_group, delegation)


def _plan_group(settings: Settings, group: NodeGroup, prefix_delegation: bool) -> CapacityPlan:
    return plan_for(group.instance_type, group.desired_count, prefix_delegation, _items(settings, group.desired_count))
