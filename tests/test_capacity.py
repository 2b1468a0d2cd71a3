"""Capacity preflight: the stack's pods and requests against the node group, pure and fast."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from capacity import Footprint, Requests, mebibytes, millicores, preflight
from capacity.advice import failure, nodes_needed, warning
from capacity.nodes import (
    SUGGESTIONS,
    InstanceType,
    NodeCapacity,
    eni_max_pods,
    max_pods,
    node_capacity,
    reserved_cpu_m,
)
from capacity.plan import HEADROOM_WARNING, MAX_NODES, CapacityPlan, plan_capacity, plan_for
from capacity.preflight import check_capacity
from settings import NodeGroup, Settings, SettingsError, load_settings
from tests.harness import (
    EC2_INSTANCE_TYPES,
    EXISTING_CLUSTER,
    PROJECT_DIR,
    DictConfig,
    ProgramRun,
    describe,
    run_program,
)
from workloads import manifests

SIDECAR = Requests(100, 128)  # Istio's default proxy requests
ADDON_REQUESTS = {"prometheus": Requests(500, 512), "grafana": Requests(250, 256), "kiali": Requests(10, 64)}


def settings_of(config: dict[str, str] | None = None) -> Settings:
    return load_settings(DictConfig(config))


def plan_of(config: dict[str, str] | None = None, prefix_delegation: bool = False) -> CapacityPlan:
    settings = settings_of(config)
    plan = plan_capacity(settings, describe(settings.cluster.node_group.instance_type), prefix_delegation)  # type: ignore[union-attr]
    assert plan is not None
    return plan


def failure_of(config: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as failure:
        check_capacity(settings_of(config), describe)
    return str(failure.value)


def app_pod() -> Requests:
    """One app pod as workloads/manifests.py declares it, plus its sidecar."""
    settings = settings_of()
    (container,) = manifests.deployment(settings.app, settings.app.stable)["spec"]["template"]["spec"]["containers"]
    requests = container["resources"]["requests"]
    return Requests(millicores(requests["cpu"]), mebibytes(requests["memory"])) + SIDECAR


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr("capacity.preflight.pulumi.log.warn", lambda message, *args, **kwargs: said.append(message))
    return said


def test_seed_dev_stack_fits(warnings: list[str]) -> None:
    """Pulumi.dev.yaml, 3 x t3a.medium with Istio and every addon: it fits, without a warning.

    Each t3a.medium node: 17 pods, 1930m CPU, 3554 MiB allocatable (3 nodes: 51 pods, 5790m,
    10662 MiB). Needed, with istiod and the gateway at 2 replicas each and the Istio CNI node
    agent on every node: 20 pods (7 on the busiest node), 3135m CPU, 6392 MiB memory, so about
    59% of the pods, 46% of the CPU and 40% of the memory stay free. The largest pod, istiod
    (500m/2048Mi), fits a node's 1705m/3326Mi left after aws-node, kube-proxy and istio-cni.
    """
    dev = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    config = {
        key.split(":", 1)[1]: json.dumps(value) if isinstance(value, list) else str(value)
        for key, value in dev.items()
        if key.startswith("canary:")
    }
    plan = check_capacity(settings_of(config), describe)
    assert plan is not None and plan.fits and warnings == []
    assert plan.node == NodeCapacity("t3a.medium", max_pods=17, cpu_m=1930, memory_mib=3554)
    assert (plan.node_count, plan.capacity_pods, plan.capacity) == (3, 51, Requests(5790, 10662))
    # Everything but the app: 2 coredns, 3 each of aws-node, kube-proxy and istio-cni, 2 istiod,
    # 2 gateways, 3 addons.
    assert plan.pods == 18 + 2 and plan.pods_per_node == 3 + 4
    assert plan.needed == Requests(2835, 6008) + app_pod() + app_pod()
    assert app_pod() == Requests(150, 192), "the docstring's numbers assume the seed's 50m/64Mi app requests"
    assert plan.needed == Requests(3135, 6392)
    assert plan.too_big_for_a_node == () and min(plan.headroom.values()) > 0.4


def test_one_t3a_medium_node_is_short_of_cpu_and_memory() -> None:
    """1 x t3a.medium: 2685m CPU and 5936 MiB needed against 1930m and 3554 MiB."""
    plan = plan_of({"nodeDesiredCount": "1"})
    assert not plan.fits and set(plan.shortfall) == {"cpu", "memory"}
    message = failure_of({"nodeDesiredCount": "1"})
    short = plan.needed.cpu_m - 1930, plan.needed.memory_mib - 3554
    assert f"short by {short[0]}m CPU, {short[1]} MiB memory" in message, message
    assert "nodeInstanceType = t3a.medium, nodeDesiredCount = 1 (nodeMinCount 0, nodeMaxCount 4)" in message
    assert "istiod: 2 x 500m/2048Mi" in message.split("largest first:")[1].splitlines()[1], "biggest consumer first"
    fixes = message.split("Fix one of:")[1]
    assert "nodeDesiredCount = 2 (2 x t3a.medium)" in fixes
    assert "nodeMinCount 0 lets the group scale in below 2 nodes" in fixes
    assert (
        "nodeInstanceType = t3a.xlarge (the smallest t3a type" in fixes and "smallest in the table: c5.xlarge" in fixes
    )
    assert "`pulumi config set grafana false`: frees 1 pod, 250m CPU, 256 MiB memory (not enough on its own)" in fixes
    assert "`pulumi config set kiali false`: frees 1 pod, 10m CPU, 64 MiB memory (not enough on its own)" in fixes
    assert "(and grafana and kiali, which need it): frees 3 pods, 760m CPU, 832 MiB memory" in fixes
    assert "prefix delegation" not in fixes, "pods are not what is short"
    assert "nothing was changed" in message


def test_istiod_does_not_fit_a_t3_small_at_any_count() -> None:
    message = failure_of({"nodeDesiredCount": "1", "nodeInstanceType": "t3.small"})
    assert "at most 11 pods, 1930m CPU and 1572 MiB memory allocatable" in message
    assert "one istiod pod requests 500m/2048Mi, more than a t3.small node has left" in message
    assert "(1705m/1344Mi)" in message
    assert "no node count helps: istiod (500m/2048Mi) does not fit one t3.small node" in message
    assert "nodeInstanceType = t3.xlarge" in message


def test_the_largest_pod_must_fit_next_to_the_daemonsets() -> None:
    """2100 MiB allocatable holds istiod's 2048Mi alone, but not beside aws-node and kube-proxy (128Mi)."""
    daemons = [Footprint(name, 10, Requests(64, 64), per_node=True) for name in ("aws-node", "kube-proxy")]
    istiod = Footprint("istiod", 1, Requests(500, 2048))
    custom = InstanceType("custom", 2, 2100 + 255 + 11 * 17 + 100, 3, 6)  # 17 pods, 2100 MiB allocatable
    plan = CapacityPlan(custom, 10, False, (*daemons, istiod))
    assert plan.node == NodeCapacity("custom", 17, 1930, 2100)
    assert plan.shortfall == {} and plan.room_per_node == Requests(1802, 1972)
    assert plan.too_big_for_a_node == (istiod,) and not plan.fits


