"""Runs the real Pulumi program (__main__.py) under Pulumi's mocks and records what it registers.

Only the engine and the clouds are mocked. The monitor records each RegisterResource
request as the engine would receive it - type, name, parent, provider reference and
dependencies - so tests can assert on wiring, not only on inputs.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import re
import runpy
import socketserver
import threading
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pulumi
from google.protobuf import json_format

from capacity.aws import instance_type_from_aws
from capacity.nodes import InstanceType

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "canary"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
# AWS lists zones in every state unless asked for one: an impaired zone must never get a subnet.
IMPAIRED_ZONE = "us-east-1e"
LOAD_BALANCER_HOST = "canary-nlb.elb.example.test"
EKS_CREATED_SECURITY_GROUP = "sg-0eks0created0"


# EC2 instance types as `aws ec2 describe-instance-types` reports them: DefaultVCpus,
# MemoryInfo.SizeInMiB, NetworkInfo.MaximumNetworkInterfaces (on network card 0 unless NETWORK_CARDS says),
# NetworkInfo.Ipv4AddressesPerInterface, ProcessorInfo.SupportedArchitectures, Hypervisor.
# The mocked getInstanceType invoke answers from this; any other type is unknown to AWS.
EC2_INSTANCE_TYPES: dict[str, tuple[int, int, int, int, tuple[str, ...], str]] = {
    "t3.nano": (2, 512, 2, 2, ("x86_64",), "nitro"),
    "t3.small": (2, 2048, 3, 4, ("x86_64",), "nitro"),
    "t3a.small": (2, 2048, 2, 4, ("x86_64",), "nitro"),
    "t3a.medium": (2, 4096, 3, 6, ("x86_64",), "nitro"),
    "t3a.xlarge": (4, 16384, 4, 15, ("x86_64",), "nitro"),
    "t4g.small": (2, 2048, 3, 4, ("arm64",), "nitro"),
    "t4g.medium": (2, 4096, 3, 6, ("arm64",), "nitro"),
    "t2.medium": (2, 4096, 3, 6, ("i386", "x86_64"), "xen"),
    "m4.large": (2, 8192, 2, 10, ("x86_64",), "xen"),
    "m5.large": (2, 8192, 3, 10, ("x86_64",), "nitro"),
    "m5.4xlarge": (16, 65536, 8, 30, ("x86_64",), "nitro"),
    "m5.8xlarge": (32, 131072, 8, 30, ("x86_64",), "nitro"),
    "m6a.large": (2, 8192, 3, 10, ("x86_64",), "nitro"),
    "m7i.large": (2, 8192, 3, 10, ("x86_64",), "nitro"),
    "m7i-flex.large": (2, 8192, 3, 10, ("x86_64",), "nitro"),
    "m7g.large": (2, 8192, 3, 10, ("arm64",), "nitro"),
    "c6g.large": (2, 4096, 3, 10, ("arm64",), "nitro"),
    "c7i.xlarge": (4, 8192, 4, 15, ("x86_64",), "nitro"),
    "c5.9xlarge": (36, 73728, 8, 30, ("x86_64",), "nitro"),
    "r6i.large": (2, 16384, 3, 10, ("x86_64",), "nitro"),
    "r7g.xlarge": (4, 32768, 4, 15, ("arm64",), "nitro"),
    "c6in.32xlarge": (128, 262144, 16, 50, ("x86_64",), "nitro"),
}
NETWORK_CARDS = {"c6in.32xlarge": (8, 8)}
"""Interfaces per network card where a type has more than one; pods get those of card 0, the default."""


def unknown_instance_type(name: str) -> str:
    """What the AWS provider says when DescribeInstanceTypes does not know a type."""
    return (
        f"reading EC2 Instance Type ({name}): operation error EC2: DescribeInstanceTypes, https response error "
        f"StatusCode: 400, api error InvalidInstanceType: The following supplied instance types do not exist: [{name}]"
    )


def describe_instance_type(name: str) -> dict[str, Any] | None:
    """The getInstanceType invoke's result (the provider's camelCase), or None for a type AWS does not know."""
    if name not in EC2_INSTANCE_TYPES:
        return None
    vcpus, memory, enis, ips, architectures, hypervisor = EC2_INSTANCE_TYPES[name]
    return {
        "instanceType": name,
        "defaultVcpus": vcpus,
        "memorySize": memory,
        "maximumNetworkInterfaces": enis,
        "maximumIpv4AddressesPerInterface": ips,
        "defaultNetworkCardIndex": 0,
        "networkCards": [
            {"index": index, "maximumInterfaces": interfaces}
            for index, interfaces in enumerate(NETWORK_CARDS.get(name, (enis,)))
        ],
        "supportedArchitectures": list(architectures),
        "hypervisor": hypervisor,
    }


# --- The Pulumi SDK's private internals: this adapter is the only place that touches them ----
#
# Recording what the engine would receive needs a few names the Python SDK does not publish.
# They are known to work with the SDK range pinned in requirements.txt; an upgrade that moves
# one makes the test session stop with one message (tests/conftest.py) instead of a failure
# per test, and tests/test_harness.py says which.

SDK_INTERNALS = {
    "signature key of special wire values": "pulumi.runtime.rpc:_special_sig_key",
    "signature of a resource reference": "pulumi.runtime.rpc:_special_resource_sig",
    "signature of a secret": "pulumi.runtime.rpc:_special_secret_sig",
    "serializer of resource state": "pulumi.runtime.rpc:serialize_properties",
    "blocking wait for an SDK future": "pulumi.runtime.sync_await:_sync_await",
    "the mock resource monitor": "pulumi.runtime.mocks:MockMonitor",
    "the mock monitor's URN maker": "pulumi.runtime.mocks:MockMonitor.make_urn",
    "the mock monitor's registration record": "pulumi.runtime.mocks:MockMonitor.ResourceRegistration",
    "the mock monitor's ReadResource": "pulumi.runtime.mocks:MockMonitor.ReadResource",
    "the engine's RegisterResource answer": "pulumi.runtime.proto.resource_pb2:RegisterResourceResponse",
    "the registration's call stack for the engine": "pulumi.runtime.resource:_get_stack_trace",
    "the engine's call stack message": "pulumi.runtime.proto.source_pb2:StackTrace",
}


class SdkAdapterError(RuntimeError):
    """The installed Pulumi SDK lacks an internal the test harness relies on."""


def _internal(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def pinned_sdk_range(requirements: Path | None = None) -> str:
    """The pulumi version range requirements.txt allows, e.g. ">=3.272,<3.273"."""
    text = (requirements or PROJECT_DIR / "requirements.txt").read_text()
    match = re.search(r"^pulumi\s*([<>=!~][^#\n]*?)\s*(?:#.*)?$", text, re.MULTILINE)
    return match.group(1).replace(" ", "") if match else "(no pulumi line in requirements.txt)"


def sdk_problems() -> list[str]:
    """What of SDK_INTERNALS the installed SDK lacks, described for a person."""
    problems = []
    for purpose, spec in SDK_INTERNALS.items():
        try:
            _internal(spec)
        except (ImportError, AttributeError) as error:
            problems.append(f"{purpose} ({spec}: {error})")
    return problems


def check_sdk() -> None:
    """Raise one SdkAdapterError naming every missing internal, the SDK installed and the range known to work."""
    problems = sdk_problems()
    if problems:
        raise SdkAdapterError(
            f"the test harness (tests/harness.py) cannot run on pulumi {_sdk_version()}: it relies on private "
            f"internals of the Python SDK that are gone: {'; '.join(problems)}. It is known to work with "
            f"pulumi{pinned_sdk_range()} (requirements.txt): reinstall that (scripts/venv), or adapt the "
            "SDK adapter in tests/harness.py and widen the pin."
        )


def _sdk_version() -> str:
    from importlib.metadata import version

    return version("pulumi")


check_sdk()
_SIG_KEY: str = _internal(SDK_INTERNALS["signature key of special wire values"])
_RESOURCE_SIG: str = _internal(SDK_INTERNALS["signature of a resource reference"])
_SECRET_SIG: str = _internal(SDK_INTERNALS["signature of a secret"])
T = TypeVar("T")


def wait(awaitable: Awaitable[T]) -> T:
    """The result of an SDK future or coroutine, from outside the SDK's event loop."""
    result: T = _internal(SDK_INTERNALS["blocking wait for an SDK future"])(awaitable)
    return result


