"""Mesh: Istio's charts in the order that works, wired dashboards, the injected namespace."""

from __future__ import annotations

import pytest

from mesh import charts
from settings import declared_settings
from tests.harness import EXISTING_CLUSTER, LOAD_BALANCER_HOST, ProgramRun, is_secret, program_scope, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ISTIO_VERSION = declared_settings()["istioVersion"]["default"]  # the one pin, in Pulumi.yaml


@pytest.fixture(scope=program_scope)
def eks_run() -> ProgramRun:
    return run_program({"canaryWeight": "10"})


@pytest.fixture(scope=program_scope)
def local_run() -> ProgramRun:
    return run_program({**EXISTING_CLUSTER, "ingressServiceType": "NodePort"})


def test_istio_comes_from_its_official_charts_at_the_configured_version(eks_run: ProgramRun) -> None:
    charts_by_release = (
        ("istio-base", "base"),
        ("istio-cni", "cni"),
        ("istiod", "istiod"),
        ("istio-ingressgateway", "gateway"),
    )
    for release, chart in charts_by_release:
        inputs = eks_run.named(release, RELEASE).inputs
        assert inputs["chart"] == chart
        assert inputs["version"] == ISTIO_VERSION
        assert inputs["repositoryOpts"]["repo"] == charts.ISTIO_CHARTS
        assert inputs["namespace"] == "istio-system"
        assert inputs["name"] == release, "release names are fixed: the gateway Service is named after its release"


def test_istio_installs_crds_then_istiod_then_the_gateway(eks_run: ProgramRun) -> None:
    base, istiod, gateway = (eks_run.named(name, RELEASE) for name in ("istio-base", "istiod", "istio-ingressgateway"))
    cni = eks_run.named("istio-cni", RELEASE)
    assert eks_run.depends_on(base, eks_run.named("mesh-istio-system"))
    assert eks_run.depends_on(cni, base) and eks_run.depends_on(istiod, cni)
    assert istiod.inputs["values"]["cni"] == {"enabled": True}, "sidecars without the privileged istio-init"
    assert eks_run.depends_on(gateway, istiod)
    assert not eks_run.depends_on(base, istiod)
    for release in (base, istiod, gateway):
        assert release.inputs.get("skipAwait", False) is False, "each release waits until its objects are ready"


def test_gateway_is_the_seeds_ingress_gateway_behind_an_nlb_on_eks(eks_run: ProgramRun, local_run: ProgramRun) -> None:
    values = eks_run.named("istio-ingressgateway", RELEASE).inputs["values"]
    assert values["labels"]["istio"] == "ingressgateway"
    assert values["service"] == {"type": "None"}, "the stack owns the gateway's Service"
    service = eks_run.named("istio-ingressgateway", SERVICE).inputs
    assert service["metadata"]["namespace"] == "istio-system"
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"] == {"istio": "ingressgateway", "app": "istio-ingressgateway"}
    assert {port["port"] for port in service["spec"]["ports"]} == {15021, 80, 443}
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    local = local_run.named("istio-ingressgateway", SERVICE).inputs
    assert local["spec"]["type"] == "NodePort" and local["metadata"]["annotations"] == {}