def test_too_many_pods_offers_prefix_delegation_and_more_nodes() -> None:
    config = {"stableReplicas": "20", "canaryReplicas": "20"}
    plan = plan_of(config)
    assert plan.shortfall["pods"] == plan.pods - 51 > 0
    message = failure_of(config)
    assert f"short by {plan.pods - 51} pods" in message
    assert (plan.pods, plan.pods_per_node) == (58, 3 + 17), "49 pods that are not DaemonSets over 3 nodes: 17 on one"
    assert "(20 pods on the busiest node)" in message
    assert "pulumi config set vpcCniPrefixDelegation true" in message
    assert "110 pods per t3a.medium node instead of 17, 2531 MiB allocatable instead of 3554" in message
    assert "nodeDesiredCount = 5 and nodeMaxCount = 5 (5 x t3a.medium)" in message


def test_little_headroom_warns(warnings: list[str]) -> None:
    """3 x t3a.medium with 6 + 6 replicas: 4635m of 5790m CPU requested, just under 20% left."""
    plan = check_capacity(settings_of({"stableReplicas": "6", "canaryReplicas": "6"}), describe)
    assert plan is not None and plan.fits
    assert [dimension for dimension, share in plan.headroom.items() if share < 0.2] == ["cpu"]
    (warning,) = warnings
    free = 1 - plan.needed.cpu_m / 5790
    assert f"CPU {plan.needed.cpu_m}m of 5790m ({free:.0%} free)" in warning, warning
    assert "memory" not in warning.split("headroom:")[1].split(".")[0], "only the tight dimension is named"
    assert "nodeDesiredCount = 4 leaves at least 20% of each" in warning
    assert "nodeMinCount 0 lets the group scale in below the 3 nodes it needs" in warning
    assert warnings == [
        "node group default-pool (3 x t3a.medium) holds the stack with little headroom: CPU 4635m of 5790m "
        "(20% free). Requests are a floor, not usage, and a rolling update starts a new pod before it stops an "
        "old one. nodeDesiredCount = 4 leaves at least 20% of each. nodeMinCount 0 lets the group scale in below "
        "the 3 nodes it needs, which evicts pods that then stay Pending."
    ]


def test_warning_advises_the_fewest_nodes_with_enough_headroom(warnings: list[str]) -> None:
    config = {"nodeDesiredCount": "11", "nodeMaxCount": "450", "stableReplicas": "50", "canaryReplicas": "50"}
    check_capacity(settings_of(config), describe)
    (warning,) = warnings
    match = re.search(r"nodeDesiredCount = (\d+) leaves at least 20% of each", warning)
    assert match, warning
    advised = int(match.group(1))
    assert min(plan_of({**config, "nodeDesiredCount": str(advised)}).headroom.values()) >= 0.2
    assert min(plan_of({**config, "nodeDesiredCount": str(advised - 1)}).headroom.values()) < 0.2


