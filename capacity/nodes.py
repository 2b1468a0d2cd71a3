"""What one EKS node offers pods: max pods under the VPC CNI and allocatable CPU and memory.

The node group's instance facts come from AWS (capacity.aws); the rules that turn them into
max pods and allocatable resources are those of the EKS AMI, as pure functions:
- max pods: the EKS AMI's max-pods-calculator.sh (templates/al2/runtime/max-pods-calculator.sh
  in awslabs/amazon-eks-ami): ENIs x (IPv4 addresses per ENI - 1) + 2, with prefix delegation
  (Nitro instances only) every secondary address a /28 prefix of 16; its recommended value,
  which managed node groups also enforce, is capped at 110 pods, or 250 above 30 vCPUs.
  Without the cap the formula gives the AMI's eni-max-pods.txt (t3a.medium 17, m5.4xlarge 234).
- allocatable: the AL2023 AMI's nodeadm (nodeadm/internal/kubelet/config.go): kube-reserved CPU
  by ranges of the cores, kube-reserved memory 11 MiB per pod + 255 MiB, and the kubelet's
  100Mi hard eviction threshold.

The table of instance types here is only for offline suggestions ("a type that would fit").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

ARM64 = "arm64"
X86_64 = "x86_64"


@dataclass(frozen=True)
class InstanceType:
    """An EC2 instance type's facts, as `aws ec2 describe-instance-types` reports them."""

    name: str
    vcpus: int
    memory_mib: int
    enis: int
    """Network interfaces of the default network card: the ones the VPC CNI gives pods."""
    ipv4_per_eni: int
    architecture: str = X86_64
    nitro: bool = True
    """Prefix delegation needs the Nitro hypervisor."""


@dataclass(frozen=True)
class NodeCapacity:
    """What one node of an instance type offers pods."""

    instance_type: str
    max_pods: int
    cpu_m: int
    memory_mib: int


IPS_PER_PREFIX = 16
MAX_PODS_CEILING = 110
MAX_PODS_CEILING_ABOVE_30_VCPUS = 250
EVICTION_HARD_MIB = 100


def eni_max_pods(instance: InstanceType, prefix_delegation: bool = False) -> int:
    """The addresses the VPC CNI can give pods, +2 for the host-network pods (aws-node, kube-proxy)."""
    if prefix_delegation and instance.nitro:
        return instance.enis * ((instance.ipv4_per_eni - 1) * IPS_PER_PREFIX) + 2
    # Every ENI's first address is the node's own.
    return instance.enis * (instance.ipv4_per_eni - 1) + 2


def max_pods(instance: InstanceType, prefix_delegation: bool = False) -> int:
    """Max pods per node of a managed node group: the calculator's recommended value."""
    ceiling = MAX_PODS_CEILING_ABOVE_30_VCPUS if instance.vcpus > 30 else MAX_PODS_CEILING
    return min(eni_max_pods(instance, prefix_delegation), ceiling)


# nodeadm's kube-reserved CPU: of each range of the node's millicores, this many ten-thousandths.
_CPU_RESERVED_PER_RANGE = ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, None, 25))


def reserved_cpu_m(vcpus: int) -> int:
    """kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% of the rest."""
    total = vcpus * 1000
    reserved = 0
    for start, end, share in _CPU_RESERVED_PER_RANGE:
        if total > start:
            reserved += (min(total, end or total) - start) * share // 10000
    return reserved


def reserved_memory_mib(pods: int) -> int:
    """kube-reserved memory (255 MiB + 11 MiB per pod) plus the hard eviction threshold."""
    return 255 + 11 * pods + EVICTION_HARD_MIB


def node_capacity(instance: InstanceType, prefix_delegation: bool = False) -> NodeCapacity:
    """Max pods and allocatable CPU and memory of one node."""
    pods = max_pods(instance, prefix_delegation)
    # Nominal memory: the kernel keeps a little of it, so real allocatable memory is slightly lower.
    return NodeCapacity(
        instance.name,
        max_pods=pods,
        cpu_m=instance.vcpus * 1000 - reserved_cpu_m(instance.vcpus),
        memory_mib=instance.memory_mib - reserved_memory_mib(pods),
    )


def size_key(instance: InstanceType) -> tuple[int, int, str]:
    return instance.vcpus, instance.memory_mib, instance.name


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


# Offline suggestions only: never the facts of the configured type, which come from AWS.
# (vCPUs, memory, ENIs, IPv4 addresses per ENI) as describe-instance-types reports them.
_BURSTABLE = {
    "micro": (2, 1024, 2, 2),
    "small": (2, 2048, 3, 4),
    "medium": (2, 4096, 3, 6),
    "large": (2, 8192, 3, 12),
    "xlarge": (4, 16384, 4, 15),
    "2xlarge": (8, 32768, 4, 15),
}
_SIZES = {"large": (2, 3, 10), "xlarge": (4, 4, 15), "2xlarge": (8, 4, 15), "4xlarge": (16, 8, 30)}  # vCPUs, ENIs, IPs


# These two build the table at import, before mutmut (docs/mutation.md) can make a mutant active: their lines
# are not mutated; tests/test_capacity.py checks the table's facts.
def _burstable(family: str, architecture: str = X86_64) -> Iterable[InstanceType]:
    for size, (vcpus, memory, enis, ips) in _BURSTABLE.items():
        yield InstanceType(f"{family}.{size}", vcpus, memory, enis, ips, architecture)  # pragma: no mutate


def _family(family: str, gib_per_vcpu: int, sizes: Iterable[str], architecture: str = X86_64) -> Iterable[InstanceType]:
    for size in sizes:
        vcpus, enis, ips = _SIZES[size]
        memory = vcpus * gib_per_vcpu * 1024  # pragma: no mutate
        yield InstanceType(f"{family}.{size}", vcpus, memory, enis, ips, architecture)  # pragma: no mutate


_TABLE = (
    *_burstable("t3"),
    *(replace(spec, enis=2) if spec.name == "t3a.small" else spec for spec in _burstable("t3a")),
    *_burstable("t4g", ARM64),
    *_family("m5", 4, _SIZES),
    *_family("m6i", 4, _SIZES),
    *_family("m7i", 4, _SIZES),
    *_family("m6a", 4, _SIZES),
    *_family("m7g", 4, _SIZES, ARM64),
    *_family("c5", 2, _SIZES),
    *_family("c6i", 2, _SIZES),
    *_family("c7i", 2, _SIZES),
    *_family("c7g", 2, _SIZES, ARM64),
    *_family("r5", 8, ("large", "xlarge", "2xlarge")),
    *_family("r6i", 8, ("large", "xlarge", "2xlarge")),
    *_family("r7g", 8, ("large", "xlarge", "2xlarge"), ARM64),
)
SUGGESTIONS: dict[str, InstanceType] = {spec.name: spec for spec in _TABLE}
