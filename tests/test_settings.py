"""Settings: defaults, every bad value rejected with a clear message, nothing registered."""

from __future__ import annotations

import json
import re

import pytest

from settings import (
    EksCluster,
    ExistingCluster,
    SettingsError,
    declared_settings,
    load_settings,
)
from tests.harness import EXISTING_CLUSTER, DictConfig, ProgramRun, case_id, run_program

BAD_VALUES = [
    # key, value, what the message must say is allowed
    ("canaryWeight", "-1", "integer from 0 to 100"),
    ("canaryWeight", "101", "integer from 0 to 100"),
    ("canaryWeight", "150", "integer from 0 to 100"),
    ("canaryWeight", "10.5", "integer from 0 to 100"),
    ("canaryWeight", "ten", "integer from 0 to 100"),
    ("canaryWeight", "", "integer from 0 to 100"),
    ("clusterMode", "gke", "one of eks, existing"),
    ("kubernetesVersion", "1.20", "from 1.32 to 1.36"),
    ("kubernetesVersion", "latest", "from 1.32 to 1.36"),
    ("clusterName", "dev cluster", "letters, digits"),
    ("vpcCidr", "127.0.0.0/8", "IPv4 network from /16 to /20"),
    ("vpcCidr", "not-a-cidr", "IPv4 network from /16 to /20"),
    ("availabilityZoneCount", "1", "integer from 2 to 6"),
    ("vpcId", "my-vpc", "VPC ID like vpc-0123abcd"),
    ("publicSubnetIds", '["subnet-0123abcd"]', "must be set when publicSubnetIds"),  # reported on vpcId
    ("privateSubnetIds", "not json", "subnet IDs"),
    ("clusterAdminArns", '["alice"]', "IAM role or user ARNs"),
    ("clusterViewerArns", '["bob"]', "IAM role or user ARNs"),
    ("clusterViewerArns", json.dumps(["arn:aws:iam::123456789012:role/ci"] * 2), "each ARN once"),
    ("apiAccessCidrs", '["everywhere"]', "IPv4 CIDRs"),
    ("apiAccessCidrs", '["127.0.0.1/8"]', "IPv4 CIDRs"),
    ("nodeGroupName", "_pool", "letters, digits, '-' or '_'"),
    ("nodeInstanceType", "big", "EC2 instance type"),
    ("nodeDesiredCount", "three", "integer from 0 to 450"),
    ("nodeDesiredCount", "5", "nodeMinCount (0) <= nodeDesiredCount <= nodeMaxCount (4)"),
    ("nodeMinCount", "4", "nodeMinCount (4) <= nodeDesiredCount <= nodeMaxCount (4)"),  # on nodeDesiredCount
    ("nodeMaxCount", "0", "integer from 1 to 450"),
    ("installIstio", "yes", "true or false"),
    ("istioVersion", "1.20.0", "Istio release 1.28.0 or later"),
    ("istioVersion", "1.31", "Istio release 1.28.0 or later"),
    ("ingressServiceType", "Ingress", "one of LoadBalancer, NodePort, ClusterIP"),
    ("prometheus", "maybe", "true or false"),
    ("appNamespace", "Default", "namespace name"),
    ("appName", "nginx_app", "DNS-1035"),
    ("appName", "a" * 62, "room for '-<version>'"),
    ("stableVersion", "V1", "lowercase letters"),
    ("canaryVersion", "v1", "must differ from stableVersion"),
    ("stableImage", "quay.io/shardul/nginx", "pinned by tag or digest"),
    ("canaryImage", "quay.io/shardul/nginx:latest", "pinned by tag or digest"),
    ("canaryImage", "Not An Image", "pinned by tag or digest"),
    ("stableReplicas", "-1", "integer from 0 to 100"),
    ("canaryReplicas", "101", "integer from 0 to 100"),
    ("canaryReplicas", "0", "at least 1 while canaryWeight"),  # with canaryWeight > 0 below
    ("canaryHeaderName", "X-Canary", "lowercase HTTP header name"),
    ("canaryHeaderValue", "", "must be at least 16 characters while canaryHeaderName"),  # with a header name below
    ("canaryHeaderValue", "always", "a value nobody guesses"),
    ("mirrorPercent", "101", "integer from 0 to 100"),
    ("mirrorPercent", "half", "integer from 0 to 100"),
]
EXTRA = {"canaryReplicas": {"canaryWeight": "10"}, "canaryHeaderValue": {"canaryHeaderName": "x-canary"}}
REPORTED_ON = {"publicSubnetIds": "vpcId", "nodeMinCount": "nodeDesiredCount"}