def test_no_nodes_warns_instead_of_failing(warnings: list[str]) -> None:
    """nodeDesiredCount 0 is the documented way to stop paying for nodes."""
    plan = check_capacity(settings_of({"nodeDesiredCount": "0"}), describe)
    assert plan is not None and not plan.fits and plan.pods_per_node == plan.pods
    (warning,) = warnings
    assert "nodeDesiredCount = 0" in warning and "at least 2 x t3a.medium" in warning


def test_no_nodes_of_a_type_no_count_of_which_holds_the_stack_warns_without_advising_a_count(
    warnings: list[str],
) -> None:
    check_capacity(settings_of({"nodeDesiredCount": "0", "nodeInstanceType": "t3.nano"}), describe)
    assert warnings == [
        "nodeDesiredCount = 0: node group default-pool has no node, so no pod of the stack can run until it is "
        "scaled up"
    ]


def test_headroom_exactly_at_the_warning_threshold_is_enough(
    warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = check_capacity(settings_of(), describe)
    assert plan is not None and warnings == []
    monkeypatch.setattr(preflight, "HEADROOM_WARNING", min(plan.headroom.values()))
    check_capacity(settings_of(), describe)
    assert warnings == []
    monkeypatch.setattr(preflight, "HEADROOM_WARNING", min(plan.headroom.values()) + 0.001)
    check_capacity(settings_of(), describe)
    assert len(warnings) == 1


# Per type of the mocked DescribeInstanceTypes: max pods without the recommended cap (the EKS
# AMI's eni-max-pods.txt), a managed node's max pods without and with prefix delegation, and
# whether the seed's stack fits 3 of them.
EXPECTED = {
    "t3.nano": (4, 4, 34, False),
    "t3.small": (11, 11, 110, False),
    "t3a.small": (8, 8, 98, False),
    "t3a.medium": (17, 17, 110, True),
    "t3a.xlarge": (58, 58, 110, True),
    "t4g.small": (11, 11, 110, False),
    "t4g.medium": (17, 17, 110, True),
    "t2.medium": (17, 17, 17, True),  # Xen: no prefix delegation
    "m4.large": (20, 20, 20, True),  # Xen
    "m5.large": (29, 29, 110, True),
    "m5.4xlarge": (234, 110, 110, True),  # 16 vCPUs: at most 110
    "m5.8xlarge": (234, 234, 250, True),  # 32 vCPUs: at most 250
    "m6a.large": (29, 29, 110, True),
    "m7i.large": (29, 29, 110, True),
    "m7i-flex.large": (29, 29, 110, True),
    "m7g.large": (29, 29, 110, True),
    "c6g.large": (29, 29, 110, True),
    "c7i.xlarge": (58, 58, 110, True),
    "c5.9xlarge": (234, 234, 250, True),
    "r6i.large": (29, 29, 110, True),
    "r7g.xlarge": (58, 58, 110, True),
    "c6in.32xlarge": (394, 250, 250, True),  # two network cards: pods get the 8 interfaces of the default one
}


def test_every_mocked_type_has_its_expectation() -> None:
    assert EXPECTED.keys() == EC2_INSTANCE_TYPES.keys() and len(EXPECTED) >= 15


@pytest.mark.parametrize("name", EXPECTED)
def test_max_pods_from_aws_facts_as_the_eks_ami_computes_them(name: str) -> None:
    instance = describe(name)
    eni, managed, delegated, _ = EXPECTED[name]
    assert (eni_max_pods(instance), max_pods(instance), max_pods(instance, prefix_delegation=True)) == (
        eni,
        managed,
        delegated,
    )
    node = node_capacity(instance)
    assert node.cpu_m == instance.vcpus * 1000 - reserved_cpu_m(instance.vcpus)
    assert node.memory_mib == instance.memory_mib - (255 + 11 * managed) - 100


@pytest.mark.parametrize("name", EXPECTED)
def test_the_seed_stack_on_three_nodes_of_each_type(name: str, warnings: list[str]) -> None:
    """The stack as the program runs it: a type that holds it registers resources, one that does not
    is refused with the numbers and registers nothing."""
    run = ProgramRun()
    if EXPECTED[name][3]:
        run_program({"nodeInstanceType": name}, run=run)
        assert run.named("cluster-nodes").inputs["instanceTypes"] == [name]
        return
    with pytest.raises(SettingsError) as refused:
        run_program({"nodeInstanceType": name}, run=run)
    node = node_capacity(describe(name))
    message = str(refused.value)
    assert f"each {name} node: at most {node.max_pods} pods, {node.cpu_m}m CPU and {node.memory_mib} MiB" in message
    assert "one istiod pod requests 500m/2048Mi" in message and "nothing was changed" in message
    assert run.resources == []


def test_t3_nano_is_refused_with_its_numbers() -> None:
    message = failure_of({"nodeInstanceType": "t3.nano"})
    assert "each t3.nano node: at most 4 pods, 1930m CPU and 113 MiB memory allocatable" in message, message
    assert "short by" in message and "pods" in message.split("short by")[1].splitlines()[0]
    # Every line: the numbers, the pods too big for a node, the requests and each fix.
    assert message.splitlines() == [
        "node group default-pool cannot hold what the stack declares (nothing was changed):",
        (
            "  nodeInstanceType = t3.nano, nodeDesiredCount = 3 (nodeMinCount 0, nodeMaxCount 4), VPC CNI prefix "
            "delegation off"
        ),
        "  each t3.nano node: at most 4 pods, 1930m CPU and 113 MiB memory allocatable",
        (
            "  needed: 20 pods, 3135m CPU, 6392 MiB memory (7 pods on the busiest node); the node group offers "
            "12 pods, 5790m CPU, 339 MiB memory (3 x t3.nano)"
        ),
        "  short by 8 pods, 6053 MiB memory",
        (
            "  one coredns pod requests 100m/70Mi, more than a t3.nano node has left after aws-node and "
            "kube-proxy (1705m/-115Mi)"
        ),
        (
            "  one istiod pod requests 500m/2048Mi, more than a t3.nano node has left after aws-node and "
            "kube-proxy (1705m/-115Mi)"
        ),
        (
            "  one istio-ingressgateway pod requests 100m/128Mi, more than a t3.nano node has left after "
            "aws-node and kube-proxy (1705m/-115Mi)"
        ),
        (
            "  one prometheus pod requests 500m/512Mi, more than a t3.nano node has left after aws-node and "
            "kube-proxy (1705m/-115Mi)"
        ),
        (
            "  one grafana pod requests 250m/256Mi, more than a t3.nano node has left after aws-node and "
            "kube-proxy (1705m/-115Mi)"
        ),
        (
            "  one kiali pod requests 10m/64Mi, more than a t3.nano node has left after aws-node and kube-proxy "
            "(1705m/-115Mi)"
        ),
        (
            "  one nginx-v1 pod requests 150m/192Mi, more than a t3.nano node has left after aws-node and "
            "kube-proxy (1705m/-115Mi)"
        ),
        (
            "  one nginx-v2 pod requests 150m/192Mi, more than a t3.nano node has left after aws-node and "
            "kube-proxy (1705m/-115Mi)"
        ),
        "  requests (pods x per pod), largest first:",
        "    istiod: 2 x 500m/2048Mi = 1000m CPU, 4096 MiB memory",
        "    prometheus: 1 x 500m/512Mi = 500m CPU, 512 MiB memory",
        "    kube-proxy: 3 x 100m/64Mi = 300m CPU, 192 MiB memory (one per node)",
        "    istio-cni: 3 x 100m/100Mi = 300m CPU, 300 MiB memory (one per node)",
        "    grafana: 1 x 250m/256Mi = 250m CPU, 256 MiB memory",
        "    coredns: 2 x 100m/70Mi = 200m CPU, 140 MiB memory",
        "    istio-ingressgateway: 2 x 100m/128Mi = 200m CPU, 256 MiB memory",
        "    nginx-v1: 1 x 150m/192Mi = 150m CPU, 192 MiB memory (app 50m/64Mi + istio-proxy sidecar 100m/128Mi)",
        "    nginx-v2: 1 x 150m/192Mi = 150m CPU, 192 MiB memory (app 50m/64Mi + istio-proxy sidecar 100m/128Mi)",
        "    aws-node: 3 x 25m/64Mi = 75m CPU, 192 MiB memory (one per node)",
        "    kiali: 1 x 10m/64Mi = 10m CPU, 64 MiB memory",
        "Fix one of:",
        (
            "  - no node count helps: coredns (100m/70Mi), istiod (500m/2048Mi), istio-ingressgateway "
            "(100m/128Mi), prometheus (500m/512Mi), grafana (250m/256Mi), kiali (10m/64Mi), nginx-v1 "
            "(150m/192Mi), nginx-v2 (150m/192Mi) does not fit one t3.nano node; pick a larger type"
        ),
        (
            "  - nodeInstanceType = t3.medium (the smallest t3 type that holds it on 3 nodes; smallest in the "
            "table: c5.large)"
        ),
        (
            "  - `pulumi config set vpcCniPrefixDelegation true` (VPC CNI prefix delegation, for nodes launched "
            "after it): 34 pods per t3.nano node instead of 4, -217 MiB allocatable instead of 113 (not enough "
            "on its own: still short by 7043 MiB memory)"
        ),
        (
            "  - `pulumi config set prometheus false` (and grafana and kiali, which need it): frees 3 pods, 760m "
            "CPU, 832 MiB memory (not enough on its own)"
        ),
        "  - `pulumi config set grafana false`: frees 1 pod, 250m CPU, 256 MiB memory (not enough on its own)",
        "  - `pulumi config set kiali false`: frees 1 pod, 10m CPU, 64 MiB memory (not enough on its own)",
    ]


@pytest.mark.parametrize("name", ["x9.huge", "t3a.mediun", "t3.micro"])  # t3.micro: not in this region's mock
def test_a_type_aws_does_not_know_is_refused_with_aws_answer(name: str) -> None:
    run = ProgramRun()
    with pytest.raises(SettingsError) as refused:
        run_program({"nodeInstanceType": name}, run=run)
    message = str(refused.value)
    assert f"nodeInstanceType = '{name}': AWS does not know this instance type" in message
    assert f"The following supplied instance types do not exist: [{name}]" in message, "AWS's own words"
    assert ("Did you mean t3a.medium?" in message) == (name == "t3a.mediun")
    assert f"Did you mean {name}?" not in message
    assert ("(nothing was changed).\n  AWS said: " in message) == (name == "x9.huge"), "no close name: no hint"
    assert run.resources == [] and run.invokes == ["aws:ec2/getInstanceType:getInstanceType"]


def test_a_failed_lookup_is_not_blamed_on_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or no network: the type may be fine, so the message says what failed instead."""
    import pulumi

    def offline(**_: object) -> None:
        raise Exception("invoke of aws:ec2/getInstanceType:getInstanceType failed: no valid credential sources found")

    monkeypatch.setattr("pulumi_aws.ec2.get_instance_type", offline)
    with pytest.raises(pulumi.RunError) as failed:
        check_capacity(settings_of())
    assert not isinstance(failed.value, SettingsError)
    assert "could not read the facts of nodeInstanceType t3a.medium from AWS" in str(failed.value)
    assert "no valid credential sources found" in str(failed.value)


@pytest.mark.parametrize("name", ["m7g.large", "t4g.medium", "r7g.xlarge"])
def test_an_arm64_type_warns_once_about_the_app_images(name: str, warnings: list[str]) -> None:
    run_program({"nodeInstanceType": name})
    (arm,) = [warning for warning in warnings if "arm64" in warning]
    assert arm == (
        f"nodeInstanceType = {name} is an arm64 (Graviton) type: the mesh's images (Istio, Prometheus, Grafana, "
        "Kiali) are published for arm64, but whether the app's (quay.io/shardul/nginx:v1, quay.io/shardul/nginx:v2) "
        "are cannot be known before a node pulls them; an image built only for amd64 fails there with "
        "'exec format error'"
    )


def test_an_amd64_type_does_not_warn_about_architecture(warnings: list[str]) -> None:
    run_program({"nodeInstanceType": "m6a.large"})
    assert not [warning for warning in warnings if "arm64" in warning]


def test_suggestions_keep_the_architecture() -> None:
    """One t4g.small cannot hold the stack; the types suggested are arm64 too."""
    message = failure_of({"nodeInstanceType": "t4g.small"})
    suggested = re.search(r"nodeInstanceType = (\S+) \(the smallest", message)
    assert suggested and SUGGESTIONS[suggested.group(1)].architecture == "arm64", message
    assert "nodeInstanceType = t4g.medium (the smallest t4g type" in message
    assert "smallest in the table: c7g.large" in message, "arm64 as well"


def test_prefix_delegation_raises_max_pods_and_lowers_allocatable_memory() -> None:
    assert node_capacity(describe("t3a.medium"), prefix_delegation=True) == NodeCapacity("t3a.medium", 110, 1930, 2531)
    assert node_capacity(describe("t2.medium"), prefix_delegation=True).max_pods == 17, "Xen: no prefixes"
    plan = plan_of(prefix_delegation=True)
    assert plan.fits and plan.prefix_delegation and plan.capacity_pods == 330


def test_allocatable_follows_the_eks_ami_reservations() -> None:
    """nodeadm's integer arithmetic: (millicores in range) x share // 10000, per range."""
    assert [reserved_cpu_m(vcpus) for vcpus in (1, 2, 4, 5, 8, 16, 32, 36, 448)] == [
        *(60, 70, 80, 82, 90, 110, 150, 160),
        1190,  # u7i-12tb.224xlarge's 448: the 0.25 % of 444 cores, where a millicore more per core shows
    ]
    assert node_capacity(describe("t3a.medium")) == NodeCapacity(
        "t3a.medium", 17, 2000 - 70, 4096 - 255 - 11 * 17 - 100
    )
    assert node_capacity(describe("m5.4xlarge")) == NodeCapacity("m5.4xlarge", 110, 16000 - 110, 65536 - 1565)


def test_the_suggestion_table_agrees_with_aws_where_both_know_a_type() -> None:
    for name in EC2_INSTANCE_TYPES.keys() & SUGGESTIONS.keys():
        assert SUGGESTIONS[name] == describe(name), name


def test_existing_cluster_mode_is_skipped(warnings: list[str]) -> None:
    settings = settings_of(EXISTING_CLUSTER)
    assert plan_capacity(settings, describe("t3a.medium")) is None

    def no_lookup(name: str) -> InstanceType:
        raise AssertionError("no AWS lookup in existing-cluster mode")

    assert check_capacity(settings, no_lookup) is None
    assert warnings == []


@pytest.mark.parametrize(
    "off", [("kiali",), ("grafana",), ("grafana", "kiali"), ("prometheus", "grafana", "kiali")], ids="+".join
)
def test_turning_addons_off_frees_exactly_their_requests(off: tuple[str, ...]) -> None:
    full = plan_of()
    lean = plan_of(dict.fromkeys(off, "false"))
    assert full.pods - lean.pods == len(off)
    freed = sum((ADDON_REQUESTS[addon] for addon in off), Requests(0, 0))
    assert Requests(full.needed.cpu_m - lean.needed.cpu_m, full.needed.memory_mib - lean.needed.memory_mib) == freed


def test_replicas_scale_the_app_with_its_sidecars() -> None:
    base = plan_of()
    more = plan_of({"stableReplicas": "3", "canaryReplicas": "2"})
    pod = app_pod()
    assert more.pods - base.pods == 3
    assert more.needed == base.needed + Requests(3 * pod.cpu_m, 3 * pod.memory_mib)
    canary = next(item for item in more.items if item.name == "nginx-v2")
    assert (canary.pods, canary.pod) == (2, pod) and "istio-proxy sidecar 100m/128Mi" in canary.note


def test_nodes_add_their_daemonset_pods() -> None:
    three, four = plan_of(), plan_of({"nodeDesiredCount": "4"})
    assert four.pods - three.pods == 3, "aws-node, kube-proxy and istio-cni"
    assert four.needed == three.needed + Requests(225, 228)
    daemonsets = {item.name: (item.pods, item.note) for item in four.items if item.per_node}
    assert daemonsets == dict.fromkeys(("aws-node", "kube-proxy", "istio-cni"), (4, "one per node"))


def test_istio_installed_elsewhere_still_runs_on_the_node_group() -> None:
    plan = plan_of({"installIstio": "false"})
    istiod = next(item for item in plan.items if item.name == "istiod")
    assert istiod.pod == Requests(500, 2048) and "installIstio = false" in istiod.note
    assert plan.needed + Requests(300, 300) == plan_of().needed, "all but the Istio CNI agents on 3 nodes"


@pytest.mark.parametrize(("quantity", "expected"), [("50m", 50), ("0.1", 100), (1, 1000), ("1.5", 1500), ("250m", 250)])
def test_cpu_quantities(quantity: str | int, expected: int) -> None:
    assert millicores(quantity) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"), [("64Mi", 64), ("2Gi", 2048), ("128M", 123), ("512Ki", 1), (str(2**20), 1), (0, 0)]
)
def test_memory_quantities(quantity: str | int, expected: int) -> None:
    assert mebibytes(quantity) == expected


