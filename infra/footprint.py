"""What EKS itself runs on the node group: the pods of its default add-ons and their requests.

EKS installs these, not the program, so their requests are those of the add-ons' own
manifests; where an add-on sets no memory request, 64Mi is assumed.
"""

from __future__ import annotations

from capacity.footprint import Footprint, Requests
from settings import EksCluster, ExistingCluster

COREDNS_REPLICAS = 2


def footprint(cluster: EksCluster | ExistingCluster) -> list[Footprint]:
    if not isinstance(cluster, EksCluster):
        return []  # an existing cluster's own pods are not known here
    return [
        Footprint("coredns", COREDNS_REPLICAS, Requests(100, 70)),
        Footprint("aws-node", 0, Requests(25, 64), per_node=True),
        Footprint("kube-proxy", 0, Requests(100, 64), per_node=True),
    ]
