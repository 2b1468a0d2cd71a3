"""Capacity preflight: does everything the stack declares fit the EKS node group?

Pure functions of the settings, run before any resource is registered. They add up the
pods and the CPU and memory requests of the system pods, Istio, the addons and the app
(with its sidecars) and hold them against what the node group's instances offer
(capacity.nodes). The scheduler places pods by their requests, so requests are what is
counted; real usage can be higher (up to the limits) or lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

from capacity.nodes import (
    INSTANCE_TYPES,
    NO_REQUESTS,
    NodeCapacity,
    Requests,
    _family_of,
    _size_key,
    mebibytes,
    millicores,
    node_capacity,
)
from mesh.charts import HA_REPLICAS
from settings import EksCluster, NodeGroup, Settings, SettingsError
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
    """The app's Deployments, with the requests their manifests declare and an Istio sidecar per pod."""
    sidecar = REQUESTS[SIDECAR]
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
                note=f"app {app} + {SIDECAR} sidecar {sidecar}",
            )
        )
    return items


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
        *(
            Item(addon, 1, REQUESTS[addon], note="assumed: chart sets none" if addon != "kiali" else "", setting=addon)
            for addon in ADDONS
            if getattr(addons, addon)
        ),
        *_app_items(settings),
    )


def _plan(instance_type: str, node_count: int, prefix_delegation: bool, items: Sequence[Item]) -> CapacityPlan:
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
    return _plan(group.instance_type, group.desired_count, prefix_delegation, _items(settings, group.desired_count))


def check_capacity(settings: Settings, prefix_delegation: bool | None = None) -> CapacityPlan | None:
    """Raise SettingsError when the stack does not fit its node group; warn when it fits with little headroom.

    Skipped (None) in existing-cluster mode. With nodeDesiredCount 0 (the node group paused
    to save cost) nothing can run, which is a warning, not an error.
    """
    if not isinstance(settings.cluster, EksCluster):
        return None
    group = settings.cluster.node_group
    plan = plan_capacity(settings, prefix_delegation)
    assert plan is not None
    if plan.node_count == 0:
        needed = _nodes_needed(plan)
        pulumi.log.warn(
            f"nodeDesiredCount = 0: node group {group.name} has no node, so no pod of the stack can run "
            f"until it is scaled up" + (f" (to at least {needed} x {group.instance_type})" if needed else "")
        )
        return plan
    if not plan.fits:
        raise SettingsError(_failure(group, plan))
    tight = {dimension: share for dimension, share in plan.headroom.items() if share < HEADROOM_WARNING}
    if tight:
        pulumi.log.warn(_warning(group, plan, tight))
    return plan


def _nodes_needed(plan: CapacityPlan, start: int = 1) -> int | None:
    """The fewest nodes (from `start`) of the plan's instance type that hold it, or None."""
    for count in range(start, MAX_NODES + 1):
        candidate = _plan(plan.node.instance_type, count, plan.prefix_delegation, plan.items)
        if candidate.too_big_for_a_node:
            return None
        if candidate.fits:
            return count
    return None


def _amounts(requests: Requests, pods: int | None = None) -> str:
    counted = f"{pods} pod{'s' if pods != 1 else ''}, " if pods is not None else ""
    return f"{counted}{requests.cpu_m}m CPU, {requests.memory_mib} MiB memory"


def _short_text(shortfall: dict[str, int]) -> str:
    units = {"pods": " pods", "cpu": "m CPU", "memory": " MiB memory"}
    return ", ".join(f"{amount}{units[dimension]}" for dimension, amount in shortfall.items())


def _item_lines(plan: CapacityPlan) -> list[str]:
    def share(item: Item) -> float:
        return max(
            item.requests.cpu_m / max(plan.needed.cpu_m, 1), item.requests.memory_mib / max(plan.needed.memory_mib, 1)
        )

    return [
        f"    {item.name}: {item.pods} x {item.pod} = {_amounts(item.requests)}"
        + (f" ({item.note})" if item.note else "")
        for item in sorted(plan.items, key=share, reverse=True)
    ]


def _min_count_note(group: NodeGroup, needed: int | None) -> str:
    if needed is None or group.min_count >= needed:
        return ""
    return (
        f"; nodeMinCount {group.min_count} lets the group scale in below {needed} nodes, which evicts pods that then "
        f"stay Pending (nodeMinCount = {needed} prevents it)"
    )


