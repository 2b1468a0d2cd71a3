"""What one EKS node offers pods: max pods under the VPC CNI and allocatable CPU and memory.

Instance facts for the common families and the EKS AMI's reservation rules, as pure data
and functions; Kubernetes quantities ("50m", "64Mi") as numbers.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from settings import SettingsError


@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_mib: int
    enis: int
    ipv4_per_eni: int


# vCPUs, memory, network interfaces and IPv4 addresses per interface as
# `aws ec2 describe-instance-types` reports them; the max pods they give are those of the
# EKS AMI's eni-max-pods.txt (e.g. t3a.medium 17, t3.small 11, t3a.small 8, m5.large 29).
_BURSTABLE = {
    "micro": InstanceType(2, 1024, 2, 2),
    "small": InstanceType(2, 2048, 3, 4),
    "medium": InstanceType(2, 4096, 3, 6),
    "large": InstanceType(2, 8192, 3, 12),
    "xlarge": InstanceType(4, 16384, 4, 15),
    "2xlarge": InstanceType(8, 32768, 4, 15),
}


_SIZES = {"large": (2, 3, 10), "xlarge": (4, 4, 15), "2xlarge": (8, 4, 15), "4xlarge": (16, 8, 30)}  # vCPUs, ENIs, IPs


def _family(family: str, gib_per_vcpu: int, sizes: Iterable[str]) -> dict[str, InstanceType]:
    return {
        f"{family}.{size}": InstanceType(vcpus, vcpus * gib_per_vcpu * 1024, enis, ips)
        for size in sizes
        for vcpus, enis, ips in [_SIZES[size]]
    }


INSTANCE_TYPES: dict[str, InstanceType] = {
    **{f"t3.{size}": spec for size, spec in _BURSTABLE.items()},
    **{f"t3a.{size}": replace(spec, enis=2) if size == "small" else spec for size, spec in _BURSTABLE.items()},
    **_family("m5", 4, _SIZES),
    **_family("m6i", 4, _SIZES),
    **_family("m7i", 4, _SIZES),
    **_family("c5", 2, _SIZES),
    **_family("c6i", 2, _SIZES),
    **_family("r5", 8, ("large", "xlarge", "2xlarge")),
    **_family("r6i", 8, ("large", "xlarge", "2xlarge")),
}


@dataclass(frozen=True)
class Requests:
    """CPU (millicores) and memory (MiB) requests."""

    cpu_m: int
    memory_mib: int

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu_m + other.cpu_m, self.memory_mib + other.memory_mib)

    def __str__(self) -> str:
        return f"{self.cpu_m}m/{self.memory_mib}Mi"


NO_REQUESTS = Requests(0, 0)


@dataclass(frozen=True)
class NodeCapacity:
    """What one node of an instance type offers pods."""

    instance_type: str
    max_pods: int
    cpu_m: int
    memory_mib: int


def max_pods(instance: InstanceType, prefix_delegation: bool = False) -> int:
    """Max pods per node the EKS AMI sets for the VPC CNI (its eni-max-pods.txt and max-pods-calculator.sh)."""
    # Every ENI's first address is the node's own; +2 for the host-network pods (aws-node, kube-proxy).
    if not prefix_delegation:
        return instance.enis * (instance.ipv4_per_eni - 1) + 2
    # With prefix delegation every secondary address is a /28 prefix of 16 addresses; EKS then caps
    # max pods at 110 on instances with fewer than 30 vCPUs and at 250 on larger ones.
    return min(instance.enis * (instance.ipv4_per_eni - 1) * 16 + 2, 110 if instance.vcpus < 30 else 250)


def reserved_cpu_m(vcpus: int) -> int:
    """kube-reserved CPU of the EKS AMI bootstrap: 6% of the first core, 1% of the second,
    0.5% of cores 3-4 and 0.25% of every core above 4."""
    reserved = Decimal(0)
    remaining = vcpus
    for cores, millicores_per_core in ((1, Decimal(60)), (1, Decimal(10)), (2, Decimal(5)), (vcpus, Decimal("2.5"))):
        used = min(cores, remaining)
        reserved += used * millicores_per_core
        remaining -= used
    return math.ceil(reserved)


def reserved_memory_mib(pods: int) -> int:
    """kube-reserved memory of the EKS AMI bootstrap (255 MiB + 11 MiB per pod) plus its
    100 MiB hard eviction threshold."""
    return 255 + 11 * pods + 100


def node_capacity(instance_type: str, prefix_delegation: bool = False) -> NodeCapacity:
    """Max pods and allocatable CPU and memory of one node; SettingsError for an unknown type."""
    instance = INSTANCE_TYPES.get(instance_type)
    if instance is None:
        raise SettingsError(_unknown_instance_type(instance_type))
    pods = max_pods(instance, prefix_delegation)
    # Nominal memory: the kernel keeps a little of it, so real allocatable memory is slightly lower.
    return NodeCapacity(
        instance_type,
        max_pods=pods,
        cpu_m=instance.vcpus * 1000 - reserved_cpu_m(instance.vcpus),
        memory_mib=instance.memory_mib - reserved_memory_mib(pods),
    )


_CPU = re.compile(r"(\d+(?:\.\d+)?)(m?)")


_MEMORY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")


_BYTES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def millicores(quantity: str | int | float) -> int:
    """A Kubernetes CPU quantity ("50m", "0.5", 1) in millicores, rounded up."""
    match = _CPU.fullmatch(str(quantity))
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    number = Decimal(match.group(1))
    return math.ceil(number if match.group(2) else number * 1000)


def mebibytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity ("64Mi", "1Gi", "128M", bytes) in MiB, rounded up."""
    match = _MEMORY.fullmatch(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return math.ceil(Decimal(match.group(1)) * _BYTES[match.group(2) or ""] / 2**20)


def size_key(instance_type: str) -> tuple[int, int, str]:
    spec = INSTANCE_TYPES[instance_type]
    return spec.vcpus, spec.memory_mib, instance_type


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def _unknown_instance_type(instance_type: str) -> str:
    families: dict[str, list[str]] = {}
    for name in sorted(INSTANCE_TYPES, key=size_key):
        families.setdefault(family_of(name), []).append(name.split(".", 1)[1])
    known = "; ".join(f"{family} ({sizes[0]} to {sizes[-1]})" for family, sizes in sorted(families.items()))
    close = difflib.get_close_matches(instance_type, INSTANCE_TYPES, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return (
        f"nodeInstanceType = {instance_type!r}: the capacity preflight does not know this instance type, so it "
        f"cannot tell whether the stack fits its nodes (nothing was changed).{hint}\n"
        f"  Known: {known}.\n"
        "  Use one of them, or add the type to INSTANCE_TYPES in capacity/nodes.py (vCPUs, memory, ENIs and IPv4 "
        f"addresses per ENI from `aws ec2 describe-instance-types --instance-types {instance_type}`)."
    )