def test_gateway_and_istiod_survive_a_node_drain_on_eks(eks_run: ProgramRun, local_run: ProgramRun) -> None:
    gateway = eks_run.named("istio-ingressgateway", RELEASE).inputs["values"]
    assert gateway["autoscaling"]["minReplicas"] == 2
    assert gateway["podDisruptionBudget"] == {"minAvailable": 1}
    assert gateway["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    istiod = eks_run.named("istiod", RELEASE).inputs["values"]
    assert istiod["autoscaleMin"] == istiod["replicaCount"] == 2, "one replica under a minAvailable-1 PDB blocks drains"
    assert "autoscaleMin" not in local_run.named("istiod", RELEASE).inputs["values"]


def test_istio_objects_wait_for_crds_and_pods_for_the_injector(eks_run: ProgramRun) -> None:
    base, istiod = eks_run.named("istio-base"), eks_run.named("istiod")
    for name in ("default-gateway", "nginx-dest-rule", "nginx-virtual-svc"):
        assert eks_run.depends_on(eks_run.named(name), base), name
    for name in ("nginx-v1", "nginx-v2"):
        deployment = eks_run.named(name, DEPLOYMENT)
        assert eks_run.depends_on(deployment, istiod), name
        assert eks_run.depends_on(deployment, eks_run.named("mesh-app-namespace")), name


def test_app_namespace_is_labelled_for_injection(eks_run: ProgramRun) -> None:
    patch = eks_run.named("mesh-app-namespace")
    assert patch.type == "kubernetes:core/v1:NamespacePatch", "the default namespace exists: label it, never own it"
    labels = patch.inputs["metadata"]["labels"]
    assert patch.inputs["metadata"]["name"] == "default"
    assert labels["istio-injection"] == "enabled"
    # With the Istio CNI, injected pods need no NET_ADMIN: the strictest level the seed's root nginx meets.
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_other_app_namespace_is_created_with_the_label() -> None:
    run = run_program({**EXISTING_CLUSTER, "appNamespace": "shop"})
    namespace = run.named("mesh-app-namespace")
    assert namespace.type == "kubernetes:core/v1:Namespace"
    assert namespace.inputs["metadata"]["labels"]["istio-injection"] == "enabled"
    assert run.named("nginx-v1", DEPLOYMENT).inputs["metadata"]["namespace"] == "shop"


def test_addons_are_pinned_and_wired_together(eks_run: ProgramRun) -> None:
    releases = {r.name: r.inputs for r in eks_run.of_type(RELEASE)}
    for chart in (charts.PROMETHEUS, charts.GRAFANA, charts.KIALI):
        inputs = releases[chart.release]
        assert (inputs["chart"], inputs["repositoryOpts"]["repo"]) == (chart.chart, chart.repo)
        assert inputs["version"] == chart.version and chart.version[0].isdigit(), "addon charts are pinned"
    prometheus = releases["prometheus"]["values"]["server"]
    assert prometheus["fullnameOverride"] == "prometheus" and prometheus["service"]["servicePort"] == 9090
    assert charts.prometheus_url() == "http://prometheus.istio-system:9090"
    grafana = releases["grafana"]["values"]
    assert grafana["datasources"]["datasources.yaml"]["datasources"][0]["url"] == charts.prometheus_url()
    dashboards = grafana["dashboards"]["istio"]
    assert {"istio-mesh", "istio-service", "istio-workload", "istio-control-plane"} <= dashboards.keys()
    assert all(f"/istio/istio/{ISTIO_VERSION}/" in dashboard["url"] for dashboard in dashboards.values())
    kiali = releases["kiali"]["values"]["external_services"]
    assert kiali["prometheus"]["url"] == charts.prometheus_url()
    assert kiali["grafana"]["internal_url"] == charts.grafana_url() and kiali["grafana"]["enabled"] is True


def test_dashboards_are_reachable_only_by_port_forward(eks_run: ProgramRun) -> None:
    releases = {r.name: r.inputs for r in eks_run.of_type(RELEASE)}
    assert releases["grafana"]["values"]["service"]["type"] == "ClusterIP"
    assert releases["kiali"]["values"]["auth"]["strategy"] != "anonymous"
    commands = eks_run.module["mesh"].dashboards
    assert commands.keys() == {"prometheus", "grafana", "kiali"}
    assert "port-forward svc/kiali 20001:20001" in commands["kiali"]


def test_addons_switch_off() -> None:
    run = run_program({**EXISTING_CLUSTER, "prometheus": "false", "grafana": "false", "kiali": "false"})
    assert {r.name for r in run.of_type(RELEASE)} == {"istio-base", "istio-cni", "istiod", "istio-ingressgateway"}
    assert run.module["mesh"].dashboards == {}


def test_kiali_without_grafana_is_told_so() -> None:
    run = run_program({**EXISTING_CLUSTER, "grafana": "false"})
    assert run.named("kiali").inputs["values"]["external_services"]["grafana"]["enabled"] is False


def test_existing_istio_is_not_installed_again() -> None:
    run = run_program(
        {**EXISTING_CLUSTER, "installIstio": "false", "prometheus": "false", "grafana": "false", "kiali": "false"}
    )
    assert run.of_type(RELEASE) == []
    assert [r for r in run.resources if r.name == "mesh-istio-system"] == []
    labels = run.named("mesh-app-namespace").inputs["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    assert "pod-security.kubernetes.io/enforce" not in labels, "an Istio without its CNI agent needs istio-init"
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"
    assert run.named("nginx-v1", DEPLOYMENT).dependencies == [run.named("mesh-app-namespace").urn]


def test_ingress_address_comes_from_the_gateway_service(eks_run: ProgramRun, local_run: ProgramRun) -> None:
    assert eks_run.output(eks_run.module["mesh"].ingress_host) == LOAD_BALANCER_HOST
    assert local_run.output(local_run.module["mesh"].ingress_host) == "istio-ingressgateway.istio-system"
    assert [r for r in eks_run.resources if r.read] == []


def test_grafana_gets_a_canary_dashboard_comparing_the_versions(eks_run: ProgramRun) -> None:
    import json

    import promql_parser

    configmap = eks_run.named("canary-grafana-dashboard")
    assert configmap.inputs["metadata"] == {"name": "canary-grafana-dashboard", "namespace": "istio-system"}
    board = json.loads(configmap.inputs["data"]["canary.json"])
    titles = [panel["title"] for panel in board["panels"]]
    assert titles == ["Request rate (req/s)", "Success rate (%)", "p99 latency (ms)", "Share of requests (%)"]
    for panel in board["panels"]:
        (target,) = panel["targets"]
        promql_parser.parse(target["expr"])  # ValueError on a syntax error
        assert 'reporter="destination"' in target["expr"] and 'destination_app="nginx"' in target["expr"]
        assert "by (destination_version)" in target["expr"] or "destination_version)" in target["expr"]
        assert target["legendFormat"] == "{{destination_version}}"
    exprs = {panel["title"]: panel["targets"][0]["expr"] for panel in board["panels"]}
    assert 'response_code!~"5.*"' in exprs["Success rate (%)"]
    assert exprs["p99 latency (ms)"].startswith("histogram_quantile(0.99,")
    values = eks_run.named("grafana", RELEASE).inputs["values"]
    assert values["dashboardsConfigMaps"] == {"canary": "canary-grafana-dashboard"}
    assert {provider["name"] for provider in values["dashboardProviders"]["dashboardproviders.yaml"]["providers"]} == {
        "istio",
        "canary",
    }
    assert board["panels"][0]["datasource"]["uid"] == values["datasources"]["datasources.yaml"]["datasources"][0]["uid"]
    assert eks_run.depends_on(eks_run.named("grafana", RELEASE), configmap)


def test_the_canary_dashboard_names_no_version_so_promotion_leaves_it_alone() -> None:
    before = run_program({**EXISTING_CLUSTER}).named("canary-grafana-dashboard").inputs
    promoted = {
        "stableVersion": "v2",
        "stableImage": "repo/app:v2",
        "canaryVersion": "v3",
        "canaryImage": "repo/app:v3",
    }
    after = run_program({**EXISTING_CLUSTER, **promoted}).named("canary-grafana-dashboard").inputs
    assert before == after


def test_the_mesh_component_exposes_its_children(eks_run: ProgramRun) -> None:
    mesh = eks_run.module["mesh"]
    releases = {name: eks_run.output(release.urn) for name, release in mesh.releases.items()}
    assert releases == {release.name: release.urn for release in eks_run.of_type(RELEASE)}
    assert eks_run.output(mesh.ingress_service.urn) == eks_run.named("istio-ingressgateway", SERVICE).urn
    assert eks_run.output(mesh.app_namespace_object.urn) == eks_run.named("mesh-app-namespace").urn


# --- chart values in full: the wiring nobody sees until a pod misbehaves -----------------------


def test_istio_charts_and_their_values_in_full() -> None:
    repo = "https://istio-release.storage.googleapis.com/charts"
    assert charts.istio_charts("1.31.1") == {
        "base": charts.Chart("istio-base", "base", repo, "1.31.1"),
        "istiod": charts.Chart("istiod", "istiod", repo, "1.31.1"),
        "cni": charts.Chart("istio-cni", "cni", repo, "1.31.1"),
        "gateway": charts.Chart("istio-ingressgateway", "gateway", repo, "1.31.1"),
        "ztunnel": charts.Chart("ztunnel", "ztunnel", repo, "1.31.1"),
    }
    assert charts.base_values() == {"defaultRevision": "default"}
    assert charts.cni_values() == {"resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}

    def spread(labels: dict[str, str]) -> list[dict[str, object]]:
        return [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": labels},
            }
        ]

    local_istiod = {
        "global": {
            "istioNamespace": "istio-system",
            "proxy": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
        },
        "cni": {"enabled": True},
        "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"}},
    }
    assert charts.istiod_values(on_eks=False) == local_istiod
    assert charts.istiod_values(on_eks=True) == {
        **local_istiod,
        "autoscaleMin": 2,
        "replicaCount": 2,
        "topologySpreadConstraints": spread({"app": "istiod"}),
    }
    labels = {"istio": "ingressgateway", "app": "istio-ingressgateway"}
    gateway_requests = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    assert charts.gateway_values(on_eks=False) == {
        "labels": labels,
        "service": {"type": "None"},
        "resources": gateway_requests,
    }
    assert charts.gateway_values(on_eks=True) == {
        "labels": labels,
        "service": {"type": "None"},
        "resources": gateway_requests,
        "autoscaling": {"minReplicas": 2},
        "podDisruptionBudget": {"minAvailable": 1},
        "topologySpreadConstraints": spread(labels),
    }


