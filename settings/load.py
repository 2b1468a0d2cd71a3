"""Reading every stack setting and validating it, in one place.

Defaults come from the `config:` block of Pulumi.yaml, the single place they are
declared: the CLI applies them to real stacks, and this module applies the same ones
when a setting is missing (unit tests under mocks, where the CLI does not run).
All invalid values are reported together in one `SettingsError`, raised before any
resource is registered.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import yaml

from settings.model import (
    Addons,
    AppSettings,
    AppVersion,
    ConfigSource,
    EksCluster,
    ExistingCluster,
    ListedConfigSource,
    MeshSettings,
    NodeGroup,
    Settings,
    SettingsError,
    Vpc,
)

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

SUPPORTED_KUBERNETES_MINORS = range(32, 37)  # Istio 1.31 supports Kubernetes 1.32-1.36.
OLDEST_ISTIO_MINOR = 28  # Older istiod fights server-side apply over its webhook (pulumi-kubernetes#2210).
MAX_REPLICAS = 100

# Every pattern spells its characters out: `\d` and `\w` also match other scripts' digits and letters.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label: namespaces, label values
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # Service names must start with a letter
RESERVED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "istio-system")
# registry/path[:tag][@digest]; a tag or a digest is required so every rollout is pinned.
IMAGE_REFERENCE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
# Istio's form of an HTTP header name (an RFC 9110 token): lowercase, with '-' as the separator.
HEADER_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
HEADER_VALUE = re.compile(r"^[!-~]([ -~]*[!-~])?$")  # visible ASCII, inner spaces; HTTP trims the ends
IGNORED_HEADERS = ("uri", "scheme", "method", "authority")  # Istio ignores header matches on these
MAX_HEADER_LENGTH = 256  # ours: far above any real canary header, far below Envoy's 60 KiB header block
MIN_HEADER_VALUE = 16
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
NODE_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")  # EKS CreateNodegroup's rule
AWS_ID = re.compile(r"^(vpc|subnet)-[0-9a-f]{8,17}$")
IAM_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9_+=,.@/-]+$")
SEMVER = re.compile(r"^1\.([0-9]+)\.([0-9]+)$")
KUBERNETES_VERSION = re.compile(r"^1\.([0-9]+)$")
CIDR = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$")
MAX_PUBLIC_ACCESS_CIDRS = 40  # EKS quota: public endpoint access CIDR ranges per cluster
MAX_LIST_ITEMS = 100
MAX_SHOWN = 200  # characters of a bad value repeated in the message


@cache
def declared_settings() -> dict[str, dict[str, Any]]:
    """The `config:` declarations of Pulumi.yaml, by key."""
    # libyaml's loader when PyYAML has it (its wheels do): 1 ms instead of 20 ms of every update.
    project = yaml.load(PROJECT_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    declarations: dict[str, dict[str, Any]] = project["config"]
    return declarations


T = TypeVar("T")


class _Reader:
    """Reads raw values, applies declared defaults and collects every problem found."""

    def __init__(self, source: ConfigSource) -> None:
        self._source = source
        self.problems: list[str] = []
        self.refused: set[str] = set()
        """Keys already reported, so rules that build on them stay quiet."""
        self.keys_read: list[str] = []

    def differs_from_default(self, key: str) -> bool:
        value, default = self._source.get(key), declared_settings()[key]["default"]
        if value is None or isinstance(default, str):
            return value is not None and value.strip() != default
        try:
            return bool(json.loads(value) != default)  # numbers, booleans, lists
        except (ValueError, RecursionError):  # RecursionError: a deeply nested array
            return True

    def _raw(self, key: str) -> str:
        declaration = declared_settings()[key]  # KeyError: every setting must be declared.
        self.keys_read.append(key)
        value = self._source.get(key)
        if value is None:
            default = declaration["default"]
            return json.dumps(default) if isinstance(default, (list, bool)) else str(default)
        return value

    def fail(self, key: str, value: object, allowed: str) -> None:
        shown = json.dumps(value)
        if len(shown) > MAX_SHOWN:
            shown = f"{shown[:MAX_SHOWN]}... ({len(shown)} characters)"
        self.problems.append(f"{key} = {shown}: {allowed}")
        self.refused.add(key)

    def checked(self, key: str, parse: Callable[[str], T | None], allowed: str, fallback: T) -> T:
        raw = self._raw(key)
        try:
            parsed = parse(raw)
        except (ValueError, RecursionError):  # json.loads of a deeply nested array raises RecursionError
            parsed = None
        if parsed is None:
            self.fail(key, raw, allowed)
            return fallback
        return parsed

    def accepted(self, *keys: str) -> bool:
        """Whether none of these settings was refused (a refused one reads as its fallback)."""
        return self.refused.isdisjoint(keys)

    def integer(self, key: str, low: int, high: int) -> int:
        def parse(raw: str) -> int | None:
            text = raw.strip()
            if not re.fullmatch(r"[+-]?[0-9]+", text):  # int() alone also takes other scripts' digits
                return None
            number = int(text)
            return number if low <= number <= high else None

        return self.checked(key, parse, f"must be an integer from {low} to {high}", low)

    def boolean(self, key: str) -> bool:
        words = {"true": True, "false": False}
        return self.checked(key, lambda raw: words.get(raw.strip().lower()), "must be true or false", False)

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        return self.checked(
            key, lambda raw: raw if raw in allowed else None, f"must be one of {', '.join(allowed)}", allowed[0]
        )

    def matching(self, key: str, pattern: re.Pattern[str], allowed: str) -> str:
        return self.checked(key, lambda raw: raw if pattern.fullmatch(raw) else None, allowed, "")

    def text(self, key: str) -> str:
        return self._raw(key).strip()

    def string_list(self, key: str, pattern: re.Pattern[str], allowed: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...] | None:
            values = _json_strings(raw)
            return values if values is not None and all(pattern.fullmatch(v) for v in values) else None

        return self.checked(key, parse, f"must be a list of at most {MAX_LIST_ITEMS} {allowed}", ())


def _json_strings(raw: str, most: int = MAX_LIST_ITEMS) -> tuple[str, ...] | None:
    """A JSON array of at most `most` strings, or None."""
    values = json.loads(raw)
    if not isinstance(values, list) or len(values) > most or not all(isinstance(v, str) for v in values):
        return None
    return tuple(values)


def _kubernetes_version(raw: str) -> str | None:
    match = KUBERNETES_VERSION.fullmatch(raw)
    return raw if match and int(match.group(1)) in SUPPORTED_KUBERNETES_MINORS else None


def _istio_version(raw: str) -> str | None:
    match = SEMVER.fullmatch(raw)
    return raw if match and int(match.group(1)) >= OLDEST_ISTIO_MINOR else None


def _image(raw: str) -> str | None:
    match = IMAGE_REFERENCE.fullmatch(raw)
    if not match or not (match.group("tag") or match.group("digest")) or match.group("tag") == "latest":
        return None
    return raw


def _vpc_cidr(raw: str) -> str | None:
    network = ipaddress.ip_network(raw, strict=True)
    return raw if network.version == 4 and 16 <= network.prefixlen <= 20 else None


def _cidr_list(raw: str) -> tuple[str, ...] | None:
    values = _json_strings(raw, most=MAX_PUBLIC_ACCESS_CIDRS)
    if values is None or not all(CIDR.fullmatch(v) for v in values):
        return None
    for value in values:
        ipaddress.ip_network(value, strict=True)  # ValueError: host bits set or out of range
    return values


def _repeated(items: Sequence[object]) -> list[str]:
    """The items listed more than once, each named once, sorted."""
    return sorted({str(item) for item in items if items.count(item) > 1})


# Ranges no internet client comes from: private (RFC 1918), shared (RFC 6598), loopback, link-local,
# "this network", multicast and reserved. EKS's public endpoint refuses private ranges.
NOT_PUBLIC = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip


def _read_api_access(read: _Reader) -> tuple[str, ...]:
    key = "apiAccessCidrs"
    cidrs: tuple[str, ...] = read.checked(
        key,
        _cidr_list,
        f"must be a list of at most {MAX_PUBLIC_ACCESS_CIDRS} IPv4 CIDRs a.b.c.d/n (0.0.0.0/0 is the world)",
        (),
    )
    networks = [ipaddress.IPv4Network(cidr) for cidr in cidrs]
    repeated = _repeated(networks)
    if repeated:
        read.fail(key, list(cidrs), f"lists {', '.join(repeated)} more than once")
    private = [str(network) for network in networks if any(network.subnet_of(block) for block in NOT_PUBLIC)]
    if private:
        read.fail(
            key,
            list(cidrs),
            f"{', '.join(private)} not public: EKS's public endpoint takes only internet addresses "
            "(inside the VPC the private endpoint, always on, is used)",
        )
    return cidrs


def _read_vpc(read: _Reader) -> Vpc:
    cidr = read.checked("vpcCidr", _vpc_cidr, "must be an IPv4 network from /16 to /20 (a.b.c.d/16 to a.b.c.d/20)", "")
    zone_count = read.integer("availabilityZoneCount", 2, 6)
    vpc_id = read.text("vpcId") or None
    subnet_rule = "subnet IDs (subnet-0123abcd...)"
    public = read.string_list("publicSubnetIds", AWS_ID, subnet_rule)
    private = read.string_list("privateSubnetIds", AWS_ID, subnet_rule)
    if vpc_id is None:
        if public or private:
            read.fail("vpcId", "", "must be set when publicSubnetIds or privateSubnetIds are given")
    elif not AWS_ID.fullmatch(vpc_id) or not vpc_id.startswith("vpc-"):
        read.fail("vpcId", vpc_id, "must be a VPC ID like vpc-0123abcd, or empty to create a VPC")
    else:
        for key, subnets in (("publicSubnetIds", public), ("privateSubnetIds", private)):
            if len(subnets) < 2 and key not in read.refused:
                read.fail(key, list(subnets), "must list at least 2 subnets in different zones when vpcId is set")
    return Vpc(cidr, zone_count, vpc_id, public, private)


def _read_node_group(read: _Reader) -> NodeGroup:
    group = NodeGroup(
        name=read.matching(
            "nodeGroupName",
            NODE_GROUP_NAME,
            "must be 1-63 letters, digits, '-' or '_', starting with a letter or digit",
        ),
        instance_type=read.matching("nodeInstanceType", INSTANCE_TYPE, "must be an EC2 instance type like t3a.medium"),
        desired_count=read.integer("nodeDesiredCount", 0, 450),
        min_count=read.integer("nodeMinCount", 0, 450),
        max_count=read.integer("nodeMaxCount", 1, 450),
    )
    if not group.min_count <= group.desired_count <= group.max_count:
        read.fail(
            "nodeDesiredCount",
            group.desired_count,
            f"must satisfy nodeMinCount ({group.min_count}) <= nodeDesiredCount <= nodeMaxCount ({group.max_count})",
        )
    return group


def _read_access(read: _Reader) -> dict[str, tuple[str, ...]]:
    """clusterAdminArns and clusterViewerArns: EKS allows one access entry per principal."""
    admins = read.string_list("clusterAdminArns", IAM_PRINCIPAL, "IAM role or user ARNs")
    viewers = read.string_list("clusterViewerArns", IAM_PRINCIPAL, "IAM role or user ARNs")
    for key, arns in (("clusterAdminArns", admins), ("clusterViewerArns", viewers)):
        repeated = _repeated(arns)
        if repeated:
            read.fail(key, list(arns), f"must list each ARN once (repeated: {', '.join(repeated)})")
    both = sorted(set(admins) & set(viewers))
    if both:
        read.fail(
            "clusterViewerArns",
            list(viewers),
            f"must not repeat an ARN of clusterAdminArns (one access entry per principal): {', '.join(both)}",
        )
    return {"admin_arns": admins, "viewer_arns": viewers}


def _read_cluster(read: _Reader) -> EksCluster | ExistingCluster:
    mode = read.choice("clusterMode", ("eks", "existing"))
    kubeconfig = read.text("kubeconfig") or None
    context = read.text("kubeContext") or None
    if mode == "existing":
        return ExistingCluster(kubeconfig, context, _eks_only_settings_set(read))
    for key, value in (("kubeconfig", kubeconfig), ("kubeContext", context)):
        if value is not None:
            read.fail(key, value, "is only used with clusterMode existing; set clusterMode to existing or unset it")
    return EksCluster(
        name=read.matching(
            "clusterName", re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"), "must be 1-100 letters, digits, '-' or '_'"
        ),
        kubernetes_version=read.checked(
            "kubernetesVersion",
            _kubernetes_version,
            f"must be a Kubernetes minor version from 1.{SUPPORTED_KUBERNETES_MINORS.start} "
            f"to 1.{SUPPORTED_KUBERNETES_MINORS.stop - 1}, e.g. 1.35",
            "",
        ),
        vpc=_read_vpc(read),
        node_group=_read_node_group(read),
        **_read_access(read),
        prefix_delegation=read.boolean("vpcCniPrefixDelegation"),
        api_access_cidrs=_read_api_access(read),
    )


@dataclass(frozen=True)
class _AsEks:
    """The stack's config as an EKS stack would read it: which settings only that mode reads."""

    source: ConfigSource

    def get(self, key: str) -> str | None:
        return "eks" if key == "clusterMode" else self.source.get(key)