def test_bad_quantities_are_refused() -> None:
    with pytest.raises(ValueError, match="not a CPU quantity"):
        millicores("lots")
    with pytest.raises(ValueError, match=re.escape("not a memory quantity: '1GB'")):
        mebibytes("1GB")


def test_the_program_stops_before_any_resource_when_the_stack_does_not_fit() -> None:
    from tests.harness import ProgramRun, run_program

    run = ProgramRun()
    with pytest.raises(SettingsError, match="cannot hold what the stack declares"):
        run_program({"nodeDesiredCount": "1"}, run=run)
    assert run.resources == []


def test_capacity_imports_only_the_layers_footprints() -> None:
    """capacity/ adds footprints up; what the layers install stays theirs (no chart values or manifests here)."""
    import ast

    imported = set()
    for source in (PROJECT_DIR / "capacity").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    layers = {name for name in imported if name.split(".")[0] in ("infra", "mesh", "workloads")}
    assert layers == {"infra", "mesh", "workloads"}, "each layer's public footprint(), nothing deeper"


def fixes_of(config: dict[str, str]) -> list[str]:
    return failure_of(config).split("Fix one of:\n")[1].splitlines()


def test_each_fix_names_the_change_and_whether_it_is_enough_on_its_own() -> None:
    """The fixes a newcomer copies: each names the setting and value, and says if it alone fits the stack."""
    assert fixes_of({"nodeDesiredCount": "1", "nodeInstanceType": "m6a.large"}) == [
        "  - nodeDesiredCount = 2 (2 x m6a.large); nodeMinCount 0 lets the group scale in below 2 nodes, which "
        "evicts pods that then stay Pending (nodeMinCount = 2 prevents it)",
        "  - nodeInstanceType = m6a.xlarge (the smallest m6a type that holds it on 1 node; smallest in the table: "
        "c5.xlarge)",
        "  - `pulumi config set prometheus false` (and grafana and kiali, which need it): frees 3 pods, 760m CPU, "
        "832 MiB memory (enough on its own)",
        "  - `pulumi config set grafana false`: frees 1 pod, 250m CPU, 256 MiB memory (not enough on its own)",
        "  - `pulumi config set kiali false`: frees 1 pod, 10m CPU, 64 MiB memory (not enough on its own)",
    ]


