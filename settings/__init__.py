"""Every stack setting, read and validated in one place (load), as typed values (model)."""

from settings.load import declared_settings, load_settings
from settings.model import (
    WORLD,
    Addons,
    AppSettings,
    AppVersion,
    ClusterMode,
    ConfigSource,
    EksCluster,
    ExistingCluster,
    IngressServiceType,
    ListedConfigSource,
    MeshSettings,
    NodeGroup,
    Settings,
    SettingsError,
    Vpc,
)

__all__ = [
    "WORLD",
    "Addons",
    "AppSettings",
    "AppVersion",
    "ClusterMode",
    "ConfigSource",
    "EksCluster",
    "ExistingCluster",
    "IngressServiceType",
    "ListedConfigSource",
    "MeshSettings",
    "NodeGroup",
    "Settings",
    "SettingsError",
    "Vpc",
    "declared_settings",
    "load_settings",
]