def message_for(config: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as failure:
        load_settings(DictConfig(config))
    return str(failure.value)


def test_defaults_are_the_seed_walkthrough() -> None:
    settings = load_settings(DictConfig())
    assert isinstance(settings.cluster, EksCluster)
    group = settings.cluster.node_group
    assert (group.name, group.instance_type, group.desired_count, group.min_count, group.max_count) == (
        "default-pool",
        "t3a.medium",
        3,
        0,
        4,
    )
    app = settings.app
    assert (app.name, app.namespace, app.canary_weight) == ("nginx", "default", 0)
    assert (app.stable.label, app.stable.image, app.stable.replicas) == ("v1", "quay.io/shardul/nginx:v1", 1)
    assert (app.canary.label, app.canary.image, app.canary.replicas) == ("v2", "quay.io/shardul/nginx:v2", 1)
    assert settings.mesh.install_istio and settings.mesh.istio_version.startswith("1.31.")


def test_every_declared_setting_has_type_default_and_description() -> None:
    for key, declaration in declared_settings().items():
        assert {"type", "default", "description"} <= declaration.keys(), key


def test_dev_stack_is_the_seed_cluster() -> None:
    import yaml

    from tests.harness import PROJECT_DIR

    dev = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    assert dev["aws:region"] == "us-east-1"
    values = {
        key.split(":", 1)[1]: json.dumps(value) if isinstance(value, list) else str(value)
        for key, value in dev.items()
        if key.startswith("canary:")
    }
    settings = load_settings(DictConfig(values))
    assert settings.app.canary_weight == 10
    assert isinstance(settings.cluster, EksCluster)
    assert settings.cluster.node_group.instance_type == "t3a.medium"
    assert settings.cluster.api_open_to_world, "the seed's cluster is reachable from anywhere, explicitly"


@pytest.mark.parametrize("weight", range(0, 101))
def test_every_weight_from_0_to_100_is_accepted(weight: int) -> None:
    assert load_settings(DictConfig({"canaryWeight": str(weight)})).app.canary_weight == weight


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES, ids=[case_id(k, v) for k, v, _ in BAD_VALUES])
def test_bad_value_is_named_with_what_is_allowed(key: str, value: str, allowed: str) -> None:
    message = message_for({key: value, **EXTRA.get(key, {})})
    named = REPORTED_ON.get(key, key)
    assert re.search(rf"^  - {named} = ", message, re.MULTILINE), message
    if named == key:
        assert f"{key} = {json.dumps(value)}:" in message or f"{key} = {value}:" in message, message
    assert allowed in message, message
    assert "nothing was changed" in message


def test_a_principal_is_either_admin_or_viewer() -> None:
    """EKS allows one access entry per principal: the same ARN in both lists would fail mid-update."""
    ci = "arn:aws:iam::123456789012:role/ci"
    message = message_for({"clusterAdminArns": f'["{ci}"]', "clusterViewerArns": f'["{ci}"]'})
    assert f'clusterViewerArns = ["{ci}"]: must not repeat an ARN of clusterAdminArns' in message, message
    ops = "arn:aws:iam::123456789012:role/ops"
    two = message_for({"clusterAdminArns": f'["{ci}", "{ops}"]', "clusterViewerArns": f'["{ops}", "{ci}"]'})
    assert f"(one access entry per principal): {ci}, {ops}\n" in two, two
    both = load_settings(DictConfig({"clusterViewerArns": f'["{ci}"]'})).cluster
    assert isinstance(both, EksCluster) and (both.admin_arns, both.viewer_arns) == ((), (ci,))


def test_all_problems_are_reported_together() -> None:
    message = message_for({"canaryWeight": "ten", "stableImage": "nginx"})
    assert "canaryWeight" in message and "stableImage" in message


def test_existing_cluster_mode_reads_kubeconfig_and_context() -> None:
    settings = load_settings(DictConfig(EXISTING_CLUSTER))
    assert settings.cluster == ExistingCluster("/tmp/kubeconfig.yaml", "kind-canary")


def test_kubeconfig_without_existing_mode_is_refused() -> None:
    assert "set clusterMode to existing" in message_for({"kubeContext": "kind-canary"})


def test_existing_vpc_needs_two_subnets_of_each_kind() -> None:
    message = message_for({"vpcId": "vpc-0123abcd", "publicSubnetIds": '["subnet-0123abcd"]'})
    assert "publicSubnetIds" in message and "privateSubnetIds" in message


def test_dashboards_need_prometheus() -> None:
    assert "needs prometheus = true" in message_for({"prometheus": "false"})
    load_settings(DictConfig({"prometheus": "false", "grafana": "false", "kiali": "false"}))


