"""The Helm values the program passes, against the pinned charts' own documented values.

A key a chart does not know is a setting that silently never applies (Kiali's chart has no
`fullnameOverride`); and the capacity plan must count the requests the charts will really
render. The charts' values.yaml files are kept in tests/chart_values/ (SOURCES.md says where
each came from).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from capacity import Requests, requests_of
from capacity.plan import CapacityPlan, plan_capacity
from settings import load_settings
from tests.harness import EXISTING_CLUSTER, DictConfig, describe, run_program
from workloads import manifests

VALUES_DIR = Path(__file__).parent / "chart_values"
RELEASE = "kubernetes:helm.sh/v3:Release"

# (chart, version or Istio minor) -> the chart's values.yaml
CHART_FILES = {
    ("base", "1.31"): "istio-base-release-1.31.values.yaml",
    ("cni", "1.31"): "istio-istio-cni-release-1.31.values.yaml",
    ("istiod", "1.31"): "istio-istio-discovery-release-1.31.values.yaml",
    ("gateway", "1.31"): "istio-gateway-release-1.31.values.yaml",
    ("ztunnel", "1.31"): "istio-ztunnel-release-1.31.values.yaml",
    ("prometheus", "28.13.0"): "prometheus-28.13.0.values.yaml",
    ("grafana", "9.2.2"): "grafana-9.2.2.values.yaml",
    ("kiali-server", "2.27.0"): "kiali-server-2.27.0.values.yaml",
}
ISTIO_DEFAULTS = "_internal_defaults_do_not_set"  # Istio's charts keep their defaults here, users set the top level

# Maps whose keys are the user's to choose although the chart documents an example key.
FREE_FORM = {
    ("gateway", "labels"),  # extra labels for the gateway's pods and Service
}
# Keys a chart's templates read that its values.yaml does not list as YAML:
# - grafana: values.yaml documents `podLabels` only in a comment ("## Pod Labels / # podLabels: {}").
# - kiali-server: the chart passes its values through to Kiali's config.yaml ("Most of .Values is
#   simply the ConfigMap", templates/configmap.yaml), so Kiali's own settings apply too; these
#   are from the Kiali CR reference (kiali-operator, crd-docs/cr/kiali.io_v1alpha1_kiali.yaml),
#   and `deployment.ingress.enabled` is also in values.yaml as a comment ("#enabled:").
# - Istio's charts: `profile` selects one of the chart's files/profile-*.yaml (templates/zzz_profile.yaml).
ISTIO_PROFILE = {"profile": ""}
UNLISTED = {
    "base": ISTIO_PROFILE,
    "cni": ISTIO_PROFILE,
    "istiod": ISTIO_PROFILE,
    "gateway": ISTIO_PROFILE,
    "ztunnel": ISTIO_PROFILE,
    "grafana": {"podLabels": {}},
    "kiali-server": {
        "deployment": {"ingress": {"enabled": False}},
        "external_services": {
            "prometheus": {"url": ""},
            "grafana": {"enabled": True, "internal_url": "", "external_url": ""},
            "tracing": {"enabled": False},
        },
    },
}


@functools.cache
def documented(chart: str, version: str) -> dict[str, Any]:
    minor = ".".join(version.split(".")[:2])
    name = CHART_FILES.get((chart, version)) or CHART_FILES.get((chart, minor))
    assert name, f"no documented values for chart {chart} {version}: add its values.yaml to tests/chart_values/"
    values: dict[str, Any] = yaml.safe_load((VALUES_DIR / name).read_text())
    return dict(merged(values.get(ISTIO_DEFAULTS, values), UNLISTED.get(chart, {})))


def unknown_keys(chart: str, ours: dict[str, Any], known: dict[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths of `ours` that the documented values `known` do not have."""
    found = []
    for key, value in ours.items():
        here = (*path, key)
        if key not in known:
            found.append(".".join(here))
            continue
        doc = known[key]
        if not isinstance(value, dict) or not doc or (chart, ".".join(here)) in FREE_FORM:
            continue  # a scalar or a list, or a map the chart leaves open ({} or null)
        if isinstance(doc, dict):
            found += unknown_keys(chart, value, doc, here)
        else:
            found.append(f"{'.'.join(here)} (a map where the chart documents a {type(doc).__name__})")
    return found


