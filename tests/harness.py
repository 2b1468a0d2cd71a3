"""Runs the real Pulumi program (__main__.py) under Pulumi's mocks and records what it registers.

Only the engine and the clouds are mocked. The monitor records each RegisterResource
request as the engine would receive it - type, name, parent, provider reference and
dependencies - so tests can assert on wiring, not only on inputs.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "canary"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
LOAD_BALANCER_HOST = "canary-nlb.elb.example.test"
EKS_CREATED_SECURITY_GROUP = "sg-0eks0created0"


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
    module: dict[str, Any] = field(default_factory=dict)

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
        signature = value.get(rpc._special_sig_key)
        if signature == rpc._special_resource_sig:
            return f"<resource {value['urn']}>"
        if signature == rpc._special_secret_sig and not keep_secrets:
            return {"secret": plain(value["value"])}
        return {key: plain(item, keep_secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item, keep_secrets) for item in value]
    return value


def is_secret(output: pulumi.Output[Any]) -> bool:
    return bool(pulumi.runtime.sync_await._sync_await(output.is_secret()))


def resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return pulumi.runtime.sync_await._sync_await(value.future())
    return value


def fake_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a cloud or Kubernetes API would add, in the provider's camelCase."""
    if type_.startswith("aws:"):
        return {"arn": f"arn:aws:mock:::{name}"}
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
    return {}


class RecordingMonitor(MockMonitor):
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
            return resource_pb2.RegisterResourceResponse(urn=urn)
        self._record(request, read=False)
        inputs = plain(json_format.MessageToDict(request.object), keep_secrets=True)
        id_, state = self.mocks.new_resource(
            pulumi.runtime.MockResourceArgs(
                typ=request.type, name=request.name, inputs=inputs, provider=request.provider, custom=request.custom
            )
        )
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_ or "", state)
        state_proto = pulumi.runtime.sync_await._sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=state_proto)

    def ReadResource(self, request: Any) -> Any:
        self._record(request, read=True)
        return super().ReadResource(request)  # type: ignore[no-untyped-call]


class CloudMocks(pulumi.runtime.Mocks):
    def __init__(self, run: ProgramRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", {**args.inputs, **fake_outputs(args.typ, args.name, args.inputs)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.run.invokes.append(args.token)
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ZONES, "zoneIds": [f"use1-az{i}" for i in range(len(ZONES))]}, []
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
        run.module = runpy.run_path(str(PROJECT_DIR / "__main__.py"))

    program()
    return run


class DictConfig:
    """A ConfigSource of raw strings, as `pulumi.Config().get` returns them."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = values or {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def keys(self) -> list[str]:
        return list(self.values)


EXISTING_CLUSTER = {"clusterMode": "existing", "kubeconfig": "/tmp/kubeconfig.yaml", "kubeContext": "kind-canary"}