def test_a_type_outside_the_tables_families_gets_the_smallest_type_that_fits() -> None:
    """t2 is not a family of the suggestion table: the smallest fitting type of any family, named without one."""
    config = {"nodeDesiredCount": "2", "nodeInstanceType": "t2.medium", "stableReplicas": "5", "canaryReplicas": "5"}
    fixes = fixes_of(config)
    assert fixes[1] == "  - nodeInstanceType = c5.xlarge (the smallest type that holds it on 2 nodes)"


def test_prefix_delegation_is_offered_with_what_it_changes_and_what_is_still_short() -> None:
    fixes = fixes_of({"stableReplicas": "20", "canaryReplicas": "20"})
    assert fixes[2] == (
        "  - `pulumi config set vpcCniPrefixDelegation true` (VPC CNI prefix delegation, for nodes launched after "
        "it): 110 pods per t3a.medium node instead of 17, 2531 MiB allocatable instead of 3554 (not enough on its "
        "own: still short by 3045m CPU, 6095 MiB memory)"
    )


def test_an_addon_already_off_is_not_offered_and_the_others_still_are() -> None:
    fixes = fixes_of({"nodeDesiredCount": "2", "nodeInstanceType": "t3a.small", "grafana": "false"})
    assert fixes[2:] == [
        "  - `pulumi config set prometheus false` (and kiali, which needs it): frees 2 pods, 510m CPU, 576 MiB "
        "memory (not enough on its own)",
        "  - `pulumi config set kiali false`: frees 1 pod, 10m CPU, 64 MiB memory (not enough on its own)",
    ]