def _eks_only_settings_set(read: _Reader) -> tuple[str, ...]:
    """The settings only an EKS stack reads that this stack sets: found by reading it as one (no list to keep)."""
    as_eks = _Reader(_AsEks(read._source))
    _read_cluster(as_eks)
    shared = {"clusterMode", "kubeconfig", "kubeContext"}
    return tuple(key for key in dict.fromkeys(as_eks.keys_read) if key not in shared and read.differs_from_default(key))


def _read_mesh(read: _Reader, app_namespace: str, app_name: str) -> MeshSettings:
    service_type = read.choice("ingressServiceType", ("LoadBalancer", "NodePort", "ClusterIP"))
    mesh = MeshSettings(
        install_istio=read.boolean("installIstio"),
        istio_version=read.checked(
            "istioVersion",
            _istio_version,
            f"must be an Istio release 1.{OLDEST_ISTIO_MINOR}.0 or later, "
            f"e.g. {declared_settings()['istioVersion']['default']}",
            "",
        ),
        ingress_service_type=service_type,  # type: ignore[arg-type]  # checked by choice()
        addons=Addons(
            prometheus=read.boolean("prometheus"), grafana=read.boolean("grafana"), kiali=read.boolean("kiali")
        ),
        app_namespace=app_namespace,
        app_name=app_name,
        traffic_api=read.choice("trafficApi", ("istio", "gateway-api")),  # type: ignore[arg-type]  # checked by choice()
        dataplane_mode=read.choice("dataplaneMode", ("sidecar", "ambient")),  # type: ignore[arg-type]  # by choice()
    )
    # Cross-setting rules only between accepted values: a refused one's stand-in would add problems of its own.
    if mesh.dataplane_mode == "ambient" and mesh.traffic_api != "gateway-api" and read.accepted("trafficApi"):
        read.fail(
            "dataplaneMode",
            "ambient",
            f"needs trafficApi = gateway-api (ambient's waypoints route by HTTPRoute; trafficApi is "
            f"{mesh.traffic_api}): set trafficApi gateway-api, or dataplaneMode sidecar",
        )
    for dashboard in ("grafana", "kiali"):
        if getattr(mesh.addons, dashboard) and not mesh.addons.prometheus and read.accepted("prometheus"):
            read.fail(
                dashboard,
                True,
                "needs prometheus = true (it shows Prometheus' metrics); turn it off or turn prometheus on",
            )
    return mesh


