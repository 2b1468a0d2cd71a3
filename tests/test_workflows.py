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
PULUMI_AUTH = "pulumi/auth-actions"
CHECKOUT = "actions/checkout"
PREVIEW_ENVIRONMENT = "preview"
SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")


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


def zizmor(path: Path, persona: str = "regular") -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    command = [
        str(scripts_dir() / "zizmor"),
        *("--offline", "--persona", persona, "--format", "json", "--no-progress"),
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
def test_zizmor_finds_nothing_even_as_an_auditor(path: Path) -> None:
    """The auditor persona reports every finding at every severity and confidence."""
    result, findings = zizmor(path, persona="auditor")
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
    # What the auditor persona adds: a secret outside an environment, no concurrency limit.
    bad.write_text(
        BAD_WORKFLOW.replace("@v4", "@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1").replace(
            '"${{ github.event.pull_request.title }}"', '"$TOKEN"\n        env:\n          TOKEN: ${{ secrets.TOKEN }}'
        )
    )
    _, findings = zizmor(bad, persona="auditor")
    assert {"secrets-outside-env", "concurrency-limits"} <= {finding["ident"] for finding in findings}


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
    expected = {
        *(CHECKOUT, "actions/setup-python", "actions/setup-go", "actions/cache/restore"),
        *(PULUMI, PULUMI_AUTH, AWS_CREDENTIALS),
    }
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
    assert "policy/requirements.lock" in (PROJECT_DIR / "scripts" / "venv").read_text()
    for path, job_id, job, step in runs:
        where = f"{path.name}:{job_id}"
        assert step["with"]["policyPacks"] == "policy", where
        assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}", where
        # Pulumi Cloud: a short-lived token from the OIDC exchange below; no stored token anywhere.
        assert step["env"] == {"PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"}, where
        steps = job["steps"]
        before = steps[: steps.index(step)]
        # Deploy jobs install only run-time dependencies, from the hashed lock.
        assert "scripts/venv --runtime" in [str(s.get("run", "")) for s in before], where
        assert any(str(s.get("uses", "")).startswith(AWS_CREDENTIALS) for s in before), where
        (exchange,) = [s for s in before if str(s.get("uses", "")).startswith(PULUMI_AUTH)]
        assert exchange["if"] == "vars.PULUMI_BACKEND_URL == ''", where
        assert exchange["with"] == {
            "organization": "${{ vars.PULUMI_ORGANIZATION }}",
            "requested-token-type": "urn:pulumi:token-type:access_token:team",
            "scope": "team:${{ vars.PULUMI_TEAM }}",
        }, where


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


# --- credentials: which job sees what -------------------------------------------------------


def job_environment(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    name = environment["name"] if isinstance(environment, dict) else environment
    return None if name is None else str(name)


def secrets_of(job: dict[str, Any]) -> set[str]:
    return set(SECRET.findall(json.dumps(job)))


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, job_id, job) for path in WORKFLOWS for job_id, job in jobs(load(path)).items()]


def test_credentials_exist_only_inside_an_environment() -> None:
    """A job without an environment gets no secret and no OIDC token; a stored Pulumi token exists nowhere."""
    credentialed = []
    for name, job_id, job in all_jobs():
        where = f"{name}:{job_id}"
        oidc = job["permissions"].get("id-token") == "write"
        if secrets_of(job) or oidc:
            assert job_environment(job), f"{where}: credentials outside an environment"
            credentialed.append(where)
        assert secrets_of(job) <= {"PULUMI_CONFIG_PASSPHRASE"}, where
        assert "github.token" not in json.dumps(job) or job_id == "target", where
    for path in WORKFLOWS:
        assert "PULUMI_ACCESS_TOKEN" not in path.read_text(), f"{path.name}: a stored Pulumi token"
    assert sorted(credentialed) == ["deploy.yml:preview", "deploy.yml:up", "pull-request.yml:preview"]


def test_previews_get_the_preview_environment_and_ups_the_stacks_own() -> None:
    # The up job's own policy-checked preview runs in the stack's environment, right before its up.
    up_jobs = {(path.name, job_id) for path, job_id, *_ in pulumi_steps("up")}
    previews = [entry for entry in pulumi_steps("preview") if (entry[0].name, entry[1]) not in up_jobs]
    assert {(path.name, job_id) for path, job_id, *_ in previews} == {
        ("pull-request.yml", "preview"),
        ("deploy.yml", "preview"),
    }
    for path, job_id, job, _ in previews:
        assert job_environment(job) == PREVIEW_ENVIRONMENT, f"{path.name}:{job_id}"
        assert job["permissions"].get("contents") == "read"
    for _, job_id, job, step in pulumi_steps("up"):
        environment = job_environment(job)
        assert environment and expression(environment) == expression(step["with"]["stack-name"]), job_id
        assert expression(environment) == "needs.target.outputs.stack", "only a stack the target job checked"
    stacks = json.loads(STACKS_FILE.read_text())
    assert PREVIEW_ENVIRONMENT not in stacks, "the preview environment must never hold deploy credentials"


