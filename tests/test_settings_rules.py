"""Settings at their edges and across fields: the last value accepted, the first refused, who depends on whom."""

from __future__ import annotations

import json

import pytest

from settings import EksCluster, ExistingCluster, SettingsError, Vpc, load_settings
from tests.harness import EXISTING_CLUSTER, HEADER_ROUTE, DictConfig, plain_id

SECRET_VALUE = "0123456789abcdef"  # the shortest header value accepted


def accepted(config: dict[str, str]) -> bool:
    try:
        load_settings(DictConfig(config))
    except SettingsError:
        return False
    return True


def problems(config: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as error:
        load_settings(DictConfig(config))
    return [line[4:] for line in str(error.value).splitlines() if line.startswith("  - ")]


@pytest.mark.parametrize(
    ("key", "last_good", "first_bad"),
    [
        ("kubernetesVersion", "1.32", "1.31"),
        ("kubernetesVersion", "1.36", "1.37"),
        ("istioVersion", "1.28.0", "1.27.9"),
        ("vpcCidr", "10.0.0.0/16", "10.0.0.0/15"),
        ("vpcCidr", "10.0.0.0/20", "10.0.0.0/21"),
        ("vpcCidr", "10.0.0.0/16", "10.0.0.1/16"),
        ("availabilityZoneCount", "2", "1"),
        ("availabilityZoneCount", "6", "7"),
        ("nodeMaxCount", "450", "451"),
        ("nodeMaxCount", "4", "0"),
        ("stableReplicas", "100", "101"),
        ("canaryWeight", "100", "101"),
        ("canaryWeight", "0", "-1"),
        ("mirrorPercent", "0", "-1"),
        ("appName", "a" * 60, "a" * 61),
        ("clusterName", "c" * 100, "c" * 101),
        ("clusterName", "c-1_x", "-c"),
        ("nodeInstanceType", "m6i.xlarge", "m6i"),
        ("stableImage", "repo/app@sha256:" + "a" * 64, "repo/app@sha256:" + "a" * 63),
        ("stableImage", "registry.example:5000/team/app:1.0", "repo/app:"),
        ("canaryHeaderName", "x-canary-2", "x_canary"),
        ("apiAccessCidrs", '["203.0.113.0/24"]', '["203.0.113.1/24"]'),
        ("apiAccessCidrs", '["203.0.113.0/24"]', '["203.0.113.0/33"]'),
        ("clusterAdminArns", '["arn:aws:iam::123456789012:user/ops"]', '["arn:aws:iam::12345678901:user/ops"]'),
        ("installIstio", " TRUE ", "1"),
    ],
    ids=lambda value: plain_id(value) if isinstance(value, str) else None,
)
def test_the_edges_of_each_setting(key: str, last_good: str, first_bad: str) -> None:
    extra = {"canaryReplicas": "1"} if key in ("canaryWeight", "mirrorPercent") else {}
    if key == "canaryHeaderName":
        extra = {"canaryHeaderValue": SECRET_VALUE}
    assert accepted({key: last_good, **extra}), last_good
    assert not accepted({key: first_bad, **extra}), first_bad


def test_integers_accept_signs_and_spaces_but_nothing_else() -> None:
    assert load_settings(DictConfig({"canaryWeight": " +7 "})).app.canary_weight == 7
    for bad in ("7.0", "1e1", "0x7", "7 %"):
        assert not accepted({"canaryWeight": bad}), bad


def test_node_counts_are_checked_against_each_other() -> None:
    assert accepted({"nodeMinCount": "3", "nodeDesiredCount": "3", "nodeMaxCount": "3"})
    assert problems({"nodeMinCount": "2", "nodeDesiredCount": "1", "nodeMaxCount": "3"}) == [
        "nodeDesiredCount = 1: must satisfy nodeMinCount (2) <= nodeDesiredCount <= nodeMaxCount (3)"
    ]


def test_an_existing_vpc_needs_its_subnets_and_a_dedicated_one_none() -> None:
    good = {
        "vpcId": "vpc-0123abcd",
        "publicSubnetIds": '["subnet-0000000a", "subnet-0000000b"]',
        "privateSubnetIds": '["subnet-0000000c", "subnet-0000000d"]',
    }
    settings = load_settings(DictConfig(good))
    assert isinstance(settings.cluster, EksCluster)
    assert settings.cluster.vpc == Vpc(
        "192.168.0.0/16",
        2,
        "vpc-0123abcd",
        ("subnet-0000000a", "subnet-0000000b"),
        ("subnet-0000000c", "subnet-0000000d"),
    )
    assert problems({**good, "privateSubnetIds": '["subnet-0000000c"]'}) == [
        'privateSubnetIds = ["subnet-0000000c"]: must list at least 2 subnets in different zones when vpcId is set'
    ]
    assert problems({"privateSubnetIds": '["subnet-0000000c", "subnet-0000000d"]'}) == [
        'vpcId = "": must be set when publicSubnetIds or privateSubnetIds are given'
    ]
    assert problems({**good, "vpcId": "subnet-0123abcd"}) == [
        'vpcId = "subnet-0123abcd": must be a VPC ID like vpc-0123abcd, or empty to create a VPC'
    ]


def test_traffic_needs_pods_on_both_sides() -> None:
    assert accepted({"canaryWeight": "0", "canaryReplicas": "0"})
    assert accepted({"canaryWeight": "100", "stableReplicas": "0"})
    assert problems({"canaryWeight": "1", "canaryReplicas": "0"}) == [
        "canaryReplicas = 0: must be at least 1 while canaryWeight (1) sends it traffic"
    ]
    assert problems({"canaryWeight": "99", "stableReplicas": "0"}) == [
        "stableReplicas = 0: must be at least 1 while canaryWeight (99) leaves it traffic"
    ]
    assert problems({"mirrorPercent": "1", "canaryReplicas": "0"}) == [
        "canaryReplicas = 0: must be at least 1 while canaryHeaderName or mirrorPercent send it requests"
    ]
    assert problems({"canaryHeaderName": "x-canary", "canaryHeaderValue": SECRET_VALUE, "canaryReplicas": "0"}) == [
        "canaryReplicas = 0: must be at least 1 while canaryHeaderName or mirrorPercent send it requests"
    ]


def test_the_header_route_is_off_without_a_name_and_needs_a_long_value_with_one() -> None:
    assert load_settings(DictConfig({"canaryHeaderValue": "ignored"})).app.canary_header is None
    header = load_settings(DictConfig({"canaryHeaderName": "x-canary", "canaryHeaderValue": f" {SECRET_VALUE} "}))
    assert header.app.canary_header == ("x-canary", SECRET_VALUE)
    assert not accepted({"canaryHeaderName": "x-canary", "canaryHeaderValue": SECRET_VALUE[:-1]})


def test_the_longest_version_label_sets_the_room_for_the_app_name() -> None:
    long_label = "v" + "1" * 20
    assert accepted({"appName": "a" * 41, "canaryVersion": long_label})
    assert problems({"appName": "a" * 42, "canaryVersion": long_label}) == [
        f"appName = \"{'a' * 42}\": must leave room for '-<version>' within 63 characters (41 here)"
    ]


def test_versions_must_differ_and_dashboards_need_prometheus() -> None:
    assert problems({"canaryVersion": "v1"}) == ['canaryVersion = "v1": must differ from stableVersion']
    assert problems({"prometheus": "false", "kiali": "false"}) == [
        "grafana = true: needs prometheus = true (it shows Prometheus' metrics); turn it off or turn prometheus on"
    ]
    assert accepted({"prometheus": "true", "grafana": "false", "kiali": "false"})


def test_existing_mode_ignores_eks_settings_and_eks_mode_refuses_a_kubeconfig() -> None:
    assert accepted({**EXISTING_CLUSTER, "nodeInstanceType": "not a type", "vpcCidr": "nope"})
    assert problems({"kubeconfig": "/tmp/k"}) == [
        'kubeconfig = "/tmp/k": is only used with clusterMode existing; set clusterMode to existing or unset it'
    ]


def test_existing_mode_names_eks_settings_set_to_what_is_not_even_json_as_ignored() -> None:
    """Garbage differs from a setting's default as much as any other value: the stack is told it is ignored."""
    garbage = {"nodeDesiredCount": "three", "availabilityZoneCount": "[["}
    settings = load_settings(DictConfig({**EXISTING_CLUSTER, **garbage}))
    assert isinstance(settings.cluster, ExistingCluster)
    assert settings.cluster.ignored == ("availabilityZoneCount", "nodeDesiredCount")


VERSION_RULE = "must be 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. v2"
VPC_CIDR_RULE = "must be an IPv4 network from /16 to /20 (a.b.c.d/16 to a.b.c.d/20)"
ROLE_A, ROLE_B = "arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:role/b"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (  # a network with host bits set is no network: strict parsing
            {"apiAccessCidrs": '["203.0.113.7/24"]'},
            'apiAccessCidrs = "[\\"203.0.113.7/24\\"]": must be a list of at most 40 IPv4 CIDRs a.b.c.d/n '
            "(0.0.0.0/0 is the world)",
        ),
        ({"vpcCidr": "10.0.0.1/16"}, 'vpcCidr = "10.0.0.1/16": ' + VPC_CIDR_RULE),
        ({"vpcCidr": "nope"}, 'vpcCidr = "nope": ' + VPC_CIDR_RULE),
        (
            {"clusterAdminArns": json.dumps([ROLE_A, ROLE_A, ROLE_B, ROLE_B])},
            f"clusterAdminArns = {json.dumps([ROLE_A, ROLE_A, ROLE_B, ROLE_B])}: must list each ARN once "
            f"(repeated: {ROLE_A}, {ROLE_B})",
        ),
        (
            {"apiAccessCidrs": '["203.0.113.0/24", "203.0.113.0/24", "198.51.100.0/24", "198.51.100.0/24"]'},
            'apiAccessCidrs = ["203.0.113.0/24", "203.0.113.0/24", "198.51.100.0/24", "198.51.100.0/24"]: '
            "lists 198.51.100.0/24, 203.0.113.0/24 more than once",
        ),
        (
            {"apiAccessCidrs": '["10.0.0.0/8", "192.168.0.0/16"]'},
            'apiAccessCidrs = ["10.0.0.0/8", "192.168.0.0/16"]: 10.0.0.0/8, 192.168.0.0/16 not public: EKS\'s '
            "public endpoint takes only internet addresses (inside the VPC the private endpoint, always on, is used)",
        ),
        ({"nodeInstanceType": "large"}, 'nodeInstanceType = "large": must be an EC2 instance type like t3a.medium'),
        ({"nodeMinCount": "451"}, 'nodeMinCount = "451": must be an integer from 0 to 450'),
        ({"installIstio": "maybe"}, 'installIstio = "maybe": must be true or false'),
        (
            {"clusterViewerArns": '["nope"]'},
            'clusterViewerArns = "[\\"nope\\"]": must be a list of at most 100 IAM role or user ARNs',
        ),
        (
            {"appNamespace": "kube-system"},
            'appNamespace = "kube-system": must be a namespace name (DNS label: 1-63 lowercase letters, digits and '
            "'-') other than kube-system, kube-public, kube-node-lease, istio-system, which belong to Kubernetes and "
            "Istio",
        ),
        (
            {"canaryHeaderName": "uri"},
            'canaryHeaderName = "uri": must be empty (off) or a lowercase HTTP header name of at most 256 '
            "characters as Istio matches them: letters and digits with '-' between, like x-canary; not uri, scheme, "
            "method, authority (Istio ignores matches on them)",
        ),
        (
            {"canaryHeaderName": "x-canary", "canaryHeaderValue": "short"},
            'canaryHeaderValue = "short": must be at least 16 characters while canaryHeaderName is x-canary, a value '
            "nobody guesses (e.g. `openssl rand -hex 8`)",
        ),
        (
            {"canaryHeaderName": "x-canary", "canaryHeaderValue": "e\tvalue of a tester"},
            'canaryHeaderValue = "e\\tvalue of a tester": must be at most 256 printable ASCII characters (no tabs or '
            "other control characters, nothing beyond ASCII)",
        ),
        (
            {"kubeContext": "kind-x"},
            'kubeContext = "kind-x": is only used with clusterMode existing; set clusterMode to existing or unset it',
        ),
        (
            {"stableImage": "nginx"},
            'stableImage = "nginx": must be an image reference pinned by tag or digest (not :latest), e.g. repo/app:v2',
        ),
        (  # nothing close to suggest
            {"zzzzqqqq": "1"},
            "zzzzqqqq: not a setting of this program (every setting is declared in Pulumi.yaml); remove it with "
            "`pulumi config rm zzzzqqqq`",
        ),
    ],
    ids=[
        "cidr-host-bits",
        "vpc-host-bits",
        "vpc-garbage",
        "arns-twice",
        "cidrs-twice",
        "cidrs-private",
        "type",
        "min",
        "bool",
        "viewer-arns",
        "namespace",
        "header-name",
        "header-value-short",
        "header-value-tab",
        "context",
        "image",
        "key",
    ],
)
def test_each_problem_is_one_message_naming_the_setting_its_value_and_what_is_allowed(
    config: dict[str, str], expected: str
) -> None:
    assert problems(config) == [expected]


