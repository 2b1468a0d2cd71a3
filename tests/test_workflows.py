"""The GitHub Actions workflows: schema-valid, no zizmor findings, pinned, least privilege, gated deployments.

Offline: check-jsonschema uses its vendored copy of the workflow schema and zizmor runs with
--offline and no GitHub token, so no audit that needs the network runs here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import PROJECT_DIR

WORKFLOWS_DIR = PROJECT_DIR / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
STACKS_FILE = PROJECT_DIR / ".github" / "stacks.json"
PULL_REQUEST = WORKFLOWS_DIR / "pull-request.yml"
DEPLOY = WORKFLOWS_DIR / "deploy.yml"

# `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`, the only form a `uses:` line may take.
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})\s+#\s+v\d+\.\d+\.\d+\s*$"
)
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:")
EXPRESSION = re.compile(r"^\$\{\{\s*(?P<expr>.+?)\s*\}\}$")
TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")
# The only write scopes a job may be given, each only for the step that needs it.
WRITE_SCOPES = {"id-token", "pull-requests"}

AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"
PULUMI = "pulumi/actions"
CHECKOUT = "actions/checkout"


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    assert isinstance(workflow, dict), path
    if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
        workflow["on"] = workflow.pop(True)
    return workflow


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = workflow["jobs"]
    return result


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job.get("steps", []) if str(step.get("uses", "")).split("@")[0] == action]


def pulumi_steps(command: str) -> list[tuple[Path, str, dict[str, Any], dict[str, Any]]]:
    """(workflow, job id, job, step) of every pulumi/actions step running `command`."""
    return [
        (path, job_id, job, step)
        for path in WORKFLOWS
        for job_id, job in jobs(load(path)).items()
        for step in steps_using(job, PULUMI)
        if step["with"]["command"] == command
    ]


def expression(value: Any) -> str:
    """The expression inside a "${{ ... }}" value."""
    match = EXPRESSION.match(str(value).strip())
    assert match, f"expected a single ${{{{ }}}} expression, got {value!r}"
    return match["expr"]


def scripts_dir() -> Path:
    return Path(sysconfig.get_path("scripts"))


def offline_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in TOKEN_VARIABLES}


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def zizmor(path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    command = [
        str(scripts_dir() / "zizmor"),
        *("--offline", "--min-severity", "medium", "--format", "json", "--no-progress"),
        str(path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=offline_env(), cwd=path.parent)
    findings: list[dict[str, Any]] = json.loads(result.stdout) if result.stdout.strip() else []
    return result, findings


BAD_WORKFLOW = """\
name: bad
on: pull_request
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_both_workflows_and_the_stack_list_exist() -> None:
    assert PULL_REQUEST in WORKFLOWS and DEPLOY in WORKFLOWS
    stacks = json.loads(STACKS_FILE.read_text())
    assert isinstance(stacks, list) and "dev" in stacks
    assert len(stacks) == len(set(stacks))
    assert all(isinstance(stack, str) and re.fullmatch(r"[\w.-]+", stack) for stack in stacks)


# --- tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.name for path in WORKFLOWS])
def test_workflow_matches_the_github_workflow_schema(path: Path) -> None:
    result = check_jsonschema(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.name for path in WORKFLOWS])
def test_zizmor_finds_nothing_at_medium_severity_or_above(path: Path) -> None:
    result, findings = zizmor(path)
    summary = [(finding["ident"], finding["determinations"]["severity"]) for finding in findings]
    assert findings == [], f"{summary}\n{result.stderr}"
    assert result.returncode == 0, result.stderr


def test_the_tools_do_catch_a_bad_workflow(tmp_path: Path) -> None:
    """Both checks above fail on a known-bad workflow, so their passing means something."""
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW.replace("runs-on", "runs_on"))
    assert check_jsonschema(bad).returncode != 0
    bad.write_text(BAD_WORKFLOW)
    result, findings = zizmor(bad)
    assert result.returncode != 0
    assert {"unpinned-uses", "template-injection", "artipacked"} <= {finding["ident"] for finding in findings}