MODES = {
    "eks": {},
    "existing": {**EXISTING_CLUSTER, "ingressServiceType": "NodePort"},
    "no-grafana": {"grafana": "false"},
    "ambient": {"trafficApi": "gateway-api", "dataplaneMode": "ambient"},
}


@functools.cache
def releases(mode: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """chart -> (release, version, values) of every Helm release the program declares in this mode."""
    found = {}
    for release in run_program(MODES[mode]).of_type(RELEASE):
        inputs = release.inputs
        found[inputs["chart"]] = (inputs["name"], inputs["version"], inputs.get("values", {}))
    return found


def test_every_release_of_the_program_is_checked() -> None:
    assert releases("eks").keys() == {"base", "cni", "istiod", "gateway", "prometheus", "grafana", "kiali-server"}
    assert releases("eks").keys() == releases("existing").keys() == releases("no-grafana").keys() | {"grafana"}
    assert releases("ambient").keys() == releases("eks").keys() | {"ztunnel"}


@pytest.mark.parametrize("mode", MODES)
def test_every_value_key_is_one_the_chart_documents(mode: str) -> None:
    unknown = {
        f"{name} ({chart} {version})": unknown_keys(chart, values, documented(chart, version))
        for chart, (name, version, values) in releases(mode).items()
    }
    assert {release: keys for release, keys in unknown.items() if keys} == {}


def test_the_check_finds_a_key_the_chart_does_not_have() -> None:
    """Kiali's chart names its objects from deployment.instance_name; a fullnameOverride would never apply."""
    kiali = documented("kiali-server", "2.27.0")
    assert unknown_keys("kiali-server", {"fullnameOverride": "kiali"}, kiali) == ["fullnameOverride"]
    assert unknown_keys("kiali-server", {"deployment": {"instance_name": "kiali"}}, kiali) == []
    assert kiali["deployment"]["instance_name"] == "kiali", "the name the dashboards command and token use"
    assert unknown_keys("istiod", {"global": {"proxy": {"resource": {}}}}, documented("istiod", "1.31.1")) == [
        "global.proxy.resource"
    ]
    assert unknown_keys("gateway", {"labels": {"app": "x"}}, documented("gateway", "1.31.1")) == []


# What the charts render, from their values merged over the documented defaults.


def merged(defaults: Any, ours: Any) -> Any:
    """Helm's merge of user values over a chart's defaults: maps merge key by key, anything else replaces."""
    if isinstance(defaults, dict) and isinstance(ours, dict):
        return {key: merged(defaults.get(key), ours[key]) if key in ours else defaults[key] for key in defaults} | {
            key: value for key, value in ours.items() if key not in defaults
        }
    return ours


def rendered(chart: str, mode: str = "eks") -> dict[str, Any]:
    """The effective values of `chart` in an EKS run (the stack the preflight plans)."""
    _, version, values = releases(mode)[chart]
    return dict(merged(documented(chart, version), values))


def min_replicas(values: dict[str, Any], autoscaling: str, minimum: str, count: str) -> int:
    """Replicas of a chart's Deployment: its autoscaler's minimum when autoscaling is on (dotted paths)."""

    def at(path: str) -> Any:
        found: Any = values
        for key in path.split("."):
            found = found[key]
        return found

    return int(at(minimum) if at(autoscaling) else values.get(count) or 1)


def the_plan(mode: str = "eks") -> CapacityPlan:
    plan = plan_capacity(load_settings(DictConfig(MODES[mode])), describe("t3a.medium"))
    assert plan is not None
    return plan


def item(plan: CapacityPlan, name: str) -> tuple[int, Requests]:
    (found,) = [entry for entry in plan.items if entry.name == name]
    return found.pods, found.pod


def test_the_plan_counts_what_istio_charts_request() -> None:
    plan = the_plan()
    istiod, gateway, cni = rendered("istiod"), rendered("gateway"), rendered("cni")
    # istiod: autoscaleMin replicas under its HPA (autoscaleEnabled), `resources` on the discovery container.
    replicas = min_replicas(istiod, "autoscaleEnabled", "autoscaleMin", "replicaCount")
    assert item(plan, "istiod") == (replicas, requests_of(istiod["resources"]))
    # The gateway: autoscaling.minReplicas under its HPA, `resources` on its one container.
    replicas = min_replicas(gateway, "autoscaling.enabled", "autoscaling.minReplicas", "replicaCount")
    assert item(plan, "istio-ingressgateway") == (replicas, requests_of(gateway["resources"]))
    # The CNI node agent: a DaemonSet, `resources` on install-cni.
    assert item(plan, "istio-cni") == (plan.node_count, requests_of(cni["resources"]))
    # Every injected pod: its own containers plus the sidecar of istiod's injection template.
    settings = load_settings(DictConfig())
    (container,) = manifests.deployment(settings.app, settings.app.stable)["spec"]["template"]["spec"]["containers"]
    sidecar = requests_of(istiod["global"]["proxy"]["resources"])
    assert item(plan, "nginx-v1") == (settings.app.stable.replicas, requests_of(container["resources"]) + sidecar)


def test_the_plan_counts_what_the_addon_charts_request() -> None:
    plan = the_plan()
    prometheus, grafana, kiali = rendered("prometheus"), rendered("grafana"), rendered("kiali-server")
    # The server pod: prometheus-server and, when on, its configmap-reload container.
    server = requests_of(prometheus["server"]["resources"])
    reload = prometheus["configmapReload"]["prometheus"]
    pod = server + (requests_of(reload["resources"]) if reload["enabled"] else Requests(0, 0))
    assert item(plan, "prometheus") == (prometheus["server"]["replicaCount"], pod)
    # Grafana: one container; its dashboard and datasource sidecars stay off.
    assert not grafana["sidecar"]["dashboards"]["enabled"] and not grafana["sidecar"]["datasources"]["enabled"]
    assert item(plan, "grafana") == (grafana["replicas"], requests_of(grafana["resources"]))
    assert item(plan, "kiali") == (kiali["deployment"]["replicas"], requests_of(kiali["deployment"]["resources"]))


def test_every_installed_pod_has_explicit_requests() -> None:
    """Requests set by the program, not left to a chart default that may be none at all."""
    values = {chart: vals for chart, (_, _, vals) in releases("eks").items()}
    assert values["istiod"]["resources"]["requests"] and values["istiod"]["global"]["proxy"]["resources"]["requests"]
    assert values["gateway"]["resources"]["requests"] and values["cni"]["resources"]["requests"]
    assert values["prometheus"]["server"]["resources"]["requests"] and values["grafana"]["resources"]["requests"]
    assert values["kiali-server"]["deployment"]["resources"]["requests"]


def test_the_plan_counts_what_ambient_mode_requests() -> None:
    """Ambient mode: ztunnel on every node and the app namespace's waypoint, which istiod deploys with
    global.waypoint.resources; no sidecar in the app's pods."""
    plan = the_plan("ambient")
    ztunnel, istiod = rendered("ztunnel", "ambient"), rendered("istiod", "ambient")
    assert item(plan, "ztunnel") == (plan.node_count, requests_of(ztunnel["resources"]))
    assert item(plan, "waypoint") == (1, requests_of(istiod["global"]["waypoint"]["resources"]))
    settings = load_settings(DictConfig(MODES["ambient"]))
    (container,) = manifests.deployment(settings.app, settings.app.stable)["spec"]["template"]["spec"]["containers"]
    assert item(plan, "nginx-v1") == (settings.app.stable.replicas, requests_of(container["resources"]))