def test_full_weight_needs_no_stable_replicas() -> None:
    load_settings(DictConfig({"canaryWeight": "100", "stableReplicas": "0"}))
    assert "stableReplicas" in message_for({"canaryWeight": "99", "stableReplicas": "0"})


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES, ids=[case_id(k, v) for k, v, _ in BAD_VALUES])
def test_bad_value_stops_the_program_before_any_resource(key: str, value: str, allowed: str) -> None:
    run = ProgramRun()
    with pytest.raises(SettingsError, match=re.escape(allowed)):
        run_program({key: value, **EXTRA.get(key, {})}, run=run)
    assert run.resources == [] and run.invokes == []


def test_bad_value_in_existing_mode_registers_nothing() -> None:
    run = ProgramRun()
    with pytest.raises(SettingsError):
        run_program({**EXISTING_CLUSTER, "canaryWeight": "150"}, run=run)
    assert run.resources == []


def test_recording_sees_resources_of_a_good_config() -> None:
    """The check above is only meaningful if the same recording sees a valid program's resources."""
    run = ProgramRun()
    run_program({**EXISTING_CLUSTER, "canaryWeight": "50"}, run=run)
    assert len(run.resources) > 10


ARABIC_50 = "\u0665\u0660"  # Arabic-Indic 5 and 0: Python's int() reads them as 50, and `\d` matches them
SECRET = "0123456789abcdef"  # a canaryHeaderValue of the 16 characters required
PUBLIC_CIDRS = [f"{octet}.0.0.0/8" for octet in range(11, 52)]  # 41 public /8 networks
BOUNDARIES = [
    # key, a value just inside the rule, one just outside, what the message says is allowed, other settings
    ("canaryWeight", "50", ARABIC_50, "integer from 0 to 100", {}),
    ("kubernetesVersion", "1.35", "1.\u0663\u0665", "from 1.32 to 1.36", {}),
    ("istioVersion", "1.31.1", "1.\u0663\u0661.1", "Istio release 1.28.0 or later", {}),
    ("clusterAdminArns", '["arn:aws:iam::123456789012:role/admin"]', '["arn:aws:iam::12345678901\u0662:role/admin"]',
     "IAM role or user ARNs", {}),
    ("clusterAdminArns", '["arn:aws:iam::123456789012:role/admin_e"]', '["arn:aws:iam::123456789012:role/admin\u00e9"]',
     "IAM role or user ARNs", {}),
    ("appName", "a1", "1a", "DNS-1035", {}),
    ("appName", "a-1", "a-", "DNS-1035", {}),
    ("appName", "a" * 60, "a" * 61, "room for '-<version>'", {}),  # with versions v1 and v2
    ("appNamespace", "a" * 63, "a" * 64, "namespace name", {}),
    ("appNamespace", "kube-systems", "kube-system", "other than kube-system", {}),
    ("appNamespace", "kube-publics", "kube-public", "other than kube-system, kube-public", {}),
    ("appNamespace", "kube-node-leases", "kube-node-lease", "kube-node-lease, istio-system", {}),
    ("appNamespace", "istio-systems", "istio-system", "kube-node-lease, istio-system", {}),
    ("stableVersion", "v1-a", "v1-", "starting and ending with a letter or digit", {}),
    ("canaryHeaderName", "x-canary-v2", "x canary", "with '-' between", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderName", "x-canary", "X-Canary", "lowercase HTTP header name", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderName", "x-canary", "x-canary:", "with '-' between", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderName", "x-canary", "x_canary", "with '-' between", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderName", "x-1", "x-", "with '-' between", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderName", "uris", "uri", "Istio ignores matches on them", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderName", "x" * 256, "x" * 257, "at most 256 characters", {"canaryHeaderValue": SECRET}),
    ("canaryHeaderValue", SECRET, SECRET[:15], "at least 16 characters", {"canaryHeaderName": "x-canary"}),
    ("canaryHeaderValue", f"{SECRET}~", f"{SECRET}\u00e9", "printable ASCII", {"canaryHeaderName": "x-canary"}),
    ("canaryHeaderValue", f"a {SECRET}", f"a\t{SECRET}", "printable ASCII", {"canaryHeaderName": "x-canary"}),
    ("canaryHeaderValue", "v" * 256, "v" * 257, "at most 256 printable", {"canaryHeaderName": "x-canary"}),
    ("nodeGroupName", "Default_Pool", "Default.Pool", "letters, digits, '-' or '_'", {}),
    ("nodeGroupName", "p" * 63, "p" * 64, "1-63 letters", {}),
    ("nodeGroupName", "0pool", "-pool", "starting with a letter or digit", {}),
    ("apiAccessCidrs", '["172.32.0.0/16"]', '["172.31.0.0/16"]', "172.31.0.0/16 not public", {}),
    ("apiAccessCidrs", '["0.0.0.0/0"]', '["10.1.0.0/16", "0.0.0.0/0"]', "10.1.0.0/16 not public", {}),
    ("apiAccessCidrs", '["0.0.0.0/0"]', '["0.0.0.0/0", "0.0.0.0/0"]', "lists 0.0.0.0/0 more than once", {}),
    ("apiAccessCidrs", json.dumps(PUBLIC_CIDRS[:40]), json.dumps(PUBLIC_CIDRS), "at most 40 IPv4 CIDRs", {}),
    ("apiAccessCidrs", '["0.0.0.0/0"]', '[["0.0.0.0/0"]]', "at most 40 IPv4 CIDRs", {}),
    ("apiAccessCidrs", "[]", "[" * 4000 + "]" * 4000, "at most 40 IPv4 CIDRs", {}),  # a RecursionError in json
    ("clusterAdminArns", "[]", "[" * 100_000 + "]" * 100_000, "at most 100 IAM role", {}),
    ("publicSubnetIds", json.dumps([f"subnet-{i:08x}" for i in range(100)]),
     json.dumps([f"subnet-{i:08x}" for i in range(101)]), "at most 100 subnet IDs",
     {"vpcId": "vpc-0123abcd", "privateSubnetIds": '["subnet-0123abcd", "subnet-0123abce"]'}),
]  # fmt: skip
BOUNDARY_IDS = [case_id(key, outside) for key, _, outside, _, _ in BOUNDARIES]


