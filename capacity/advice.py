"""The preflight's messages: what is short, by how much, and the changes that would fit."""

from __future__ import annotations

from capacity.footprint import NO_REQUESTS, Footprint, Requests
from capacity.nodes import SUGGESTIONS, family_of, size_key
from capacity.plan import ADDONS, HEADROOM_WARNING, MAX_NODES, NEEDS_PROMETHEUS, CapacityPlan, plan_for
from settings import NodeGroup


def nodes_needed(plan: CapacityPlan, start: int = 1) -> int | None:
    """The fewest nodes (from `start`) of the plan's instance type that hold it, or None."""
    for count in range(start, MAX_NODES + 1):
        candidate = plan_for(plan.instance, count, plan.prefix_delegation, plan.items)
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
    def share(item: Footprint) -> float:
        return max(
            item.requests.cpu_m / max(plan.needed.cpu_m, 1), item.requests.memory_mib / max(plan.needed.memory_mib, 1)
        )

    return [
        f"    {item.name}: {item.pods} x {item.pod} = {_amounts(item.requests)}"
        + (f" ({item.note})" if item.note else "")
        for item in sorted(plan.items, key=share, reverse=True)
    ]


def _nodes(count: int) -> str:
    return f"{count} node{'s' if count != 1 else ''}"


def _min_count_note(group: NodeGroup, needed: int) -> str:
    """Always due: `needed` is above nodeDesiredCount, which settings keep at or above nodeMinCount."""
    return (
        f"; nodeMinCount {group.min_count} lets the group scale in below {_nodes(needed)}, which evicts pods that then "
        f"stay Pending (nodeMinCount = {needed} prevents it)"
    )


def _fixes(group: NodeGroup, plan: CapacityPlan) -> list[str]:
    node = plan.node
    fixes = []

    needed = nodes_needed(plan, start=plan.node_count + 1)
    if needed is None:
        big = ", ".join(f"{item.name} ({item.pod})" for item in plan.too_big_for_a_node)
        fixes.append(f"  - no node count helps: {big} does not fit one {node.instance_type} node; pick a larger type")
    else:
        raise_max = f" and nodeMaxCount = {needed}" if needed > group.max_count else ""
        fixes.append(
            f"  - nodeDesiredCount = {needed}{raise_max} ({needed} x {node.instance_type})"
            + _min_count_note(group, needed)
        )

    # Only types of the same architecture: the images that run now are known to run there.
    fitting = [
        spec.name
        for spec in sorted(SUGGESTIONS.values(), key=size_key)
        if spec.architecture == plan.instance.architecture
        and plan_for(spec, plan.node_count, plan.prefix_delegation, plan.items).fits
    ]
    family = [name for name in fitting if family_of(name) == family_of(node.instance_type)]
    if fitting:
        choice = family[0] if family else fitting[0]
        smallest = f"; smallest in the table: {fitting[0]}" if fitting[0] != choice else ""
        fixes.append(
            f"  - nodeInstanceType = {choice} (the smallest {family_of(choice) + ' ' if family else ''}type "
            f"that holds it on {_nodes(plan.node_count)}{smallest})"
        )
    else:
        fixes.append(
            f"  - no {plan.instance.architecture} instance type in the table holds it on {plan.node_count} node(s): "
            "add nodes too"
        )

    if "pods" in plan.shortfall and not plan.prefix_delegation:
        delegated = plan_for(plan.instance, plan.node_count, True, plan.items)
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
        without = plan_for(plan.instance, plan.node_count, plan.prefix_delegation, kept)
        others = sorted(off - {addon})
        also = f" (and {' and '.join(others)}, which need{'s' if len(others) == 1 else ''} it)" if others else ""
        fixes.append(
            f"  - `pulumi config set {addon} false`{also}: frees "
            f"{_amounts(sum((i.requests for i in freed), NO_REQUESTS), sum(i.pods for i in freed))} "
            f"({'enough on its own' if without.fits else 'not enough on its own'})"
        )
    return fixes


def failure(group: NodeGroup, plan: CapacityPlan) -> str:
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


def warning(group: NodeGroup, plan: CapacityPlan, tight: dict[str, float]) -> str:
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
            if min(plan_for(plan.instance, count, plan.prefix_delegation, plan.items).headroom.values())
            >= HEADROOM_WARNING
        ),
        None,
    )
    advice = f" nodeDesiredCount = {roomy} leaves at least {HEADROOM_WARNING:.0%} of each." if roomy else ""
    needed = nodes_needed(plan)
    scale_in = (
        f" nodeMinCount {group.min_count} lets the group scale in below the {_nodes(needed)} it needs, which evicts "
        f"pods that then stay Pending."
        if needed is not None and group.min_count < needed
        else ""
    )
    return (
        f"node group {group.name} ({plan.node_count} x {plan.node.instance_type}) holds the stack with little "
        f"headroom: {details}. Requests are a floor, not usage, and a rolling update starts a new pod before it "
        f"stops an old one.{advice}{scale_in}"
    )
