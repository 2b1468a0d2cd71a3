"""A metric-gated canary run anyone can watch offline: Istio-shaped traffic and a real Prometheus on loopback."""

from rollout.demo.prometheus import PrometheusServer
from rollout.demo.traffic import MeshTraffic

__all__ = ["MeshTraffic", "PrometheusServer"]
