"""Every stack setting, read and validated in one place (load), as typed values (model)."""

from settings.load import declared_settings, load_settings
from settings.model import (
    WORLD,
    Addons,
    AppSettings,
    AppVersion,
    ClusterMode,
    ConfigSource,
    DataplaneMode,
    EksCluster,
    ExistingCluster,
    IngressServiceType,
    MeshSettings,
    NodeGroup,
    Settings,
    SettingsError,
    TrafficApi,
    Vpc,
    workload_name,
)

__all__ = [
    "WORLD",
    "Addons",
    "AppSettings",
    "AppVersion",
    "ClusterMode",
    "ConfigSource",
    "DataplaneMode",
    "EksCluster",
    "ExistingCluster",
    "IngressServiceType",
    "MeshSettings",
    "NodeGroup",
    "Settings",
    "SettingsError",
    "TrafficApi",
    "Vpc",
    "declared_settings",
    "load_settings",
    "workload_name",
]
