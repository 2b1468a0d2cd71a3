"""Capacity preflight of the EKS node group; see capacity.preflight."""

from capacity.nodes import (
    INSTANCE_TYPES,
    InstanceType,
    NodeCapacity,
    Requests,
    max_pods,
    mebibytes,
    millicores,
    node_capacity,
    reserved_cpu_m,
    reserved_memory_mib,
)
from capacity.plan import REQUESTS, CapacityPlan, Item, plan_capacity
from capacity.preflight import check_capacity

__all__ = [
    "INSTANCE_TYPES",
    "REQUESTS",
    "CapacityPlan",
    "InstanceType",
    "Item",
    "NodeCapacity",
    "Requests",
    "check_capacity",
    "max_pods",
    "mebibytes",
    "millicores",
    "node_capacity",
    "plan_capacity",
    "reserved_cpu_m",
    "reserved_memory_mib",
]