@pytest.mark.parametrize(("key", "inside", "outside", "allowed", "others"), BOUNDARIES, ids=BOUNDARY_IDS)
def test_each_rule_holds_just_inside_and_fails_just_outside(
    key: str, inside: str, outside: str, allowed: str, others: dict[str, str]
) -> None:
    load_settings(DictConfig({**others, key: inside}))
    message = message_for({**others, key: outside})
    assert re.search(rf"^  - {key} = ", message, re.MULTILINE), message
    assert allowed in message, message
    assert message.count("\n  - ") == 1, f"one problem, named once: {message}"
    assert len(message) < 1000, "a huge value is not repeated whole"


@pytest.mark.parametrize(("key", "inside", "outside", "allowed", "others"), BOUNDARIES, ids=BOUNDARY_IDS)
def test_a_value_just_outside_registers_nothing(
    key: str, inside: str, outside: str, allowed: str, others: dict[str, str]
) -> None:
    run = ProgramRun()
    with pytest.raises(SettingsError, match=re.escape(allowed)):
        run_program({**others, key: outside}, run=run)
    assert run.resources == [] and run.invokes == []


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("canaryWieght", "did you mean canaryWeight?"),
        ("nodeInstancetype", "did you mean nodeInstanceType?"),
        ("zzz", ""),
    ],
)
def test_an_undeclared_key_is_refused_with_the_closest_declared_one(key: str, hint: str) -> None:
    message = message_for({key: "50"})
    assert f"  - {key}: not a setting of this program ({hint}" in message, message
    assert f"`pulumi config rm {key}`" in message
    assert "did you mean" not in message or hint, message


def test_an_undeclared_key_stops_the_program_before_any_resource() -> None:
    """`pulumi config set canaryWieght 50` must not leave the stack at its old weight while looking done."""
    run = ProgramRun()
    with pytest.raises(SettingsError, match="did you mean canaryWeight"):
        run_program({"canaryWieght": "50"}, run=run)
    assert run.resources == [] and run.invokes == []


def test_keys_of_other_namespaces_are_not_ours() -> None:
    """aws:region and the like belong to providers; the program reads only its project's keys."""
    import pulumi

    pulumi.runtime.set_all_config({"aws:region": "us-east-1", "canary:canaryWeight": "10"})
    try:
        assert load_settings(pulumi.Config()).app.canary_weight == 10
        pulumi.runtime.set_all_config({"aws:region": "us-east-1", "canary:canaryWieght": "10"})
        with pytest.raises(SettingsError, match="canaryWieght: not a setting"):
            load_settings(pulumi.Config())
    finally:
        pulumi.runtime.set_all_config({})


def test_the_canary_command_refuses_an_undeclared_key_too() -> None:
    """rollout/ validates through the same loader, over the stack's config as the Automation API lists it."""
    from rollout.stack import StackConfig

    config = StackConfig("canary", {"aws:region": "us-east-1", "canary:canaryWeight": "10"})
    assert load_settings(config).app.canary_weight == 10
    with pytest.raises(SettingsError, match="did you mean canaryWeight"):
        load_settings(StackConfig("canary", {"aws:region": "us-east-1", "canary:canaryWieght": "10"}))


def test_a_deeply_nested_eks_setting_in_existing_mode_is_no_traceback() -> None:
    """Existing-cluster mode also looks at EKS-only settings (to warn about them): no RecursionError there either."""
    settings = load_settings(DictConfig({**EXISTING_CLUSTER, "apiAccessCidrs": "[" * 4000 + "]" * 4000}))
    assert isinstance(settings.cluster, ExistingCluster)
