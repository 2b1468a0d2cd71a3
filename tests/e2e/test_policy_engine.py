"""What the real engine sends a policy pack, so the pack's rules and their unit tests target the right resources.

A tiny program declares a component with a Kubernetes ConfigMap inside, and a pack with one
resource policy and one stack policy that report (advisory) every resource type they are
given. Seen with pulumi 3.274: components reach both kinds of policy, with the inputs the
program gave them, as well as custom resources, providers and the stack. So the
`eks-control-plane` rule checks pulumi-eks's `eks:index:Cluster` component, and the policy
harness of the unit tier (tests/test_policy.py) feeds the rules every registered resource.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.cli import ROOT, CommandLog, Kubectl, run

PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s


class Box(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("probe:index:Box", name, {"size": 3}, opts)
        k8s.core.v1.ConfigMap(
            f"{name}-inside",
            metadata={"name": f"{name}-inside", "namespace": "default"},
            data={"a": "b"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


provider = k8s.Provider("probe-k8s", kubeconfig=pulumi.Config().require("kubeconfig"))
Box("probe-box", pulumi.ResourceOptions(providers={"kubernetes": provider}))
"""

PACK = """
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy


def each(args, report_violation):
    size = args.props.get("size")
    report_violation(f"resource-policy-saw={args.resource_type}" + (f" size={size:g}" if size is not None else ""))


def stack(args, report_violation):
    report_violation("stack-policy-saw=" + ",".join(sorted(r.resource_type for r in args.resources)))


PolicyPack(
    name="probe",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[
        ResourceValidationPolicy(name="each-resource", description="reports every resource", validate=each),
        StackValidationPolicy(name="whole-stack", description="reports the stack", validate=stack),
    ],
)
"""


@pytest.fixture(scope="module")
def probe(
    toolchain: dict[str, str], cluster: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    workdir = tmp_path_factory.mktemp("policy-probe")
    project, pack = workdir / "project", workdir / "pack"
    project.mkdir()
    pack.mkdir()
    (project / "Pulumi.yaml").write_text("name: probe\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n")
    (project / "__main__.py").write_text(PROGRAM)
    (project / "venv").symlink_to(ROOT / "venv")
    (pack / "PulumiPolicy.yaml").write_text("runtime:\n  name: python\n  options:\n    virtualenv: venv\n")
    (pack / "__main__.py").write_text(PACK)
    (pack / "venv").symlink_to(ROOT / "policy" / "venv")
    (workdir / "backend").mkdir()
    env = {
        **toolchain,
        "HOME": str(Path.home()),
        "PULUMI_BACKEND_URL": f"file://{workdir / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "e2e-only-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    return project, {**env, "PROBE_PACK": str(pack), "PROBE_KUBECONFIG": cluster.kubeconfig}


def test_components_reach_a_policy_pack_with_their_inputs_as_custom_resources_do(
    probe: tuple[Path, dict[str, str]], command_log: CommandLog
) -> None:
    project, env = probe
    pulumi = ["pulumi", "--non-interactive"]
    run([*pulumi, "stack", "init", "probe"], command_log, env, cwd=project)
    run([*pulumi, "config", "set", "kubeconfig", env["PROBE_KUBECONFIG"]], command_log, env, cwd=project)
    for command in (["preview"], ["up", "--yes", "--skip-preview"]):
        result = run([*pulumi, *command, "--policy-pack", env["PROBE_PACK"]], command_log, env, cwd=project)
        output = result.stdout + result.stderr
        seen = set(re.findall(r"resource-policy-saw=([\w:/.$-]+)", output))
        assert {"kubernetes:core/v1:ConfigMap", "probe:index:Box"} <= seen, f"{command}: {sorted(seen)}"
        assert "size=3" in output, "the component's inputs reach the pack"
        (stack_view,) = set(re.findall(r"stack-policy-saw=([\w:/.$,-]*)", output)) or {""}
        assert {"kubernetes:core/v1:ConfigMap", "probe:index:Box"} <= set(stack_view.split(",")), stack_view
    run([*pulumi, "destroy", "--yes"], command_log, env, cwd=project)