def test_the_failure_says_prefix_delegation_is_on() -> None:
    message = failure_of({"nodeDesiredCount": "1", "vpcCniPrefixDelegation": "true"})
    assert message.splitlines()[1] == (
        "  nodeInstanceType = t3a.medium, nodeDesiredCount = 1 (nodeMinCount 0, nodeMaxCount 4), "
        "VPC CNI prefix delegation on"
    )
    assert not any("vpcCniPrefixDelegation" in fix for fix in message.split("Fix one of:")[1].splitlines())


def test_little_pod_headroom_names_the_busiest_node(warnings: list[str]) -> None:
    config = {
        "nodeInstanceType": "m5.4xlarge",
        "stableReplicas": "100",
        "canaryReplicas": "85",
        "nodeDesiredCount": "2",
    }
    check_capacity(settings_of(config), describe)
    assert warnings == [
        "node group default-pool (2 x m5.4xlarge) holds the stack with little headroom: pods 100 of 110 on the "
        "busiest node (9% free), CPU 30360m of 31780m (4% free). Requests are a floor, not usage, and a rolling "
        "update starts a new pod before it stops an old one. nodeDesiredCount = 3 leaves at least 20% of each. "
        "nodeMinCount 0 lets the group scale in below the 2 nodes it needs, which evicts pods that then stay Pending."
    ]


