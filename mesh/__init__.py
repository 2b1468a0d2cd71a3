"""Mesh layer: Istio, its ingress gateway, dashboards and the injected app namespace."""

from mesh.footprint import footprint
from mesh.mesh import Mesh, MeshArgs

__all__ = ["Mesh", "MeshArgs", "footprint"]
