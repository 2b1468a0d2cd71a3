"""Cluster layer: EKS (with its VPC and node group) or an existing cluster."""

from infra.cluster import Cluster, ClusterArgs

__all__ = ["Cluster", "ClusterArgs"]