# --- structure ------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    pinned: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if USES_LINE.match(line):
                match = PINNED_USES.match(line)
                assert match, f"{path.name}:{number}: not pinned to a full commit SHA with a # vX.Y.Z comment: {line}"
                pinned.setdefault(match["action"], set()).add(line.split("@", 1)[1].strip())
        # Every `uses` the YAML holds was one of those lines (no flow-style or quoted form slipped past).
        for job in jobs(load(path)).values():
            for step in job.get("steps", []):
                if "uses" in step:
                    action, sha = str(step["uses"]).split("@")
                    assert any(ref.startswith(sha) for ref in pinned.get(action, set())), step["uses"]
    expected = {CHECKOUT, "actions/setup-python", "actions/setup-go", "actions/cache/restore", PULUMI, AWS_CREDENTIALS}
    assert expected <= pinned.keys()
    inconsistent = {action: refs for action, refs in pinned.items() if len(refs) != 1}
    assert not inconsistent, f"one action, several pins: {inconsistent}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.name for path in WORKFLOWS])
def test_permissions_are_least_privilege(path: Path) -> None:
    workflow = load(path)
    top = workflow.get("permissions")
    assert top is not None, "top-level permissions must be set"
    assert top == {} or (isinstance(top, dict) and set(top.values()) <= {"read", "none"}), top
    for job_id, job in jobs(workflow).items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{job_id}: a job states its own permissions"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes <= WRITE_SCOPES, f"{job_id}: {writes}"
        assert set(permissions.values()) <= {"read", "write", "none"}, job_id
        if "id-token" in writes:
            assert steps_using(job, AWS_CREDENTIALS), f"{job_id}: id-token: write without an AWS login"
        else:
            assert not steps_using(job, AWS_CREDENTIALS), f"{job_id}: AWS login without id-token: write"
        commenting = any(str(step["with"].get("comment-on-pr")).lower() == "true" for step in steps_using(job, PULUMI))
        assert ("pull-requests" in writes) == commenting, f"{job_id}: pull-requests: write only to comment"


def test_checkouts_keep_no_credentials_and_aws_uses_oidc_only() -> None:
    checkouts = 0
    for path in WORKFLOWS:
        assert not re.search(r"aws-(access-key-id|secret-access-key)|AWS_SECRET_ACCESS_KEY", path.read_text()), path
        for job in jobs(load(path)).values():
            for step in steps_using(job, CHECKOUT):
                checkouts += 1
                assert step.get("with", {}).get("persist-credentials") is False, path.name
            for step in steps_using(job, AWS_CREDENTIALS):
                assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
                assert step["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
    assert checkouts >= 4


def test_every_pulumi_run_enforces_the_policy_pack_on_the_configured_backend() -> None:
    runs = pulumi_steps("preview") + pulumi_steps("up")
    assert len(runs) >= 3
    # scripts/venv sets up both virtualenvs: the program's and the policy pack's.
    assert "policy/requirements.txt" in (PROJECT_DIR / "scripts" / "venv").read_text()
    for path, job_id, job, step in runs:
        where = f"{path.name}:{job_id}"
        assert step["with"]["policyPacks"] == "policy", where
        assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}", where
        assert step["env"] == {
            "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
            "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
        }, where
        steps = job["steps"]
        before = steps[: steps.index(step)]
        assert "scripts/venv" in [str(s.get("run", "")) for s in before], where
        assert any(str(s.get("uses", "")).startswith(AWS_CREDENTIALS) for s in before), where


