"""dataplaneMode ambient: ztunnel instead of sidecars, a waypoint for the app namespace.

Checked under mocks for the three combinations the settings allow (sidecar + istio,
sidecar + gateway-api, ambient + gateway-api); ambient + istio is refused by name.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from capacity import Requests
from capacity.plan import CapacityPlan, plan_capacity
from mesh.canary_dashboard import queries
from rollout.checks import builtin_checks
from rollout.runner import canary_target
from settings import SettingsError, declared_settings, load_settings
from tests.harness import (
    EXISTING_CLUSTER,
    PROJECT_DIR,
    DictConfig,
    ProgramRun,
    describe,
    program_scope,
    run_program,
)
from tests.test_policy import pack_violations

AMBIENT = {"trafficApi": "gateway-api", "dataplaneMode": "ambient"}
COMBINATIONS = {
    "sidecar+istio": {},
    "sidecar+gateway-api": {"trafficApi": "gateway-api"},
    "ambient+gateway-api": AMBIENT,
}
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"


@pytest.fixture(scope=program_scope)
def runs() -> dict[str, ProgramRun]:
    return {name: run_program({**config, "canaryWeight": "10"}) for name, config in COMBINATIONS.items()}


def values(run: ProgramRun, release: str) -> dict[str, Any]:
    return dict(run.named(release, RELEASE).inputs["values"])


def namespace_labels(run: ProgramRun) -> dict[str, str]:
    return dict(run.named("mesh-app-namespace").inputs["metadata"]["labels"])


def test_ambient_needs_the_gateway_api_and_says_so() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(DictConfig({"dataplaneMode": "ambient"}))
    assert 'dataplaneMode = "ambient": needs trafficApi = gateway-api' in str(error.value)
    with pytest.raises(SettingsError) as error:
        load_settings(DictConfig({"dataplaneMode": "ambiant"}))
    assert 'dataplaneMode = "ambiant": must be one of sidecar, ambient' in str(error.value)
    assert load_settings(DictConfig()).mesh.dataplane_mode == "sidecar"


def test_ambient_installs_ztunnel_and_the_ambient_profile(runs: dict[str, ProgramRun]) -> None:
    ambient = runs["ambient+gateway-api"]
    assert values(ambient, "istio-cni")["profile"] == "ambient"
    assert values(ambient, "istiod")["profile"] == "ambient"
    ztunnel = ambient.named("ztunnel", RELEASE)
    assert (ztunnel.inputs["chart"], ztunnel.inputs["version"]) == (
        "ztunnel",
        declared_settings()["istioVersion"]["default"],
    )
    assert values(ambient, "ztunnel")["profile"] == "ambient"
    assert ambient.depends_on(ztunnel, ambient.named("istiod", RELEASE))
    for deployment in ("nginx-v1", "nginx-v2"):
        assert ambient.depends_on(ambient.named(deployment, "kubernetes:apps/v1:Deployment"), ztunnel)
    for name in ("sidecar+istio", "sidecar+gateway-api"):
        run = runs[name]
        assert not [r for r in run.resources if r.name == "ztunnel"]
        assert "profile" not in values(run, "istio-cni") and "profile" not in values(run, "istiod")


def test_the_app_namespace_joins_the_mesh_by_mode(runs: dict[str, ProgramRun]) -> None:
    ambient = namespace_labels(runs["ambient+gateway-api"])
    assert ambient["istio.io/dataplane-mode"] == "ambient"
    assert ambient["istio.io/use-waypoint"] == "waypoint"
    assert "istio-injection" not in ambient
    for name in ("sidecar+istio", "sidecar+gateway-api"):
        labels = namespace_labels(runs[name])
        assert labels["istio-injection"] == "enabled" and "istio.io/dataplane-mode" not in labels


def test_ambient_declares_the_namespaces_waypoint(runs: dict[str, ProgramRun]) -> None:
    run = runs["ambient+gateway-api"]
    waypoint = run.named("default-waypoint", K8S_GATEWAY)
    assert waypoint.parent == run.named("mesh").urn
    assert waypoint.inputs["metadata"] == {
        "name": "waypoint",
        "namespace": "default",
        "labels": {"istio.io/waypoint-for": "service"},
    }
    assert waypoint.inputs["spec"] == {
        "gatewayClassName": "istio-waypoint",
        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
    }
    assert run.depends_on(waypoint, run.named("mesh-app-namespace"))
    assert run.depends_on(waypoint, run.named("mesh-gateway-api-crds"))
    for name in ("sidecar+istio", "sidecar+gateway-api"):
        assert [r.name for r in runs[name].of_type(K8S_GATEWAY)] in ([], ["default-gateway"])


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_mutual_tls_stays_strict(runs: dict[str, ProgramRun], combination: str) -> None:
    policy = runs[combination].named("nginx-mtls").inputs
    assert policy["spec"] == {"mtls": {"mode": "STRICT"}}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_a_weight_change_is_one_update_in_every_combination(combination: str) -> None:
    def state(weight: str) -> dict[str, Any]:
        run = run_program({**EXISTING_CLUSTER, **COMBINATIONS[combination], "canaryWeight": weight})
        return {r.urn: (r.inputs, sorted(r.dependencies)) for r in run.resources}

    before, after = state("10"), state("40")
    assert before.keys() == after.keys()
    changed = [urn.rsplit("::", 1)[1] for urn in before if before[urn] != after[urn]]
    assert changed == (["nginx-virtual-svc"] if combination == "sidecar+istio" else ["nginx-route"])


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_combination_passes_the_policy_pack(combination: str) -> None:
    assert pack_violations(run_program({**COMBINATIONS[combination], "canaryWeight": "10"})) == []


def test_the_canary_checks_read_the_waypoints_metrics_in_ambient_mode() -> None:
    for config, reporter in ((COMBINATIONS["sidecar+gateway-api"], "destination"), (AMBIENT, "waypoint")):
        target = canary_target(load_settings(DictConfig(config)), "1m")
        for check in builtin_checks():
            query = target.fill(check.query)
            assert f'reporter="{reporter}"' in query and "$" not in query
            assert 'destination_workload=~"nginx-v2"' in query


def test_the_dashboard_reads_the_waypoints_metrics_in_ambient_mode(runs: dict[str, ProgramRun]) -> None:
    def exprs(run: ProgramRun) -> list[str]:
        board = json.loads(run.named("canary-grafana-dashboard").inputs["data"]["canary.json"])
        return [target["expr"] for panel in board["panels"] for target in panel["targets"]]

    assert all('reporter="waypoint"' in expr for expr in exprs(runs["ambient+gateway-api"]))
    assert all('reporter="destination"' in expr for expr in exprs(runs["sidecar+gateway-api"]))
    assert list(queries("nginx", "default")) == list(queries("nginx", "default", "waypoint"))


def plan(config: dict[str, str]) -> CapacityPlan:
    settings = load_settings(DictConfig(config))
    result = plan_capacity(settings, describe(settings.cluster.node_group.instance_type))  # type: ignore[union-attr]
    assert result is not None
    return result


def test_capacity_counts_ztunnel_and_the_waypoint_instead_of_sidecars() -> None:
    sidecar, ambient = plan(COMBINATIONS["sidecar+gateway-api"]), plan(AMBIENT)
    items = {item.name: item for item in ambient.items}
    assert items["ztunnel"].pods == 3 and items["ztunnel"].per_node, "one per node of the seed's 3"
    assert items["ztunnel"].pod == Requests(200, 512), "the ztunnel chart's default, set explicitly"
    assert (items["waypoint"].pods, items["waypoint"].pod) == (1, Requests(100, 128))
    app = {item.name: item for item in sidecar.items}["nginx-v1"].pod
    proxy = Requests(100, 128)
    assert items["nginx-v1"].pod + proxy == app, "no sidecar in ambient mode"
    assert "istio-proxy" not in items and items["nginx-v1"].note == "no sidecar"
    assert plan(COMBINATIONS["sidecar+istio"]).needed == sidecar.needed, "the same pods, whichever traffic API"


def test_ambient_pays_off_once_the_sidecars_saved_outweigh_ztunnel() -> None:
    """On the seed's 3 nodes ztunnel + waypoint ask for more than the seed's 2 sidecars; with 20 app pods, less."""
    seed = plan(COMBINATIONS["sidecar+gateway-api"]).needed, plan(AMBIENT).needed
    assert seed[1].cpu_m - seed[0].cpu_m == 3 * 200 + 100 - 2 * 100
    assert seed[1].memory_mib - seed[0].memory_mib == 3 * 512 + 128 - 2 * 128
    many = {"stableReplicas": "12", "canaryReplicas": "8", "nodeDesiredCount": "4", "nodeMaxCount": "4"}
    sidecar, ambient = plan({**COMBINATIONS["sidecar+gateway-api"], **many}), plan({**AMBIENT, **many})
    assert ambient.needed.cpu_m < sidecar.needed.cpu_m


@pytest.mark.parametrize(("stable", "canary"), [("1", "1"), ("6", "6"), ("10", "10")])
def test_the_docs_show_the_preflights_numbers(stable: str, canary: str) -> None:
    """docs/istio.md's table of what ambient saves is the preflight's output, not hand-kept numbers."""
    doc = (PROJECT_DIR / "docs" / "istio.md").read_text()
    (row,) = [line for line in doc.splitlines() if line.startswith(f"| {stable} + {canary} ")]
    replicas = {"stableReplicas": stable, "canaryReplicas": canary}
    for mode in ("sidecar", "ambient"):
        result = plan({"trafficApi": "gateway-api", "dataplaneMode": mode, **replicas})
        assert f"{result.needed.cpu_m}m / {result.needed.memory_mib} MiB" in row, (mode, row)
        if result.fits:
            assert f"{round(result.headroom['cpu'] * 100)} %" in row, (mode, row)
        else:
            assert "does not fit" in row
