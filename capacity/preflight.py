"""Capacity preflight: does everything the stack declares fit the EKS node group?

Run before any resource is registered: the node group's instance facts come from AWS
(an invoke, not a resource), and a stack that cannot fit stops with the shortfall and the
fixes (capacity.advice); one that fits with little headroom warns.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from capacity.advice import failure, nodes_needed, warning
from capacity.aws import instance_type_from_aws
from capacity.nodes import ARM64, InstanceType
from capacity.plan import HEADROOM_WARNING, CapacityPlan, plan_capacity
from settings import EksCluster, Settings, SettingsError


def arm64_warning(settings: Settings, instance: InstanceType) -> str:
    images = sorted({settings.app.stable.image, settings.app.canary.image})
    return (
        f"nodeInstanceType = {instance.name} is an arm64 (Graviton) type: the mesh's images (Istio, Prometheus, "
        f"Grafana, Kiali) are published for arm64, but whether the app's ({', '.join(images)}) are cannot be known "
        "before a node pulls them; an image built only for amd64 fails there with 'exec format error'"
    )


def check_capacity(
    settings: Settings, describe: Callable[[str], InstanceType] = instance_type_from_aws
) -> CapacityPlan | None:
    """Raise SettingsError when the stack does not fit its node group; warn when it fits with little headroom.

    `describe` gives the instance type's facts (AWS's, by default). Skipped (None) in
    existing-cluster mode. With nodeDesiredCount 0 (the node group paused to save cost)
    nothing can run, which is a warning, not an error.
    """
    if not isinstance(settings.cluster, EksCluster):
        return None
    group = settings.cluster.node_group
    instance = describe(group.instance_type)
    if instance.architecture == ARM64:
        pulumi.log.warn(arm64_warning(settings, instance))
    plan = plan_capacity(settings, instance)
    assert plan is not None
    if plan.node_count == 0:
        needed = nodes_needed(plan)
        pulumi.log.warn(
            f"nodeDesiredCount = 0: node group {group.name} has no node, so no pod of the stack can run "
            f"until it is scaled up" + (f" (to at least {needed} x {group.instance_type})" if needed else "")
        )
        return plan
    if not plan.fits:
        raise SettingsError(failure(group, plan))
    tight = {dimension: share for dimension, share in plan.headroom.items() if share < HEADROOM_WARNING}
    if tight:
        pulumi.log.warn(warning(group, plan, tight))
    return plan