def _fixes(group: NodeGroup, plan: CapacityPlan) -> list[str]:
    node = plan.node
    fixes = []

    needed = _nodes_needed(plan, start=plan.node_count + 1)
    if needed is None:
        big = ", ".join(f"{item.name} ({item.pod})" for item in plan.too_big_for_a_node)
        fixes.append(f"  - no node count helps: {big} does not fit one {node.instance_type} node; pick a larger type")
    else:
        raise_max = f" and nodeMaxCount = {needed}" if needed > group.max_count else ""
        fixes.append(
            f"  - nodeDesiredCount = {needed}{raise_max} ({needed} x {node.instance_type})"
            + _min_count_note(group, needed)
        )

    fitting = [
        name
        for name in sorted(INSTANCE_TYPES, key=_size_key)
        if _plan(name, plan.node_count, plan.prefix_delegation, plan.items).fits
    ]
    family = [name for name in fitting if _family_of(name) == _family_of(node.instance_type)]
    if fitting:
        choice = family[0] if family else fitting[0]
        smallest = f"; smallest in the table: {fitting[0]}" if fitting[0] != choice else ""
        fixes.append(
            f"  - nodeInstanceType = {choice} (the smallest {_family_of(choice) + ' ' if family else ''}type "
            f"that holds it on {plan.node_count} node{'s' if plan.node_count != 1 else ''}{smallest})"
        )
    else:
        fixes.append(f"  - no instance type in the table holds it on {plan.node_count} node(s): add nodes too")

    if "pods" in plan.shortfall and not plan.prefix_delegation:
        delegated = _plan(node.instance_type, plan.node_count, True, plan.items)
        outcome = (
            "enough on its own"
            if delegated.fits
            else "not enough on its own: still short by "
            + (_short_text(delegated.shortfall) or "room for its largest pods")
        )
        fixes.append(
            "  - `pulumi config set vpcCniPrefixDelegation true` (VPC CNI prefix delegation, for nodes "
            "launched after it): "
            f"{delegated.node.max_pods} pods per {node.instance_type} node instead of {node.max_pods}, "
            f"{delegated.node.memory_mib} MiB allocatable instead of {node.memory_mib} ({outcome})"
        )

    enabled = {item.setting for item in plan.items if item.setting}
    for addon in ADDONS:
        if addon not in enabled:
            continue
        off = {addon, *(enabled & set(NEEDS_PROMETHEUS))} if addon == "prometheus" else {addon}
        kept = [item for item in plan.items if item.setting not in off]
        freed = [item for item in plan.items if item.setting in off]
        without = _plan(node.instance_type, plan.node_count, plan.prefix_delegation, kept)
        others = sorted(off - {addon})
        also = f" (and {' and '.join(others)}, which need it)" if others else ""
        fixes.append(
            f"  - `pulumi config set {addon} false`{also}: frees "
            f"{_amounts(sum((i.requests for i in freed), NO_REQUESTS), sum(i.pods for i in freed))} "
            f"({'enough on its own' if without.fits else 'not enough on its own'})"
        )
    return fixes


def _failure(group: NodeGroup, plan: CapacityPlan) -> str:
    node = plan.node
    nodes = f"{plan.node_count} x {node.instance_type}"
    lines = [
        f"node group {group.name} cannot hold what the stack declares (nothing was changed):",
        f"  nodeInstanceType = {group.instance_type}, nodeDesiredCount = {group.desired_count} (nodeMinCount "
        f"{group.min_count}, nodeMaxCount {group.max_count}), VPC CNI prefix delegation "
        f"{'on' if plan.prefix_delegation else 'off'}",
        f"  each {node.instance_type} node: at most {node.max_pods} pods, {node.cpu_m}m CPU and {node.memory_mib} MiB "
        "memory allocatable",
        f"  needed: {_amounts(plan.needed, plan.pods)} ({plan.pods_per_node} pods on the busiest node); "
        f"the node group offers {_amounts(plan.capacity, plan.capacity_pods)} ({nodes})",
    ]
    if plan.shortfall:
        lines.append(f"  short by {_short_text(plan.shortfall)}")
    for item in plan.too_big_for_a_node:
        lines.append(
            f"  one {item.name} pod requests {item.pod}, more than a {node.instance_type} node has left after "
            f"aws-node and kube-proxy ({plan.room_per_node})"
        )
    lines += [
        "  requests (pods x per pod), largest first:",
        *_item_lines(plan),
        "Fix one of:",
        *_fixes(group, plan),
    ]
    return "\n".join(lines)


def _warning(group: NodeGroup, plan: CapacityPlan, tight: dict[str, float]) -> str:
    used = {
        "pods": f"pods {plan.pods_per_node} of {plan.node.max_pods} on the busiest node",
        "cpu": f"CPU {plan.needed.cpu_m}m of {plan.capacity.cpu_m}m",
        "memory": f"memory {plan.needed.memory_mib} of {plan.capacity.memory_mib} MiB",
    }
    details = ", ".join(f"{used[dimension]} ({share:.0%} free)" for dimension, share in tight.items())
    roomy = next(
        (
            count
            for count in range(plan.node_count + 1, MAX_NODES + 1)
            if min(_plan(plan.node.instance_type, count, plan.prefix_delegation, plan.items).headroom.values())
            >= HEADROOM_WARNING
        ),
        None,
    )
    advice = f" nodeDesiredCount = {roomy} leaves at least {HEADROOM_WARNING:.0%} of each." if roomy else ""
    needed = _nodes_needed(plan)
    scale_in = (
        f" nodeMinCount {group.min_count} lets the group scale in below the {needed} nodes it needs, which evicts "
        f"pods that then stay Pending."
        if needed is not None and group.min_count < needed
        else ""
    )
    return (
        f"node group {group.name} ({plan.node_count} x {plan.node.instance_type}) holds the stack with little "
        f"headroom: {details}. Requests are a floor, not usage, and a rolling update starts a new pod before it "
        f"stops an old one.{advice}{scale_in}"
    )
