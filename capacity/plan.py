"""What the stack runs on the EKS node group, and what that asks of the nodes.

The pods and the CPU and memory requests every layer declares for itself (infra: EKS's
add-ons; mesh: Istio, the addons and the sidecar; workloads: the app), added up and held
against what `nodeDesiredCount` nodes offer (capacity.nodes).
The scheduler places pods by their requests, so requests are what is counted; real usage
can be higher (up to the limits) or lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import infra
import mesh
import workloads
from capacity.footprint import NO_REQUESTS, Footprint, Requests
from capacity.nodes import InstanceType, NodeCapacity, node_capacity
from settings import EksCluster, Settings

HEADROOM_WARNING = 0.20
"""Warn when less than this share of the pods, CPU or memory of the node group is left."""


MAX_NODES = 450  # the largest nodeDesiredCount settings accept


ADDONS = ("prometheus", "grafana", "kiali")


NEEDS_PROMETHEUS = ("grafana", "kiali")  # settings refuse them without prometheus


def stack_footprint(settings: Settings) -> tuple[Footprint, ...]:
    """Every layer's footprint, as each layer declares it from what it installs."""
    on_eks = isinstance(settings.cluster, EksCluster)
    return (
        *infra.footprint(settings.cluster),
        *mesh.footprint(settings.mesh, on_eks),
        *workloads.footprint(settings.app),
    )


def _placed(footprints: tuple[Footprint, ...], node_count: int) -> tuple[Footprint, ...]:
    """The pods as they land on `node_count` nodes: a DaemonSet pod per node, the sidecar in each injected pod."""
    sidecar = sum((item.pod for item in footprints if item.sidecar), NO_REQUESTS)
    placed = []
    for item in footprints:
        if item.sidecar:
            continue
        if item.per_node:
            item = replace(item, pods=node_count, note="one per node")
        if item.injected:  # no sidecar declared: ambient mode, where ztunnel and the waypoint carry the traffic
            note = f"app {item.pod} + istio-proxy sidecar {sidecar}" if sidecar != NO_REQUESTS else "no sidecar"
            item = replace(item, pod=item.pod + sidecar, note=note, injected=False)
        placed.append(item)
    return tuple(placed)


@dataclass(frozen=True)
class CapacityPlan:
    """What the stack needs against what `node_count` nodes of `node.instance_type` offer."""

    instance: InstanceType
    node_count: int
    prefix_delegation: bool
    items: tuple[Footprint, ...]

    @property
    def node(self) -> NodeCapacity:
        return node_capacity(self.instance, self.prefix_delegation)

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
    def too_big_for_a_node(self) -> tuple[Footprint, ...]:
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
        # (room - used) / room, not 1 - used / room: 88 of 110 pods is 0.2 exactly, not 0.19999999999999996.
        return {
            "pods": (self.node.max_pods - self.pods_per_node) / self.node.max_pods,
            "cpu": (self.capacity.cpu_m - self.needed.cpu_m) / self.capacity.cpu_m,
            "memory": (self.capacity.memory_mib - self.needed.memory_mib) / self.capacity.memory_mib,
        }


def plan_for(
    instance: InstanceType, node_count: int, prefix_delegation: bool, footprints: Sequence[Footprint]
) -> CapacityPlan:
    return CapacityPlan(instance, node_count, prefix_delegation, _placed(tuple(footprints), node_count))


def plan_capacity(
    settings: Settings, instance: InstanceType, prefix_delegation: bool | None = None
) -> CapacityPlan | None:
    """What the stack needs against nodeDesiredCount nodes of `instance`; None in existing-cluster mode.

    `prefix_delegation` defaults to the vpcCniPrefixDelegation setting."""
    if not isinstance(settings.cluster, EksCluster):
        return None  # the nodes of an existing cluster are not known here
    delegation = settings.cluster.prefix_delegation if prefix_delegation is None else prefix_delegation
    return plan_for(instance, settings.cluster.node_group.desired_count, delegation, stack_footprint(settings))