def _read_version(read: _Reader, role: str) -> AppVersion:
    return AppVersion(
        label=read.matching(
            f"{role}Version",
            DNS_LABEL,
            "must be 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. v2",
        ),
        image=read.checked(
            f"{role}Image",
            _image,
            "must be an image reference pinned by tag or digest (not :latest), e.g. repo/app:v2",
            "",
        ),
        replicas=read.integer(f"{role}Replicas", 0, MAX_REPLICAS),
    )


def _header_name(raw: str) -> str | None:
    if not raw:
        return raw  # off
    if len(raw) > MAX_HEADER_LENGTH or not HEADER_NAME.fullmatch(raw) or raw in IGNORED_HEADERS:
        return None
    return raw


def _read_canary_header(read: _Reader) -> tuple[str, str] | None:
    name = read.checked(
        "canaryHeaderName",
        _header_name,
        f"must be empty (off) or a lowercase HTTP header name of at most {MAX_HEADER_LENGTH} characters as Istio "
        f"matches them: letters and digits with '-' between, like x-canary; not {', '.join(IGNORED_HEADERS)} "
        "(Istio ignores matches on them)",
        "",
    )
    value = read.text("canaryHeaderValue")  # spaces at either end are dropped, as HTTP drops them
    if not name:
        return None
    if len(value) < MIN_HEADER_VALUE:  # no default: a guessable value would let anyone reach the canary
        read.fail(
            "canaryHeaderValue",
            value,
            f"must be at least {MIN_HEADER_VALUE} characters while canaryHeaderName is {name}, "
            "a value nobody guesses (e.g. `openssl rand -hex 8`)",
        )
    elif len(value) > MAX_HEADER_LENGTH or not HEADER_VALUE.fullmatch(value):
        read.fail(
            "canaryHeaderValue",
            value,
            f"must be at most {MAX_HEADER_LENGTH} printable ASCII characters (no tabs or other control characters, "
            "nothing beyond ASCII)",
        )
    return name, value