def serialized_state(state: dict[str, Any]) -> Any:
    """Resource state as the engine sends it back to the program (a protobuf Struct)."""
    return wait(_internal(SDK_INTERNALS["serializer of resource state"])(state, {}))


MockMonitor: type[Any] = _internal(SDK_INTERNALS["the mock resource monitor"])
RegisterResourceResponse: Any = _internal(SDK_INTERNALS["the engine's RegisterResource answer"])


@contextlib.contextmanager
def no_call_stacks() -> Iterator[None]:
    """Registrations without the program's call stack: the engine shows it next to a resource's
    diagnostics, the mocks never read it, and taking it (the whole stack, each frame's source line)
    is an eighth of a program run under mocks."""
    module, _, name = SDK_INTERNALS["the registration's call stack for the engine"].partition(":")
    sdk = importlib.import_module(module)
    taken, empty = getattr(sdk, name), _internal(SDK_INTERNALS["the engine's call stack message"])
    setattr(sdk, name, empty)
    try:
        yield
    finally:
        setattr(sdk, name, taken)


# --- end of the adapter ---------------------------------------------------------------------


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    dependencies: list[str]
    custom: bool
    inputs: dict[str, Any]
    read: bool = False


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    invokes: list[str] = field(default_factory=list)
    invoked_after: dict[str, int] = field(default_factory=dict)
    """Per invoke token, how many resources were registered when the program first invoked it."""
    module: dict[str, Any] = field(default_factory=dict)
    frozen: int = 0
    """Objects the program froze (gc.freeze) for a fast exit; unfrozen again, as this process goes on."""
    collecting: bool = False
    """Whether the garbage collector was on when the program ended (it turns it off while it runs)."""

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: str | None = None) -> Registered:
        matches = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]

    def by_urn(self, urn: str) -> Registered:
        return next(r for r in self.resources if r.urn == urn)

    def provider_of(self, resource: Registered) -> Registered:
        urn = resource.provider.rsplit("::", 1)[0]  # a provider reference is "<urn>::<id>"
        return self.by_urn(urn)

    def depends_on(self, resource: Registered, other: Registered) -> bool:
        """True when `resource` waits for `other`, directly or through the dependencies it waits for."""
        by_urn = {r.urn: r for r in self.resources}
        seen: set[str] = set()
        pending = list(resource.dependencies)
        while pending:
            urn = pending.pop()
            if urn == other.urn:
                return True
            if urn not in seen and urn in by_urn:
                seen.add(urn)
                pending.extend(by_urn[urn].dependencies)
        return False

    def output(self, value: Any) -> Any:
        """The resolved value of an Output from the program (all resources are registered by now)."""
        return resolve(value)