# --- the target job: a manual up is refused before any credential ----------------------------

FAKE_GH = """\
#!/usr/bin/env bash
echo "$*" >> "$GH_CALLS"
if [[ -z "${FAKE_ENVIRONMENT:-}" ]]; then echo 'gh: Not Found (HTTP 404)' >&2; exit 1; fi
echo "$FAKE_ENVIRONMENT"
"""
MAIN_ONLY = {"protected_branches": False, "custom_branch_policies": True}
REVIEWERS = {"type": "required_reviewers", "reviewers": [{"type": "User"}]}
REVIEWED = {"name": "dev", "protection_rules": [REVIEWERS], "deployment_branch_policy": MAIN_ONLY}
UNREVIEWED = {"name": "dev", "protection_rules": [{"type": "branch_policy"}], "deployment_branch_policy": MAIN_ONLY}
ANY_BRANCH = {"name": "dev", "protection_rules": [REVIEWERS], "deployment_branch_policy": None}


def target_script() -> str:
    (step,) = [step for step in jobs(load(DEPLOY))["target"]["steps"] if step.get("id") == "target"]
    return str(step["run"])


def run_target(tmp_path: Path, stack: str, command: str, environment: dict[str, Any] | None) -> tuple[int, str, str]:
    """The target step's own script, as the runner would run it, with a stand-in `gh`."""
    bin_dir, output, calls = tmp_path / "bin", tmp_path / "output", tmp_path / "gh-calls"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    for path in output, calls:
        path.write_text("")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STACK": stack,
        "COMMAND": command,
        "GITHUB_OUTPUT": str(output),
        "GITHUB_REPOSITORY": "owner/repo",
        "GH_CALLS": str(calls),
        "FAKE_ENVIRONMENT": json.dumps(environment) if environment else "",
    }
    result = subprocess.run(
        # How the runner runs a `run:` step with the default shell.
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", target_script()],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr, output.read_text() + calls.read_text()


def test_target_is_the_only_gate_before_credentials() -> None:
    workflow = jobs(load(DEPLOY))
    target = workflow["target"]
    assert "environment" not in target and not secrets_of(target)
    assert target["permissions"] == {"contents": "read", "actions": "read"}
    for job_id in ("preview", "up"):
        assert "target" in workflow[job_id]["needs"], job_id
        assert workflow[job_id]["if"] == f"needs.target.outputs.command == '{job_id}'"


@pytest.mark.parametrize(
    ("stack", "command", "environment", "refusal"),
    [
        ("prod", "up", REVIEWED, "stack 'prod' is not listed in .github/stacks.json"),
        ("dev; rm -rf /", "up", REVIEWED, "is not listed in .github/stacks.json"),
        ("", "up", REVIEWED, "is not listed in .github/stacks.json"),
        ("dev", "destroy", REVIEWED, "command must be preview or up"),
        ("dev", "up", None, "no GitHub environment 'dev'"),
        ("dev", "up", UNREVIEWED, "GitHub environment 'dev' has no required reviewers"),
        ("dev", "up", {"name": "dev", "protection_rules": []}, "has no required reviewers"),
        ("dev", "up", ANY_BRANCH, "GitHub environment 'dev' lets every branch deploy"),
    ],
    ids=["unlisted", "injection", "empty", "destroy", "no-environment", "branch-rule-only", "no-rules", "any-branch"],
)
def test_a_bad_target_is_refused_before_any_output(
    tmp_path: Path, stack: str, command: str, environment: dict[str, Any] | None, refusal: str
) -> None:
    code, messages, outputs = run_target(tmp_path, stack, command, environment)
    assert code != 0
    assert f"::error::{refusal}" in messages or refusal in messages, messages
    assert "stack=" not in outputs and "command=" not in outputs, "the deploy jobs would get a target"


def test_a_good_target_passes(tmp_path: Path) -> None:
    code, messages, outputs = run_target(tmp_path, "dev", "up", REVIEWED)
    assert code == 0, messages
    assert outputs.splitlines() == ["stack=dev", "command=up", "api repos/owner/repo/environments/dev"]
    # A preview needs no protected environment: its credentials are read-only.
    code, messages, outputs = run_target(tmp_path, "dev", "preview", None)
    assert code == 0, messages
    assert outputs.splitlines() == ["stack=dev", "command=preview"]


# --- versions -------------------------------------------------------------------------------


def toolchain_pulumi_version() -> str:
    match = re.search(r'^PULUMI_VERSION="\$\{CANARY_PULUMI_VERSION:-v(\d+\.\d+\.\d+)\}"$', TOOLCHAIN, re.MULTILINE)
    assert match, "scripts/toolchain pins the pulumi CLI"
    return match[1]


TOOLCHAIN = (PROJECT_DIR / "scripts" / "toolchain").read_text()


def test_ci_runs_exactly_the_pulumi_cli_the_tests_use() -> None:
    version = toolchain_pulumi_version()
    for path in WORKFLOWS:
        workflow = load(path)
        runs = [run for run in pulumi_steps("preview") + pulumi_steps("up") if run[0] == path]
        if runs:
            assert workflow["env"]["PULUMI_VERSION"] == version, path.name
        for _, job_id, _, step in runs:
            assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}", f"{path.name}:{job_id}"
    docs = (PROJECT_DIR / "docs" / "github-setup.md").read_text()
    assert f"pulumi CLI {version}" in docs, "docs/github-setup.md names the CLI version CI runs"