def test_the_ingress_service_in_full() -> None:
    ports = [
        {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
        {"name": "http2", "port": 80, "targetPort": 80, "protocol": "TCP"},
        {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"},
    ]
    labels = {"istio": "ingressgateway", "app": "istio-ingressgateway"}
    nlb = {
        "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
        "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
    }
    assert charts.ingress_service("LoadBalancer", on_eks=True) == {
        "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system", "labels": labels, "annotations": nlb},
        "spec": {"type": "LoadBalancer", "selector": labels, "ports": ports},
    }
    for service_type, on_eks in (("LoadBalancer", False), ("NodePort", True), ("ClusterIP", False)):
        service = charts.ingress_service(service_type, on_eks)  # type: ignore[arg-type]
        assert service["metadata"]["annotations"] == {}, "an NLB only from AWS, only for a LoadBalancer"
        assert service["spec"]["type"] == service_type


def test_prometheus_runs_alone_outside_the_mesh() -> None:
    values = charts.prometheus_values()
    server = values.pop("server")
    subcharts = ("alertmanager", "prometheus-pushgateway", "kube-state-metrics", "prometheus-node-exporter")
    assert values == {name: {"enabled": False} for name in subcharts}, "the server only"
    assert set(server) == {"fullnameOverride", "podLabels", "resources", "persistentVolume", "service", "global"}
    assert server["podLabels"] == {"sidecar.istio.io/inject": "false"}
    assert server["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}}
    assert server["persistentVolume"] == {"enabled": False}
    assert server["global"] == {"scrape_interval": "15s"}
    # Grafana and Kiali are given prometheus_url(): the Service the chart names and serves as set here.
    assert charts.prometheus_url() == "http://prometheus.istio-system:9090"
    service = f"{server['fullnameOverride']}.istio-system:{server['service']['servicePort']}"
    assert charts.prometheus_url() == f"http://{service}"
    assert charts.grafana_url() == "http://grafana.istio-system:3000"


def test_grafana_values() -> None:
    values = charts.grafana_values("1.31.1")
    assert set(values) == {
        "podLabels",
        "resources",
        "admin",
        "testFramework",
        "service",
        "datasources",
        "dashboardProviders",
        "dashboardsConfigMaps",
        "dashboards",
    }
    assert values["podLabels"] == {"sidecar.istio.io/inject": "false"}
    assert values["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}}
    admin = {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert values["admin"] == admin
    assert values["testFramework"] == {"enabled": False}
    assert values["service"] == {"type": "ClusterIP", "port": 3000}
    assert values["dashboardsConfigMaps"] == {"canary": "canary-grafana-dashboard"}


def test_grafana_shows_istios_dashboards_of_the_installed_release_on_the_stacks_prometheus() -> None:
    values = charts.grafana_values("1.31.1")
    datasources = values["datasources"]["datasources.yaml"]
    assert datasources["apiVersion"] == 1
    (prometheus,) = datasources["datasources"]
    assert (prometheus["type"], prometheus["url"]) == ("prometheus", "http://prometheus.istio-system:9090")
    assert prometheus["isDefault"] and prometheus["access"] == "proxy", "Grafana's server asks, not the browser"
    scrape_interval = charts.prometheus_values()["server"]["global"]["scrape_interval"]
    assert prometheus["jsonData"] == {"timeInterval": scrape_interval}, "Grafana's shortest step is a scrape"
    source = "https://raw.githubusercontent.com/istio/istio/1.31.1/manifests/addons/dashboards"
    assert values["dashboards"] == {
        "istio": {
            "istio-mesh": {"url": f"{source}/istio-mesh-dashboard.gen.json", "datasource": "Prometheus"},
            "istio-service": {"url": f"{source}/istio-service-dashboard.json", "datasource": "Prometheus"},
            "istio-workload": {"url": f"{source}/istio-workload-dashboard.json", "datasource": "Prometheus"},
            "istio-performance": {"url": f"{source}/istio-performance-dashboard.json", "datasource": "Prometheus"},
            "istio-control-plane": {"url": f"{source}/pilot-dashboard.gen.json", "datasource": "Prometheus"},
        }
    }
    assert prometheus["name"] == "Prometheus", "the name the Istio dashboards ask for"


def test_grafana_has_a_provider_for_each_dashboard_folder_where_the_chart_puts_its_files() -> None:
    values = charts.grafana_values("1.31.1")
    providers = values["dashboardProviders"]["dashboardproviders.yaml"]
    assert providers["apiVersion"] == 1
    folders = {*values["dashboards"], *values["dashboardsConfigMaps"]}
    assert folders == {"istio", "canary"}
    assert [provider["name"] for provider in providers["providers"]] == ["istio", "canary"]
    for provider in providers["providers"]:
        name = provider["name"]
        # The chart's values.yaml: "`path` must be /var/lib/grafana/dashboards/<provider_name>".
        assert provider["options"] == {"path": f"/var/lib/grafana/dashboards/{name}"}
        assert (provider["type"], provider["folder"], provider["orgId"]) == ("file", name, 1)
        assert provider["disableDeletion"] is False, "a dashboard dropped from the values leaves Grafana"


def test_grafana_reads_its_admin_from_the_secret_the_mesh_creates(eks_run: ProgramRun) -> None:
    admin = eks_run.named("grafana", RELEASE).inputs["values"]["admin"]
    secret = eks_run.named("grafana-admin", "kubernetes:core/v1:Secret").inputs
    assert secret["metadata"] == {"name": admin["existingSecret"], "namespace": "istio-system"}
    keys = secret["stringData"]["secret"]  # the whole of stringData is a stack secret
    assert set(keys) == {admin["userKey"], admin["passwordKey"]}
    assert keys[admin["userKey"]] == "admin"
    password = eks_run.named("grafana-admin-password", "random:index/randomPassword:RandomPassword").inputs
    assert (password["length"], password["special"]) == (32, False)
    assert eks_run.depends_on(eks_run.named("grafana", RELEASE), eks_run.named("grafana-admin"))
    assert is_secret(eks_run.module["mesh"].grafana_admin_password)


def test_kiali_values_in_full() -> None:
    for grafana in (True, False):
        assert charts.kiali_values(grafana) == {
            "auth": {"strategy": "token"},
            "deployment": {
                "pod_labels": {"sidecar.istio.io/inject": "false"},
                "ingress": {"enabled": False},
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
            },
            "external_services": {
                "prometheus": {"url": "http://prometheus.istio-system:9090"},
                "grafana": {
                    "enabled": grafana,
                    "internal_url": "http://grafana.istio-system:3000",
                    "external_url": "http://localhost:3000",
                },
                "tracing": {"enabled": False},
            },
        }


def test_dashboard_commands_in_full(eks_run: ProgramRun) -> None:
    assert eks_run.module["mesh"].dashboards == {
        "prometheus": "kubectl -n istio-system port-forward svc/prometheus 9090:9090",
        "grafana": "kubectl -n istio-system port-forward svc/grafana 3000:3000",
        "kiali": "kubectl -n istio-system create token kiali && "
        "kubectl -n istio-system port-forward svc/kiali 20001:20001",
    }
