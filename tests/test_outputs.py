"""Stack outputs that work where the stack runs, and warnings for settings a mode ignores."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import Cluster
from settings import ExistingCluster, load_settings
from tests.harness import EXISTING_CLUSTER, LOAD_BALANCER_HOST, DictConfig, resolve, run_program

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: kwok-canary-0a1b2c3d
contexts:
- name: kwok-canary-0a1b2c3d
  context: {cluster: kwok-canary-0a1b2c3d, user: kwok-canary-0a1b2c3d}
"""


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What __main__.py exports, resolved."""
    outputs: dict[str, Any] = {}
    monkeypatch.setattr("pulumi.export", lambda name, value: outputs.__setitem__(name, value))
    return outputs


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The warnings about ignored settings (pulumi.log.warn is one function for every layer), each shown on the
    cluster component (`pulumi up` prints it under the resource it names)."""
    said: list[str] = []

    def warn(message: str, resource: object = None, *args: object, **kwargs: object) -> None:
        if "ignored" in message:
            assert isinstance(resource, Cluster), f"{message!r} shown on {resource!r}"
            said.append(message)

    monkeypatch.setattr("infra.cluster.pulumi.log.warn", warn)
    return said


def test_existing_cluster_outputs_name_the_context_and_reach_the_app_through_a_port_forward(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    run_program({"clusterMode": "existing", "kubeconfig": str(kubeconfig), "installIstio": "false"})
    assert resolve(exported["cluster_name"]) == "kwok-canary-0a1b2c3d"
    assert resolve(exported["curl_loop"]) == (
        f"(kubectl --kubeconfig {kubeconfig} --context kwok-canary-0a1b2c3d -n istio-system port-forward "
        'svc/istio-ingressgateway 8080:80 >/dev/null & trap "kill $!" EXIT; sleep 2; '
        "while curl -sS --max-time 5 -H 'Host: nginx' http://127.0.0.1:8080/; do echo; sleep 0.2; done)"
    )


def test_an_explicit_context_is_the_one_named(exported: dict[str, Any]) -> None:
    run_program({**EXISTING_CLUSTER, "installIstio": "false"})
    assert resolve(exported["cluster_name"]) == "kind-canary"
    assert "kubectl --kubeconfig /tmp/kubeconfig.yaml --context kind-canary -n istio-system port-forward" in resolve(
        exported["curl_loop"]
    )


def test_without_a_kubeconfig_setting_the_context_comes_from_kubeconfig_env(
    exported: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty, real = tmp_path / "empty", tmp_path / "real"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    real.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{empty}:{real}")
    run_program({"clusterMode": "existing", "ingressServiceType": "NodePort"})
    assert resolve(exported["cluster_name"]) == "kwok-canary-0a1b2c3d"
    assert "(kubectl --context kwok-canary-0a1b2c3d -n istio-system" in resolve(exported["curl_loop"])


@pytest.mark.parametrize(
    "contents",
    [KUBECONFIG, json.dumps(yaml.safe_load(KUBECONFIG))],  # YAML over lines; JSON on one line
    ids=["yaml", "json"],
)
def test_a_kubeconfig_given_as_contents_names_its_context_and_is_no_kubectl_flag(
    exported: dict[str, Any], contents: str
) -> None:
    run_program({"clusterMode": "existing", "kubeconfig": contents, "installIstio": "false"})
    assert resolve(exported["cluster_name"]) == "kwok-canary-0a1b2c3d"
    assert resolve(exported["curl_loop"]).startswith(
        "(kubectl --context kwok-canary-0a1b2c3d -n istio-system port-forward"  # kubectl's --kubeconfig takes a path
    )


def test_an_unreadable_kubeconfig_is_said_not_guessed(exported: dict[str, Any], tmp_path: Path) -> None:
    run_program({"clusterMode": "existing", "kubeconfig": str(tmp_path / "missing")})
    assert resolve(exported["cluster_name"]) == "(no current context in the kubeconfig at deploy time)"
    assert "--context" not in resolve(exported["curl_loop"])


def test_on_eks_the_loop_goes_to_the_load_balancer(exported: dict[str, Any]) -> None:
    run_program({})
    assert resolve(exported["cluster_name"]) == "dev-cluster"
    assert resolve(exported["curl_loop"]) == (
        f"while curl -sS --max-time 5 -H 'Host: nginx' http://{LOAD_BALANCER_HOST}/; do echo; sleep 0.2; done"
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_loop_stops_with_curls_error_on_a_host_that_does_not_resolve(exported: dict[str, Any]) -> None:
    run_program({})
    loop = resolve(exported["curl_loop"]).replace(LOAD_BALANCER_HOST, "canary.invalid")  # RFC 2606: never resolves
    result = subprocess.run(["bash", "-c", loop], capture_output=True, text=True, timeout=30, check=False)
    assert result.stderr == "curl: (6) Could not resolve host: canary.invalid\n"  # and it ended (no timeout)


def test_eks_only_settings_on_an_existing_cluster_stack_are_named_in_a_warning(warnings: list[str]) -> None:
    run_program(
        {**EXISTING_CLUSTER, "nodeInstanceType": "m7i.large", "nodeDesiredCount": "5", "vpcCidr": "10.0.0.0/16"}
    )
    assert warnings == [
        "clusterMode is existing: vpcCidr, nodeInstanceType, nodeDesiredCount only apply to the EKS cluster "
        "clusterMode eks creates and are ignored here (`pulumi config rm` them)"
    ]


def test_settings_at_their_defaults_or_on_eks_warn_of_nothing(warnings: list[str]) -> None:
    run_program({**EXISTING_CLUSTER, "nodeInstanceType": "t3a.medium", "apiAccessCidrs": "[]", "nodeMinCount": "0"})
    run_program({"nodeInstanceType": "m7i.large"})
    assert warnings == []


def test_which_settings_only_eks_reads_comes_from_reading_the_config_as_eks() -> None:
    """Every EKS-only setting is found, none that existing-cluster mode uses (no list to keep in sync)."""
    eks_only = {
        "clusterName": "other",
        "kubernetesVersion": "1.33",
        "vpcCidr": "10.0.0.0/16",
        "availabilityZoneCount": "3",
        "vpcId": "vpc-0123abcd",
        "publicSubnetIds": '["subnet-0123abcd"]',
        "privateSubnetIds": '["subnet-0123abce"]',
        "clusterAdminArns": '["arn:aws:iam::123456789012:role/x"]',
        "apiAccessCidrs": '["10.0.0.0/8"]',
        "vpcCniPrefixDelegation": "true",
        "nodeGroupName": "other",
        "nodeInstanceType": "m7i.large",
        "nodeDesiredCount": "4",
        "nodeMinCount": "1",
        "nodeMaxCount": "5",
    }
    used_by_both = {"canaryWeight": "10", "installIstio": "false", "appName": "shop", "kubeconfig": "/k"}
    settings = load_settings(DictConfig({**EXISTING_CLUSTER, **eks_only, **used_by_both, "grafana": "false"}))
    assert isinstance(settings.cluster, ExistingCluster)
    assert set(settings.cluster.ignored) == set(eks_only)