# --- docs/github-setup.md: the trust policies match the jobs' OIDC subjects ------------------

SETUP = PROJECT_DIR / "docs" / "github-setup.md"
SUBJECT_KEY = "token.actions.githubusercontent.com:sub"


def documented_json() -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", SETUP.read_text(), re.DOTALL)]


def trust_policies() -> list[set[str]]:
    """The `sub` values each documented trust policy allows."""
    policies = []
    for document in documented_json():
        if not isinstance(document, dict):
            continue
        for statement in document.get("Statement", []):
            if statement.get("Action") == "sts:AssumeRoleWithWebIdentity":
                assert statement["Effect"] == "Allow"
                assert set(statement["Condition"]) == {"StringEquals"}, "exact subjects, no StringLike wildcards"
                condition = statement["Condition"]["StringEquals"]
                assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
                subjects = condition[SUBJECT_KEY]
                policies.append({subjects} if isinstance(subjects, str) else set(subjects))
    return policies


def job_subjects() -> dict[str, set[str]]:
    """The OIDC subject of every job that can request a token, by workflow:job."""
    stacks = json.loads(STACKS_FILE.read_text())
    subjects = {}
    for name, job_id, job in all_jobs():
        if job["permissions"].get("id-token") != "write":
            continue
        environment = job_environment(job)
        assert environment, f"{name}:{job_id}: without an environment the subject would be the branch's"
        names = stacks if environment.startswith("${{") else [environment]
        subjects[f"{name}:{job_id}"] = {f"repo:OWNER/REPO:environment:{env}" for env in names}
    return subjects


def test_the_documented_trust_policies_are_exactly_the_jobs_subjects() -> None:
    preview, deploy = trust_policies()
    subjects = job_subjects()
    assert preview == {"repo:OWNER/REPO:environment:preview"}
    assert preview == subjects["pull-request.yml:preview"] == subjects["deploy.yml:preview"]
    assert deploy == subjects["deploy.yml:up"], "one subject per stack in .github/stacks.json"
    assert not preview & deploy, "the preview role trusts no deploy job, and the other way round"
    assert all(":environment:" in subject for subject in preview | deploy)


def test_the_documented_state_bucket_policy_keeps_previews_read_only() -> None:
    policies = [document for document in documented_json() if isinstance(document, dict)]
    (bucket,) = [policy for policy in policies if any(s.get("Sid") for s in policy["Statement"])]
    by_effect: dict[str, set[str]] = {"Allow": set(), "Deny": set()}
    for statement in bucket["Statement"]:
        assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/canary-preview"}
        actions = statement["Action"]
        by_effect[statement["Effect"]] |= {actions} if isinstance(actions, str) else set(actions)
    assert by_effect["Allow"] == {"s3:GetObject", "s3:ListBucket"}
    assert {"s3:PutObject", "s3:DeleteObject"} <= by_effect["Deny"]


def test_the_documented_variables_and_secrets_are_the_ones_the_workflows_read() -> None:
    text = "\n".join(path.read_text() for path in WORKFLOWS)
    variables = set(re.findall(r"vars\.(\w+)", text))
    secrets = set(SECRET.findall(text))
    docs = SETUP.read_text()
    for name in variables | secrets:
        assert f"`{name}`" in docs, name
    assert secrets == {"PULUMI_CONFIG_PASSPHRASE"}
    assert variables == {"AWS_ROLE_ARN", "AWS_REGION", "PULUMI_BACKEND_URL", "PULUMI_ORGANIZATION", "PULUMI_TEAM"}
    assert "Repository secrets: none." in docs
