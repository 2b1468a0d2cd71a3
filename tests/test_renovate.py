""".github/renovate.json: valid for Renovate, and its managers find every pin the project keeps.

The schema is the one check-jsonschema vendors from Renovate (`vendor.renovate`, its
renovate-schema.json); it allows unknown keys, so the keys are also checked against its
properties here. The custom managers' regexes run here on the real files (Renovate's
`(?<name>...)` groups are Python's `(?P<name>...)`), so a pin they miss shows as a failure.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mesh import charts
from settings import declared_settings
from tests.harness import PROJECT_DIR

CONFIG_FILE = PROJECT_DIR / ".github" / "renovate.json"
CONFIG: dict[str, Any] = json.loads(CONFIG_FILE.read_text())
LOCK_FILES = {"requirements.lock", "requirements-dev.lock", "policy/requirements.lock"}
TOOLCHAIN_PIN = re.compile(r'^(?P<name>\w+)="\$\{CANARY_(?P=name):-(?P<value>[^}]+)\}"$', re.MULTILINE)
# The toolchain's pins Renovate cannot propose: a Go pseudo-version (named in a PR note instead).
BY_HAND = {"K8S_PROVIDER_MODVER"}


def schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "renovate.json"
    result: dict[str, Any] = json.loads(vendored.read_text())
    return result


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.renovate", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def unknown_keys(config: dict[str, Any]) -> list[str]:
    """Keys Renovate does not know: the schema itself lets them pass."""
    definitions = schema()["definitions"]
    # Every config option has a definition; not all are allowed at the top level (properties).
    properties = {"$schema", *schema()["properties"]}
    options = definitions.keys()
    custom = definitions["customManagers"]["items"]["allOf"][0]["properties"]
    rule = definitions["packageRules"]["items"]["allOf"][0]["properties"]
    unknown = [key for key in config if key not in properties]
    for manager in ("pip-compile", "github-actions"):
        unknown += [f"{manager}.{key}" for key in config.get(manager, {}) if key not in options]
    unknown += [f"customManagers.{key}" for m in config["customManagers"] for key in m if key not in custom]
    unknown += [f"packageRules.{key}" for r in config["packageRules"] for key in r if key not in rule]
    return unknown


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    return listing.stdout.splitlines()


def files_for(patterns: list[str]) -> list[str]:
    regexes = []
    for pattern in patterns:
        assert pattern.startswith("/") and pattern.endswith("/"), f"use regex patterns here: {pattern}"
        regexes.append(re.compile(pattern[1:-1]))
    return [path for path in tracked_files() if any(regex.search(path) for regex in regexes)]


def found(manager: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(file, captured groups and templates) of every dependency the custom manager finds."""
    results = []
    for path in files_for(manager["managerFilePatterns"]):
        text = (PROJECT_DIR / path).read_text()
        for match_string in manager["matchStrings"]:
            for match in re.finditer(match_string.replace("(?<", "(?P<"), text):
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                groups.setdefault("depName", manager.get("depNameTemplate", ""))
                groups.setdefault("registryUrl", manager.get("registryUrlTemplate", ""))
                results.append((path, groups))
    return results


def found_in(path: str, datasource: str | None = None) -> list[dict[str, str]]:
    return [
        groups
        for manager in CONFIG["customManagers"]
        if datasource in (None, manager.get("datasourceTemplate"))
        for file, groups in found(manager)
        if file == path
    ]


# --- valid --------------------------------------------------------------------------------