def test_a_cluster_name_may_have_capitals() -> None:
    """EKS's rule: letters of either case, digits, '-' and '_'."""
    assert accepted({"clusterName": "Dev-Cluster_1"})


def test_a_refused_header_name_leaves_the_mirror_sending_requests_to_no_canary_pod() -> None:
    problems_found = problems({"canaryHeaderName": "X_Canary", "mirrorPercent": "20", "canaryReplicas": "0"})
    assert problems_found[1:] == [
        "canaryReplicas = 0: must be at least 1 while canaryHeaderName or mirrorPercent send it requests"
    ]
    assert problems_found[0].startswith('canaryHeaderName = "X_Canary": must be empty (off) or a lowercase')


def test_a_refused_cluster_mode_is_read_as_eks_so_eks_settings_are_still_checked() -> None:
    assert problems({"clusterMode": "bogus", "nodeInstanceType": "large"}) == [
        'clusterMode = "bogus": must be one of eks, existing',
        'nodeInstanceType = "large": must be an EC2 instance type like t3a.medium',
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"prometheus": "maybe"}, ['prometheus = "maybe": must be true or false']),
        (
            {"dataplaneMode": "ambient", "trafficApi": "gateway"},
            ['trafficApi = "gateway": must be one of istio, gateway-api'],
        ),
        (
            {"stableVersion": "V1", "canaryVersion": "V1"},
            [f'stableVersion = "V1": {VERSION_RULE}', f'canaryVersion = "V1": {VERSION_RULE}'],
        ),
        ({"stableReplicas": "abc"}, ['stableReplicas = "abc": must be an integer from 0 to 100']),
        (
            {**HEADER_ROUTE, "canaryReplicas": "z"},
            ['canaryReplicas = "z": must be an integer from 0 to 100'],
        ),
        (
            {"canaryWeight": "abc", "stableReplicas": "0"},
            ['canaryWeight = "abc": must be an integer from 0 to 100'],
        ),
        (
            {"canaryWeight": "10", "canaryReplicas": "z"},
            ['canaryReplicas = "z": must be an integer from 0 to 100'],
        ),
        ({"grafana": "maybe", "prometheus": "false", "kiali": "false"}, ['grafana = "maybe": must be true or false']),
    ],
    ids=[
        "addons-without-prometheus",
        "ambient-without-gateway-api",
        "same-versions",
        "stable-replicas",
        "canary-replicas-with-header",
        "weight-with-no-stable",
        "canary-replicas-with-weight",
        "dashboard-without-prometheus",
    ],
)
def test_a_refused_setting_adds_no_problem_of_the_value_it_is_read_as(
    config: dict[str, str], expected: list[str]
) -> None:
    """One clear error per mistake: rules between settings do not judge a refused value's stand-in."""
    assert problems(config) == expected