def test_a_min_count_that_keeps_the_nodes_needed_is_not_warned_about(warnings: list[str]) -> None:
    check_capacity(settings_of({"stableReplicas": "6", "canaryReplicas": "6", "nodeMinCount": "3"}), describe)
    (warning,) = warnings
    assert warning.endswith("nodeDesiredCount = 4 leaves at least 20% of each.")


def test_one_node_is_one_node(warnings: list[str]) -> None:
    config = {"nodeInstanceType": "t3a.xlarge", "stableReplicas": "4", "canaryReplicas": "4", "nodeDesiredCount": "1"}
    check_capacity(settings_of(config), describe)
    (warning,) = warnings
    assert "node group default-pool (1 x t3a.xlarge) holds the stack with little headroom" in warning
    assert "nodeMinCount 0 lets the group scale in below the 1 node it needs, which evicts" in warning


def test_a_raised_desired_count_within_the_max_count_leaves_the_max_count_alone() -> None:
    fixes = fixes_of({"nodeDesiredCount": "1", "nodeInstanceType": "m6a.large", "nodeMaxCount": "2"})
    assert fixes[0].startswith("  - nodeDesiredCount = 2 (2 x m6a.large);"), fixes[0]


def small_pods(count: int) -> Footprint:
    """Pods small enough that only their number can be short."""
    return Footprint("small", count, Requests(10, 16))


def node_group(instance_type: str, desired: int) -> NodeGroup:
    config = {"nodeInstanceType": instance_type, "nodeDesiredCount": str(desired), "nodeMaxCount": "450"}
    return settings_of(config).cluster.node_group  # type: ignore[union-attr]


def delegation_fix(plan: CapacityPlan) -> str:
    (fix,) = [
        line for line in failure(node_group("m5.large", plan.node_count), plan).splitlines() if "Delegation" in line
    ]
    return fix


def test_prefix_delegation_alone_is_enough_when_only_the_number_of_pods_is_short() -> None:
    plan = plan_for(describe("m5.large"), 1, False, [small_pods(40)])  # 29 pods per node; 110 with delegation
    assert plan.shortfall == {"pods": 11}
    fix = delegation_fix(plan)
    assert "110 pods per m5.large node instead of 29" in fix and fix.endswith(" (enough on its own)"), fix