def test_pull_requests_run_both_test_tiers_then_preview_every_listed_stack_with_a_comment() -> None:
    workflow = load(PULL_REQUEST)
    assert "pull_request" in workflow["on"] and "pull_request_target" not in workflow["on"]
    by_run = {str(step.get("run", "")): job_id for job_id, job in jobs(workflow).items() for step in job["steps"]}
    assert {"scripts/test --unit", "scripts/test --e2e"} <= by_run.keys()
    assert by_run["scripts/test --unit"] != by_run["scripts/test --e2e"], "the end-to-end tier has its own job"

    e2e = jobs(workflow)[by_run["scripts/test --e2e"]]
    assert steps_using(e2e, "actions/setup-go")
    (restore,) = steps_using(e2e, "actions/cache/restore")
    (save,) = steps_using(e2e, "actions/cache/save")
    for cache in restore, save:
        assert {"~/.cache/canary-toolchain", "~/.cache/go-build"} <= set(cache["with"]["path"].split())
    assert "hashFiles('scripts/toolchain', 'scripts/language-host/**')" in restore["with"]["key"]
    assert expression(save["with"]["key"]) == f"steps.{restore['id']}.outputs.cache-primary-key"
    # Saved right after the toolchain is built, before the tests can fail.
    order = [str(step.get("uses", step.get("run"))).split("@")[0] for step in e2e["steps"]]
    assert order.index("actions/cache/restore") < order.index("scripts/toolchain pulumi cluster")
    assert order.index("scripts/toolchain pulumi cluster") < order.index("actions/cache/save")
    assert order.index("actions/cache/save") < order.index("scripts/test --e2e")

    ((_, _, job, step),) = [run for run in pulumi_steps("preview") if run[0] == PULL_REQUEST]
    assert str(step["with"]["comment-on-pr"]).lower() == "true"
    assert by_run["scripts/test --unit"] in job["needs"]
    # The matrix is the list in .github/stacks.json, read by the job it needs.
    assert expression(step["with"]["stack-name"]) == "matrix.stack"
    source = expression(job["strategy"]["matrix"]["stack"])
    lister = re.fullmatch(r"fromJSON\(needs\.([\w-]+)\.outputs\.stacks\)", source)
    assert lister and lister[1] in job["needs"], source
    assert ".github/stacks.json" in json.dumps(jobs(workflow)[lister[1]]["steps"])


def test_deploys_run_in_an_environment_one_at_a_time_per_stack() -> None:
    workflow = load(DEPLOY)
    assert workflow["on"]["push"]["branches"] == ["main"]
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["default"] == "dev"
    assert inputs["command"]["options"] == ["preview", "up"]

    ups = pulumi_steps("up")
    assert [path for path, *_ in ups] == [DEPLOY]
    # On push the stack is dev; by hand, the input, checked against .github/stacks.json first.
    target = jobs(workflow)["target"]
    assert "${{ inputs.stack || 'dev' }}" in json.dumps(target["steps"])
    assert ".github/stacks.json" in json.dumps(target["steps"])
    for _, job_id, job, step in ups:
        stack = expression(step["with"]["stack-name"])
        environment = job["environment"]
        name = environment["name"] if isinstance(environment, dict) else environment
        assert expression(name) == stack, job_id
        assert stack in job["concurrency"]["group"], job_id
        assert job["concurrency"]["cancel-in-progress"] is False, job_id
        assert "pull-requests" not in job["permissions"], job_id


def test_a_deploy_checks_the_policy_pack_and_the_canary_run_before_up() -> None:
    """`up` skips its preview, so the pack's stack rules would act only after the change; and an update under a
    running canary would change the split the run is judging."""
    workflow = load(DEPLOY)
    assert workflow["on"]["workflow_dispatch"]["inputs"]["force"] == {
        "description": workflow["on"]["workflow_dispatch"]["inputs"]["force"]["description"],
        "type": "boolean",
        "default": False,
    }
    ((_, _, job, up),) = pulumi_steps("up")
    before = job["steps"][: job["steps"].index(up)]
    previews = [step for step in before if str(step.get("uses", "")).startswith("pulumi/actions@")]
    assert [step["with"]["command"] for step in previews] == ["preview"]
    assert previews[0]["with"]["policyPacks"] == "policy"
    (guard,) = [step for step in before if "canary guard" in str(step.get("run", ""))]
    assert guard["run"] == 'venv/bin/canary guard --stack "$STACK"'
    assert expression(guard["env"]["STACK"]) == expression(up["with"]["stack-name"])
    assert expression(guard["if"]) == "!inputs.force"
    assert before.index(previews[0]) < before.index(guard), "the preview step installs and logs in the CLI"
