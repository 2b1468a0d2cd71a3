"""Cluster layer: EKS (with its VPC and node group) or an existing cluster."""

from infra.cluster import Cluster, ClusterArgs
from infra.footprint import footprint

__all__ = ["Cluster", "ClusterArgs", "footprint"]