def test_prefix_delegation_that_leaves_no_shortfall_but_a_pod_too_big_says_what_is_still_missing() -> None:
    too_big = Footprint("big", 1, Requests(2500, 16))  # more CPU than an m5.large node has: fits 3 nodes' total
    plan = plan_for(describe("m5.large"), 3, False, [small_pods(100), too_big])
    assert set(plan.shortfall) == {"pods"} and plan.too_big_for_a_node == (too_big,)
    assert delegation_fix(plan).endswith("(not enough on its own: still short by room for its largest pods)")


def test_the_node_count_advised_goes_up_to_the_largest_the_settings_accept() -> None:
    instance = describe("m5.large")
    assert nodes_needed(plan_for(instance, 1, False, [small_pods(MAX_NODES * 29)])) == MAX_NODES
    assert nodes_needed(plan_for(instance, 1, False, [small_pods(MAX_NODES * 29 + 1)])) is None


def test_no_advice_when_no_node_count_leaves_enough_headroom() -> None:
    """A DaemonSet that takes most of each node's CPU: more nodes never free any."""
    daemonset = Footprint("agent", 0, Requests(1700, 16), per_node=True)
    plan = plan_for(describe("m5.large"), 2, False, [daemonset])
    tight = {dimension: share for dimension, share in plan.headroom.items() if share < HEADROOM_WARNING}
    assert plan.fits and set(tight) == {"cpu"}
    message = warning(node_group("m5.large", 2), plan, tight)
    assert "stops an old one. nodeMinCount 0 lets the group scale in" in message, message


def test_requests_are_listed_by_their_largest_share_of_either_dimension() -> None:
    """A pod heavy in memory ranks by memory, one heavy in CPU by CPU: 1200 of 1300 MiB is before 1000 of 1100m."""
    cpu_heavy = Footprint("cpu-heavy", 1, Requests(1000, 100))
    memory_heavy = Footprint("memory-heavy", 1, Requests(100, 1200))
    plan = plan_for(describe("t3.nano"), 1, False, [cpu_heavy, memory_heavy])
    listed = failure(node_group("t3.nano", 1), plan).split("largest first:\n")[1].splitlines()[:2]
    assert listed == [
        "    memory-heavy: 1 x 100m/1200Mi = 100m CPU, 1200 MiB memory",
        "    cpu-heavy: 1 x 1000m/100Mi = 1000m CPU, 100 MiB memory",
    ]


def test_the_max_pods_ceiling_rises_above_30_vcpus() -> None:
    """The calculator caps max pods at 110, and at 250 above 30 vCPUs (with prefixes, addresses are plenty)."""
    ceilings = [
        max_pods(InstanceType(f"synthetic.{vcpus}", vcpus, vcpus * 4096, 8, 30), prefix_delegation=True)
        for vcpus in (30, 31)
    ]
    assert ceilings == [110, 250]


@pytest.mark.parametrize(
    ("pods", "advised"),
    [(MAX_NODES * 23, MAX_NODES), (MAX_NODES * 23 + 23, None)],  # 23 of an m5.large's 29 pods leave 20 %
    ids=["the-largest-count", "beyond-it"],
)
def test_the_roomy_node_count_advised_goes_up_to_the_largest_the_settings_accept(
    pods: int, advised: int | None
) -> None:
    plan = plan_for(describe("m5.large"), 1, False, [small_pods(pods)])
    tight = {dimension: share for dimension, share in plan.headroom.items() if share < HEADROOM_WARNING}
    message = warning(node_group("m5.large", 1), plan, tight)
    advice = f"nodeDesiredCount = {advised} leaves at least 20% of each."
    assert (advice in message) if advised else ("nodeDesiredCount =" not in message), message


def test_exactly_20_percent_free_is_enough_headroom() -> None:
    """88 of an m5.4xlarge's 110 pods leave 20 % free: not tight, and the roomy count advised reaches it."""
    at_the_line = plan_for(describe("m5.4xlarge"), 1, False, [small_pods(88)])
    assert at_the_line.headroom["pods"] == HEADROOM_WARNING
    below_it = plan_for(describe("m5.4xlarge"), 1, False, [small_pods(176)])
    tight = {dimension: share for dimension, share in below_it.headroom.items() if share < HEADROOM_WARNING}
    assert "nodeDesiredCount = 2 leaves at least 20% of each." in warning(node_group("m5.4xlarge", 1), below_it, tight)


def test_when_no_type_in_the_table_holds_it_the_fix_says_to_add_nodes_too() -> None:
    plan = plan_for(describe("m5.large"), 1, False, [small_pods(300)])  # 110 pods at most on any one node
    fixes = failure(node_group("m5.large", 1), plan).split("Fix one of:\n")[1].splitlines()
    assert "  - no x86_64 instance type in the table holds it on 1 node(s): add nodes too" in fixes, fixes