def plain(value: Any, keep_secrets: bool = False) -> Any:
    """Wire properties as plain data: resource references become "<resource URN>", secrets {"secret": value}."""
    if isinstance(value, dict):
        signature = value.get(_SIG_KEY)
        if signature == _RESOURCE_SIG:
            return f"<resource {value['urn']}>"
        if signature == _SECRET_SIG and not keep_secrets:
            return {"secret": plain(value["value"])}
        return {key: plain(item, keep_secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item, keep_secrets) for item in value]
    return value


def is_secret(output: pulumi.Output[Any]) -> bool:
    return bool(wait(output.is_secret()))


def resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return wait(value.future())
    return value


def fake_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a cloud or Kubernetes API would add, in the provider's camelCase."""
    if type_.startswith("aws:"):
        return {"arn": f"arn:aws:mock:::{name}", "name": inputs.get("name", name)}
    if type_ == "eks:index:Cluster":
        return {
            "kubeconfigJson": '{"apiVersion": "v1", "kind": "Config"}',
            "clusterSecurityGroupId": "sg-0control0plane0",
        }
    if type_ == "kubernetes:helm.sh/v3:Release":
        return {
            "status": {"name": inputs.get("name", name), "namespace": inputs.get("namespace", ""), "status": "deployed"}
        }
    if type_ == "kubernetes:core/v1:Service":
        return {"status": {"loadBalancer": {"ingress": [{"hostname": LOAD_BALANCER_HOST}]}}}
    metadata = inputs.get("metadata") or {}
    if type_.startswith("kubernetes:") and type_ != "kubernetes:helm.sh/v3:Release" and not metadata.get("name"):
        return {"metadata": {**metadata, "name": f"{name}-0a1b2c3d"}}  # auto-named: the provider adds a suffix
    return {}


class RecordingMonitor(MockMonitor):  # type: ignore[misc]  # the SDK's class, through the adapter
    def __init__(self, mocks: pulumi.runtime.Mocks, run: ProgramRun) -> None:
        super().__init__(mocks)
        self.run = run

    def _record(self, request: Any, read: bool) -> None:
        self.run.resources.append(
            Registered(
                type=request.type,
                name=request.name,
                urn=self.make_urn(request.parent, request.type, request.name),
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                custom=read or request.custom,
                inputs=plain(json_format.MessageToDict(request.properties if read else request.object)),
                read=read,
            )
        )

    def RegisterResource(self, request: Any) -> Any:
        # Unlike the stock mock monitor, never rebuild resource objects from references
        # (that schedules RPCs on this worker thread's event loop and breaks the run):
        # the mocks see a reference as its URN, as the engine would store it.
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return RegisterResourceResponse(urn=urn)
        self._record(request, read=False)
        inputs = plain(json_format.MessageToDict(request.object), keep_secrets=True)
        id_, state = self.mocks.new_resource(
            pulumi.runtime.MockResourceArgs(
                typ=request.type, name=request.name, inputs=inputs, provider=request.provider, custom=request.custom
            )
        )
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_ or "", state)
        return RegisterResourceResponse(urn=urn, id=id_ or "", object=serialized_state(state))

    def ReadResource(self, request: Any) -> Any:
        self._record(request, read=True)
        return super().ReadResource(request)


