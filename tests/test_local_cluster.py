"""The local cluster gets the CRDs of the Istio and Gateway API releases the stack installs.

scripts/toolchain takes them with `go mod download` (the e2e tier applies them); its pins
are read from their one home in the project, so they cannot drift from what EKS gets.
"""

from __future__ import annotations

import os
import subprocess

from mesh import charts
from settings import declared_settings
from tests.harness import PROJECT_DIR


def toolchain_versions(**overrides: str) -> dict[str, str]:
    result = subprocess.run(
        [str(PROJECT_DIR / "scripts/toolchain"), "--versions"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **overrides},
    )
    return {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}


def test_the_crds_are_those_of_the_stacks_istio_and_gateway_api_releases() -> None:
    versions = toolchain_versions()
    assert versions["istio-crds"] == f"v{declared_settings()['istioVersion']['default']}"
    assert versions["gateway-api-crds"] == charts.GATEWAY_API_VERSION


def test_the_crd_versions_can_be_overridden() -> None:
    versions = toolchain_versions(CANARY_ISTIO_API_VERSION="v1.31.4", CANARY_GATEWAY_API_VERSION="v1.5.1")
    assert versions["istio-crds"] == "v1.31.4"
    assert versions["gateway-api-crds"] == "v1.5.1"
