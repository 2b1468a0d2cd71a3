"""Mesh layer: Istio, its ingress gateway, dashboards and the injected app namespace."""

from mesh.mesh import Mesh, MeshArgs

__all__ = ["Mesh", "MeshArgs"]
