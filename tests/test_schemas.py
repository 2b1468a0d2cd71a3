"""Every object the program declares is valid for the API it is sent to.

Kubernetes objects are checked against the OpenAPI schema of the targeted Kubernetes
version (strict: unknown fields fail); Istio objects against Istio's networking/v1 models
by a round trip that drops nothing, so a misspelled field fails here, not in the cluster.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from cloudcoil.models.istio.networking import v1 as istio_networking
from cloudcoil.models.istio.security import v1 as istio_security

from settings import load_settings
from tests.harness import HEADER_ROUTE, DictConfig, ProgramRun, program_scope, run_program

KUBERNETES_VERSION = load_settings(DictConfig()).cluster.kubernetes_version  # type: ignore[union-attr]
ISTIO_MODELS: dict[str, Any] = {
    "Gateway": istio_networking.Gateway,
    "DestinationRule": istio_networking.DestinationRule,
    "VirtualService": istio_networking.VirtualService,
    "PeerAuthentication": istio_security.PeerAuthentication,
}
PATCH_OF = {"NamespacePatch": "Namespace"}


@pytest.fixture(scope=program_scope)
def run() -> ProgramRun:
    return run_program({"canaryWeight": "10", "appNamespace": "shop", **HEADER_ROUTE, "mirrorPercent": "5"})


@pytest.fixture(scope=program_scope)
def default_namespace_run() -> ProgramRun:
    return run_program({"canaryWeight": "10"})


@pytest.fixture(scope=program_scope)
def gateway_api_run() -> ProgramRun:
    """Gateway API objects are checked by their real CRDs in the end-to-end tier; its Services here."""
    return run_program({"canaryWeight": "10", "trafficApi": "gateway-api"})


def as_object(inputs: dict[str, Any]) -> dict[str, Any]:
    """Registered inputs as the API object (numbers come back from the wire as floats)."""

    def whole(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {key: whole(item) for key, item in value.items()}
        if isinstance(value, list):
            return [whole(item) for item in value]
        return value

    return {key: whole(value) for key, value in inputs.items() if key in {"apiVersion", "kind", "metadata", "spec"}}


def kubernetes_objects(run: ProgramRun) -> list[dict[str, Any]]:
    """Declared core and apps objects (Helm releases are checked by Helm; reads declare nothing)."""
    objects = []
    for resource in run.resources:
        if resource.type.startswith(("kubernetes:core/v1:", "kubernetes:apps/v1:")) and not resource.read:
            obj = as_object(resource.inputs)
            obj["kind"] = PATCH_OF.get(obj["kind"], obj["kind"])
            objects.append(obj)
    return objects


def validate_istio(obj: dict[str, Any]) -> None:
    model = ISTIO_MODELS[obj["kind"]]
    parsed = model.model_validate(obj)
    round_trip = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert round_trip == obj, f"{obj['kind']} has fields Istio's schema does not know"


def test_every_kubernetes_object_is_valid(
    run: ProgramRun, default_namespace_run: ProgramRun, gateway_api_run: ProgramRun
) -> None:
    objects = kubernetes_objects(run) + kubernetes_objects(default_namespace_run) + kubernetes_objects(gateway_api_run)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "Namespace"} <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_istio_object_is_valid(run: ProgramRun) -> None:
    istio = [as_object(r.inputs) for r in run.resources if ".istio.io/" in r.type]
    assert sorted(obj["kind"] for obj in istio) == [
        "DestinationRule",
        "Gateway",
        "PeerAuthentication",
        "VirtualService",
    ]
    for obj in istio:
        assert obj["apiVersion"] in {"networking.istio.io/v1", "security.istio.io/v1"}
        validate_istio(obj)


def test_a_misspelled_kubernetes_field_is_caught(run: ProgramRun) -> None:
    deployment = next(obj for obj in kubernetes_objects(run) if obj["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda vs: vs["spec"]["http"][0]["route"][0].update(wieght=90),
        lambda vs: vs["spec"]["http"][0]["route"][0].update(weight="ninety"),
        lambda vs: vs["spec"].update(host=vs["spec"].pop("hosts")),
    ],
    ids=["misspelled", "wrong-type", "renamed"],
)
def test_a_broken_istio_field_is_caught(run: ProgramRun, breakage: Any) -> None:
    virtual_service = as_object(run.named("nginx-virtual-svc").inputs)
    broken = copy.deepcopy(virtual_service)
    breakage(broken)
    with pytest.raises((AssertionError, ValueError)):
        validate_istio(broken)
