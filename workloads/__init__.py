"""Workloads layer: the stable and canary versions of the app and their Istio routing."""

from workloads.canary_app import CanaryApp, CanaryAppArgs
from workloads.footprint import footprint

__all__ = ["CanaryApp", "CanaryAppArgs", "footprint"]