class CloudMocks(pulumi.runtime.Mocks):
    def __init__(self, run: ProgramRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", {**args.inputs, **fake_outputs(args.typ, args.name, args.inputs)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.run.invokes.append(args.token)
        self.run.invoked_after.setdefault(args.token, len(self.run.resources))
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = ZONES if args.args.get("state") == "available" else [*ZONES, IMPAIRED_ZONE]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(len(names))]}, []
        if args.token == "aws:ec2/getInstanceType:getInstanceType":
            facts = describe_instance_type(args.args["instanceType"])
            if facts is None:  # the engine reports the provider's error as the invoke's failure
                return {}, [("instanceType", unknown_instance_type(args.args["instanceType"]))]
            return facts, []
        if args.token == "aws:eks/getCluster:getCluster":
            return {"name": args.args["name"], "vpcConfig": {"clusterSecurityGroupId": EKS_CREATED_SECURITY_GROUP}}, []
        return {}, []


def run_program(
    config: dict[str, str] | None = None, preview: bool = False, run: ProgramRun | None = None
) -> ProgramRun:
    """Run __main__.py with these settings (keys without the project prefix), recording into `run`."""
    run = run if run is not None else ProgramRun()
    mocks = CloudMocks(run)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="dev", preview=preview, monitor=RecordingMonitor(mocks, run))
    pulumi.runtime.set_all_config({f"{PROJECT}:{key}": value for key, value in (config or {}).items()})

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        try:
            run.module = runpy.run_path(str(PROJECT_DIR / "__main__.py"))
            run.frozen, run.collecting = gc.get_freeze_count(), gc.isenabled()
        finally:  # this process goes on, and a program that raised left the collector off
            gc.unfreeze()
            gc.enable()

    with no_call_stacks():
        program()
    return run


def program_scope(fixture_name: str, config: Any) -> Literal["module", "function"]:
    """The scope of a fixture that runs the program: once per module, but once per test while mutmut
    maps each function to the tests that call it (its "stats" run, scripts/mutation), where a
    module-scoped run would count for the first test only. Running a mutant's tests, once per module
    again: the mutant is the same for all of them, so one run of the program serves them all."""
    return "function" if os.environ.get("MUTANT_UNDER_TEST") == "stats" else "module"


def serve_in_background(server: socketserver.BaseServer) -> None:
    """Serve from a daemon thread that `server.shutdown()` stops at once: the serving loop looks for a
    shutdown once per poll, every 0.5 s by default, which each test's teardown would wait for."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()


def plain_id(text: str) -> str:
    """`text` as a test id that `pytest <id>` (and mutmut) can select: "?" for what pytest would
    escape with a backslash (non-ASCII, control characters, a backslash), ":" for "::", which
    splits a node id."""
    return "".join(char if " " <= char <= "~" and char != "\\" else "?" for char in text).replace("::", ":")


def case_id(key: str, value: str) -> str:
    """A short test id for a setting's value."""
    return plain_id(f"{key}={value[:20]!r}")


class DictConfig:
    """A ConfigSource of raw strings, as `pulumi.Config().get` returns them."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = values or {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def keys(self) -> list[str]:
        return list(self.values)


EXISTING_CLUSTER = {"clusterMode": "existing", "kubeconfig": "/tmp/kubeconfig.yaml", "kubeContext": "kind-canary"}
HEADER_VALUE = "3f9c2a7be1d04c58"  # as unguessable as settings/ demands of a header that reaches the canary
HEADER_ROUTE = {"canaryHeaderName": "x-canary", "canaryHeaderValue": HEADER_VALUE}
"""The tests' header route for testers to the canary."""
HEADER_AND_MIRROR = {**HEADER_ROUTE, "mirrorPercent": "20"}


def describe(name: str) -> InstanceType:
    """The program's own AWS lookup (capacity.aws), answered by the mocked DescribeInstanceTypes."""
    mocks = CloudMocks(ProgramRun())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="dev", preview=False)
    return instance_type_from_aws(name)
