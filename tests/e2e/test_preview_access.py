"""The preview group on a real API server: it can dry-run changes (so previews show diffs) and change nothing.

kube-apiserver evaluates the ValidatingAdmissionPolicy's CEL and the RBAC the stack
declares; the preview identity is impersonated (`--as`/`--as-group`, or a kubeconfig's
`as`/`as-groups`, as CI's preview role would be mapped by its EKS access entry).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.preview import DRY_RUN_ONLY_MESSAGE, PREVIEW_GROUP
from tests.e2e.cli import Kubectl, Stack
from tests.e2e.test_stack_lifecycle import live_weights, steps_by_op

VIRTUAL_SERVICE = ("-n", "default", "virtualservices.networking.istio.io", "nginx-virtual-svc")
AS_PREVIEWER = ("--as=ci-preview", f"--as-group={PREVIEW_GROUP}")
WEIGHT_PATCH = '[{"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 40}]'


@pytest.fixture(scope="module")
def kubeconfig(stack: Stack, cluster: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's kubeconfig, a copy of the cluster's whose credentials the preview test swaps."""
    path = tmp_path_factory.mktemp("kubeconfig") / "config"
    shutil.copy(cluster.kubeconfig, path)
    stack.set_config("kubeconfig", str(path))
    return path


@pytest.fixture(scope="module")
def deployed(stack: Stack, kubeconfig: Path) -> Stack:
    stack("up", "--yes", "--skip-preview")
    return stack


def as_previewer(cluster: Kubectl, *args: str) -> Any:
    return cluster(*AS_PREVIEWER, *args, check=False)


def test_the_previewer_may_dry_run_a_patch(deployed: Stack, cluster: Kubectl) -> None:
    before = live_weights(cluster)
    result = as_previewer(cluster, "patch", *VIRTUAL_SERVICE, "--type=json", "-p", WEIGHT_PATCH, "--dry-run=server")
    assert result.returncode == 0, result.stderr
    assert live_weights(cluster) == before


def test_the_previewer_may_not_patch_for_real(deployed: Stack, cluster: Kubectl) -> None:
    before = live_weights(cluster)
    result = as_previewer(cluster, "patch", *VIRTUAL_SERVICE, "--type=json", "-p", WEIGHT_PATCH)
    assert result.returncode != 0
    assert DRY_RUN_ONLY_MESSAGE in result.stderr
    assert live_weights(cluster) == before


def test_the_previewer_may_dry_run_a_create_only(deployed: Stack, cluster: Kubectl) -> None:
    """A new object previews as a dry-run apply patch, which Kubernetes authorizes as a create: the
    server then validates it (schema, admission); forbidden, the provider silently falls back to
    echoing the inputs (provider.go, Create)."""
    config_map = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "preview-probe", "namespace": "default"}}
    )
    apply = ("apply", "--server-side", "--field-manager=preview-probe", "-f", "-")
    result = cluster(*AS_PREVIEWER, *apply, "--dry-run=server", stdin=config_map, check=False)
    assert result.returncode == 0, result.stderr
    result = cluster(*AS_PREVIEWER, *apply, stdin=config_map, check=False)
    assert result.returncode != 0
    assert DRY_RUN_ONLY_MESSAGE in result.stderr
    assert cluster("get", "-n", "default", "configmap", "preview-probe", check=False).returncode != 0


def test_the_previewer_may_not_delete_or_read_secrets(deployed: Stack, cluster: Kubectl) -> None:
    for args in (("delete", *VIRTUAL_SERVICE), ("delete", *VIRTUAL_SERVICE, "--dry-run=server")):
        result = as_previewer(cluster, *args)
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stderr
    assert cluster.get(*VIRTUAL_SERVICE)["metadata"]["name"] == "nginx-virtual-svc"
    result = as_previewer(cluster, "get", "-n", "default", "secrets")
    assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stderr
    # Nor grant itself more: RBAC objects are not among its kinds.
    result = as_previewer(cluster, "auth", "can-i", "create", "clusterrolebindings")
    assert result.stdout.strip() == "no"


def test_a_preview_as_the_previewer_shows_the_weight_change(
    deployed: Stack, cluster: Kubectl, kubeconfig: Path
) -> None:
    admin = kubeconfig.read_text()
    config = yaml.safe_load(admin)
    for user in config["users"]:  # what CI's kubeconfig would carry: the preview identity, mapped to the group
        user["user"]["as"] = "ci-preview"
        user["user"]["as-groups"] = [PREVIEW_GROUP]
    deployed.set_config("canaryWeight", "30")
    kubeconfig.write_text(yaml.safe_dump(config))
    try:
        ops = steps_by_op(deployed.preview())
        # With only view rights this preview failed: `forbidden: cannot patch` (pulumi-kubernetes#2213).
        assert ops.get("update") == ["nginx-virtual-svc"], ops
        # A new object previews as a dry-run apply patch of an object that does not exist: `create`.
        deployed.set_config("trafficApi", "gateway-api")
        ops = steps_by_op(deployed.preview())
        assert "nginx-route" in ops.get("create", []), ops
        deployed("config", "rm", "trafficApi")
        refused = deployed("up", "--yes", "--skip-preview", check=False)
        assert refused.returncode != 0
        assert DRY_RUN_ONLY_MESSAGE in refused.stdout + refused.stderr
    finally:
        kubeconfig.write_text(admin)
        deployed.set_config("canaryWeight", "0")
        deployed("config", "rm", "trafficApi")
    assert live_weights(cluster)["v2"] == 0