def test_the_config_matches_renovates_schema() -> None:
    result = check_jsonschema(CONFIG_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert unknown_keys(CONFIG) == []


def test_the_checks_do_catch_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "renovate.json"
    bad.write_text(json.dumps({**CONFIG, "enabledManagers": ["pip-compyle"]}))
    assert check_jsonschema(bad).returncode != 0
    assert unknown_keys({**CONFIG, "lockFileMaintainance": {"enabled": True}}) == ["lockFileMaintainance"]
    typo = {**CONFIG, "customManagers": [{**CONFIG["customManagers"][0], "datasource": "helm"}]}
    assert unknown_keys(typo) == ["customManagers.datasource"]


# --- every pin is found ---------------------------------------------------------------------


def test_actions_are_kept_pinned_to_commits() -> None:
    assert "github-actions" in CONFIG["enabledManagers"]
    assert "helpers:pinGitHubActionDigests" in CONFIG["extends"]


def test_the_python_locks_are_updated_through_their_compile_command() -> None:
    assert "pip-compile" in CONFIG["enabledManagers"]
    # Not pip_requirements: it would move a range in requirements*.txt and leave the lock behind.
    assert "pip_requirements" not in CONFIG["enabledManagers"]
    assert set(files_for(CONFIG["pip-compile"]["managerFilePatterns"])) == LOCK_FILES
    for lock in LOCK_FILES:
        assert (PROJECT_DIR / lock).read_text().splitlines()[1].startswith("#    uv pip compile "), lock


def test_every_helm_chart_the_program_pins_is_found() -> None:
    pinned = {(chart.chart, chart.repo, chart.version) for chart in (charts.PROMETHEUS, charts.GRAFANA, charts.KIALI)}
    found_charts = {(g["depName"], g["registryUrl"], g["currentValue"]) for g in found_in("mesh/charts.py", "helm")}
    assert found_charts == pinned
    chart_calls = re.findall(
        r'Chart\("[^"]+", "[^"]+", "[^"]+", "[^"]+"\)', (PROJECT_DIR / "mesh/charts.py").read_text()
    )
    assert len(chart_calls) == len(pinned), "a chart pinned in another form would be missed"
    (istio,) = found_in("Pulumi.yaml")
    assert istio["currentValue"] == declared_settings()["istioVersion"]["default"]
    assert (istio["depName"], istio["registryUrl"]) == (charts.istio_charts("x")["base"].chart, charts.ISTIO_CHARTS)


def test_the_gateway_api_release_is_found() -> None:
    """mesh/charts.py pins the Gateway API release; scripts/toolchain takes its CRDs from the same pin."""
    (gateway_api,) = found_in("mesh/charts.py", datasource="go")
    assert gateway_api["currentValue"] == charts.GATEWAY_API_VERSION


def test_every_toolchain_pin_is_found() -> None:
    text = (PROJECT_DIR / "scripts" / "toolchain").read_text()
    pins = {match["name"]: match["value"] for match in TOOLCHAIN_PIN.finditer(text)}
    # _MIN: a floor, not a pin; a value read from the project ("$(...)") has its pin, and its Renovate rule, there.
    pins = {name: value for name, value in pins.items() if not name.endswith("_MIN") and "$(" not in value}
    assert {"PULUMI_VERSION", "KUBE_VERSION", "ETCD_VERSION", "KWOK_VERSION", "PROMETHEUS_DEB_VERSION"} <= pins.keys()
    found_values = sorted(groups["currentValue"] for groups in found_in("scripts/toolchain"))
    assert found_values == sorted(value for name, value in pins.items() if name not in BY_HAND)
    notes = json.dumps([rule.get("prBodyNotes") for rule in CONFIG["packageRules"]])
    assert all(name in notes for name in BY_HAND), "a pin Renovate cannot move is named in its PR"


@pytest.mark.parametrize("workflow", [".github/workflows/pull-request.yml", ".github/workflows/deploy.yml"])
def test_the_pulumi_cli_of_ci_moves_with_the_toolchains(workflow: str) -> None:
    (ci,) = found_in(workflow)
    toolchain = [g for g in found_in("scripts/toolchain") if g["depName"] == ci["depName"]]
    (tests,) = toolchain
    assert tests["currentValue"] == f"v{ci['currentValue']}"
    (group,) = [rule for rule in CONFIG["packageRules"] if ci["depName"] in rule.get("matchDepNames", [])]
    assert group["groupName"], "one pull request moves both"