def test_the_error_names_every_problem_once_and_how_to_fix_it() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(DictConfig({"canaryWeight": "ten", "nodeGroupName": "-bad"}))
    assert str(error.value) == (
        "invalid stack configuration (nothing was changed):\n"
        "  - nodeGroupName = \"-bad\": must be 1-63 letters, digits, '-' or '_', starting with a letter or digit\n"
        '  - canaryWeight = "ten": must be an integer from 0 to 100\n'
        "Fix with `pulumi config set <key> <value>`; see Pulumi.yaml for every setting."
    )


def test_name_messages_in_full() -> None:
    assert problems({"appName": "Nginx"}) == [
        "appName = \"Nginx\": must be a Service name (DNS-1035 label): 1-63 lowercase letters, digits and '-', "
        "starting with a letter and ending with a letter or digit"
    ]
    assert problems({"clusterName": "-dev"}) == ["clusterName = \"-dev\": must be 1-100 letters, digits, '-' or '_'"]


@pytest.mark.parametrize("key", ["clusterAdminArns", "clusterViewerArns"])
def test_an_arn_listed_twice_is_named_under_its_own_setting(key: str) -> None:
    arn = "arn:aws:iam::123456789012:role/ops"
    assert problems({key: f'["{arn}", "{arn}"]'}) == [
        f'{key} = ["{arn}", "{arn}"]: must list each ARN once (repeated: {arn})'
    ]


def test_a_bad_value_is_shown_whole_up_to_200_characters_and_cut_beyond() -> None:
    at_limit, beyond = "a" * 198, "a" * 199  # with its quotes, 200 and 201 characters of JSON
    assert problems({"appName": at_limit})[0].startswith(f'appName = "{at_limit}": ')
    assert problems({"appName": beyond})[0].startswith(f'appName = "{beyond[:199]}... (201 characters): ')