def _read_app(read: _Reader) -> AppSettings:
    app = AppSettings(
        name=read.matching(
            "appName",
            DNS_1035_LABEL,
            "must be a Service name (DNS-1035 label): 1-63 lowercase letters, digits and '-', starting with a letter "
            "and ending with a letter or digit",
        ),
        namespace=read.checked(
            "appNamespace",
            lambda raw: raw if DNS_LABEL.fullmatch(raw) and raw not in RESERVED_NAMESPACES else None,
            "must be a namespace name (DNS label: 1-63 lowercase letters, digits and '-') other than "
            f"{', '.join(RESERVED_NAMESPACES)}, which belong to Kubernetes and Istio",
            "",
        ),
        stable=_read_version(read, "stable"),
        canary=_read_version(read, "canary"),
        canary_weight=read.integer("canaryWeight", 0, 100),
        canary_header=_read_canary_header(read),
        mirror_percent=read.integer("mirrorPercent", 0, 100),
    )
    # As in _read_mesh: no rule between settings over a refused value's stand-in.
    # (A refused integer reads as its lowest value, so a refused canaryWeight or mirrorPercent sends nothing.)
    if (app.canary_header or app.mirror_percent) and app.canary.replicas == 0 and read.accepted("canaryReplicas"):
        read.fail("canaryReplicas", 0, "must be at least 1 while canaryHeaderName or mirrorPercent send it requests")
    if app.stable.label and app.stable.label == app.canary.label:
        read.fail("canaryVersion", app.canary.label, "must differ from stableVersion")
    longest = max(len(app.stable.label), len(app.canary.label))
    if app.name and len(app.name) + 1 + longest > 63:
        read.fail(
            "appName", app.name, f"must leave room for '-<version>' within 63 characters ({63 - 1 - longest} here)"
        )
    if app.canary_weight > 0 and app.canary.replicas == 0 and read.accepted("canaryReplicas"):
        read.fail("canaryReplicas", 0, f"must be at least 1 while canaryWeight ({app.canary_weight}) sends it traffic")
    if app.canary_weight < 100 and app.stable.replicas == 0 and read.accepted("canaryWeight", "stableReplicas"):
        read.fail("stableReplicas", 0, f"must be at least 1 while canaryWeight ({app.canary_weight}) leaves it traffic")
    return app


