"""What a layer runs on the nodes, as each layer declares it: pods and their CPU and memory requests.

The vocabulary the layers (infra/, mesh/, workloads/) use to declare their own footprint from
the same values they install; capacity/ only adds the footprints up. Kubernetes quantities
("50m", "64Mi") become numbers here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


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
class Footprint:
    """Something the stack runs: `pods` pods of `pod` requests each."""

    name: str
    pods: int
    pod: Requests
    note: str = ""
    """Said after it in the capacity advice: why it runs, or how its pod is made up (the plan writes that)."""
    per_node: bool = False
    """A DaemonSet: one pod on every node (`pods` is then the node count, set by the plan)."""
    setting: str | None = None
    """The setting that turns it off."""
    injected: bool = False
    """Its pods get the mesh's sidecar, which the plan adds to `pod`."""
    sidecar: bool = False
    """The mesh's sidecar: not a pod of its own, but added to every injected pod."""

    @property
    def requests(self) -> Requests:
        return Requests(self.pods * self.pod.cpu_m, self.pods * self.pod.memory_mib)


_CPU = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m?)")
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")
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


def requests_of(resources: Mapping[str, Any] | None) -> Requests:
    """The requests of a Kubernetes `resources` block ({"requests": {"cpu": ..., "memory": ...}})."""
    requests = (resources or {}).get("requests") or {}
    return Requests(millicores(requests.get("cpu", 0)), mebibytes(requests.get("memory", 0)))