def _keys_set(source: ConfigSource) -> Iterable[str]:
    """The keys the stack sets in the project's namespace, where the source can tell."""
    if isinstance(source, pulumi.Config):
        prefix = f"{source.name}:"
        every = {*pulumi.runtime.config.CONFIG.get(), *pulumi.runtime.config.get_config_env()}
        return [key.removeprefix(prefix) for key in every if key.startswith(prefix)]
    return source.keys() if isinstance(source, ListedConfigSource) else ()


def _refuse_undeclared(read: _Reader, keys: Iterable[str]) -> None:
    """A mistyped key (`canaryWieght`) would be ignored while the stack keeps the old value."""
    declared = declared_settings()
    for key in sorted(set(keys) - declared.keys()):
        close = difflib.get_close_matches(key, declared, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        read.problems.append(
            f"{key}: not a setting of this program ({hint}every setting is declared in Pulumi.yaml); "
            f"remove it with `pulumi config rm {key}`"
        )


def load_settings(source: ConfigSource) -> Settings:
    """Read and validate every setting; raise one SettingsError listing every problem."""
    read = _Reader(source)
    _refuse_undeclared(read, _keys_set(source))
    cluster = _read_cluster(read)
    app = _read_app(read)
    mesh = _read_mesh(read, app.namespace, app.name)
    if read.problems:
        details = "\n".join(f"  - {problem}" for problem in read.problems)
        raise SettingsError(
            f"invalid stack configuration (nothing was changed):\n{details}\n"
            "Fix with `pulumi config set <key> <value>`; see Pulumi.yaml for every setting."
        )
    return Settings(cluster=cluster, mesh=mesh, app=app)
