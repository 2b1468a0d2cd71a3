"""rollout/stack.py: the Automation API wrapper every `canary` change goes through.

The engine cannot run in the unit tier, so two stand-ins (tests/rollout_stand_ins.py) take its place:
the Automation API's `Stack` (config, state, update history and tags of one stack, in memory) and a
`pulumi` CLI for `pulumi up` (a shell script that logs its arguments, prints what the engine would and exits
with its code; one variant sends the Ctrl-C a person would press while it runs). What is
checked is what the user relies on: the config after a failed or interrupted update matches
what the state says is deployed, the report says what is served, and the engine is cancelled
(not killed) on the first interrupt.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

import pytest
from pulumi import automation as auto

from rollout.record import TAG, RunRecord
from rollout.stack import ApplyError, PulumiStack, Update, UpdateInterrupted, _diagnostics
from settings import SettingsError
from tests.harness import EXISTING_CLUSTER, PROJECT_DIR
from tests.rollout_stand_ins import (
    PROJECT,
    AutomationStackStandIn,
    Command,
    Summary,
    WorkspaceStandIn,
    engine_stand_in,
)
from tests.test_rollout import state_of


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


def open_stack(
    monkeypatch: pytest.MonkeyPatch,
    bin_dir: Path,
    config: Mapping[str, str],
    deployed: Mapping[str, str],
    policy_packs: list[str] | None = None,
) -> tuple[PulumiStack, AutomationStackStandIn, list[str]]:
    """PulumiStack over a stand-in whose state holds what the program deploys with `deployed`."""
    workspace = WorkspaceStandIn(Command(str(bin_dir / "pulumi")), str(PROJECT_DIR))
    automation = AutomationStackStandIn(workspace, config, state_of(dict(deployed)))
    selected: list[tuple[str, str]] = []

    def select_stack(name: str, work_dir: str) -> AutomationStackStandIn:
        selected.append((name, work_dir))
        return automation

    monkeypatch.setattr(auto, "select_stack", select_stack)
    said: list[str] = []
    outputs: list[str] = []
    stack = PulumiStack("dev", PROJECT_DIR, policy_packs, on_output=outputs.append, notify=said.append)
    assert selected == [("dev", str(PROJECT_DIR))]
    assert (stack.name, stack.project) == ("dev", PROJECT)
    said.extend(f"output: {line}" for line in outputs)
    return stack, automation, said


AT_10 = {**EXISTING_CLUSTER, "canaryWeight": "10"}
HEADER_ROUTE = {"canaryHeaderName": "x-canary", "canaryHeaderValue": "3f9c2a7be1d04c58"}


def test_an_update_sets_the_config_then_runs_pulumi_up_with_the_policy_packs(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    log = engine_stand_in(bin_dir, "Resources:\n    1 updated\n", 0)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10, policy_packs=["policy", "extra"])
    seconds = stack.apply({"canaryWeight": "25"}, "canary: step 2 of 4")
    assert 0 < seconds < 30
    assert automation.config[f"{PROJECT}:canaryWeight"] == "25"
    assert log.read_text().splitlines() == [
        "up --yes --skip-preview --non-interactive --stack dev --message canary: step 2 of 4 --color never "
        "--suppress-progress --policy-pack policy --policy-pack extra"
    ]


def test_the_engines_output_goes_to_the_callback_line_by_line(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    engine_stand_in(bin_dir, "Updating (dev)\nResources:\n    1 updated\n", 0)
    workspace = WorkspaceStandIn(Command(str(bin_dir / "pulumi")), str(PROJECT_DIR))
    automation = AutomationStackStandIn(workspace, AT_10, state_of(AT_10))
    monkeypatch.setattr(auto, "select_stack", lambda name, work_dir: automation)
    lines: list[str] = []
    PulumiStack("dev", PROJECT_DIR, on_output=lines.append).apply({"canaryWeight": "25"}, "m")
    assert lines == ["Updating (dev)", "Resources:", "    1 updated"]


def test_an_invalid_change_is_refused_before_the_config_or_the_cluster_changes(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    log = engine_stand_in(bin_dir, "", 0)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    with pytest.raises(SettingsError, match="canaryWeight"):
        stack.apply({"canaryWeight": "101"}, "m")
    assert automation.config_calls == []
    assert not log.exists()


REFUSED = """Previewing update (dev):
Policies:
    canary-guardrails@v0.0.1 (local: policy)
        - [mandatory]  traffic-split  (kubernetes:networking.istio.io/v1:VirtualService: nginx-virtual-svc)
          canaryWeight 60 is above the maximum of 50%

Diagnostics:
  pulumi:pulumi:Stack (canary-dev):
    error: update failed
"""


def test_a_refused_update_puts_the_config_back_to_what_the_state_serves(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    engine_stand_in(bin_dir, REFUSED, 255)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    with pytest.raises(ApplyError) as refused:
        stack.apply({"canaryWeight": "60", "canaryReplicas": "3", **HEADER_ROUTE}, "m")
    assert automation.config[f"{PROJECT}:canaryWeight"] == "10"
    assert automation.config[f"{PROJECT}:canaryReplicas"] == "1", "the replicas the state's Deployment has"
    assert automation.config[f"{PROJECT}:canaryHeaderName"] == "", "the state serves no header route"
    assert f"{PROJECT}:canaryHeaderValue" not in automation.config, "a key the state cannot tell, new: removed"
    report = str(refused.value).splitlines()
    assert report[0] == "pulumi up failed:"
    assert report[1] == "Policies:"
    assert "canaryWeight 60 is above the maximum of 50%" in str(refused.value)
    assert "deployed: v1 90% / v2 10%" in report
    assert report[-1] == (
        "stack config set to what is deployed: canaryWeight=10, canaryReplicas=1, canaryHeaderName=, "
        "canaryHeaderValue=None"
    )


def test_an_update_that_failed_after_the_change_keeps_the_config_that_is_deployed(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    """The engine changed the VirtualService, then failed on something else: the config stays at what is served,
    and no config call is made for a key that already says so."""
    engine_stand_in(bin_dir, "error: a Deployment did not become ready\n", 1)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, {**AT_10, "canaryWeight": "25"})
    with pytest.raises(ApplyError) as failed:
        stack.apply({"canaryWeight": "25"}, "m")
    assert automation.config[f"{PROJECT}:canaryWeight"] == "25"
    assert automation.config_calls == ["set_all canaryWeight"]
    assert str(failed.value).splitlines() == [
        "pulumi up failed:",
        "error: a Deployment did not become ready",
        "deployed: v1 75% / v2 25%",
        "stack config set to what is deployed: canaryWeight=25",
    ]


def test_a_failure_without_error_lines_reports_the_end_of_the_output_capped(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    """No `error:` line, no diagnostics (the engine was killed mid-way): the report keeps the last 4000
    characters of the output, where it stopped, not a flood of every step before."""
    output = "".join(f"    ~ resource {number:04d} updating\n" for number in range(400))
    engine_stand_in(bin_dir, output, 1)
    stack, _, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    with pytest.raises(ApplyError) as failed:
        stack.apply({"canaryWeight": "20"}, "m")
    assert str(failed.value).split("\ndeployed: ")[0] == "pulumi up failed:\n" + output[-4000:]


def test_a_change_made_by_someone_else_meanwhile_is_not_undone(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    engine_stand_in(bin_dir, "error: the stack is locked\n", 255)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    real_set_all = automation.set_all_config

    def then_an_abort_elsewhere(values: Mapping[str, auto.ConfigValue]) -> None:
        real_set_all(values)
        automation.config[f"{PROJECT}:canaryWeight"] = "0"  # `canary abort` wrote its config meanwhile

    automation.set_all_config = then_an_abort_elsewhere  # type: ignore[method-assign]
    with pytest.raises(ApplyError) as failed:
        stack.apply({"canaryWeight": "50"}, "m")
    assert automation.config[f"{PROJECT}:canaryWeight"] == "0"
    assert "stack config set" not in str(failed.value)


def test_pending_operations_left_by_a_forced_stop_are_reported_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    engine_stand_in(bin_dir, "error: update canceled\n", 255)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    automation.pending_operations = [{"type": "updating"}, {"type": "creating"}]
    with pytest.raises(ApplyError) as failed:
        stack.apply({"canaryWeight": "20"}, "m")
    assert str(failed.value).splitlines()[-1] == (
        "2 operation(s) were left pending by the forced stop; `pulumi refresh` (then `pulumi stack export`) clears them"
    )


def test_before_the_first_update_the_report_says_nothing_is_deployed(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    engine_stand_in(bin_dir, "error: boom\n", 1)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    automation.resources = []
    with pytest.raises(ApplyError) as failed:
        stack.apply({"canaryWeight": "20"}, "m")
    assert "deployed: nothing yet" in str(failed.value).splitlines()
    assert f"{PROJECT}:canaryWeight" in automation.config and automation.config[f"{PROJECT}:canaryWeight"] == "10"
    assert stack.served() is None and stack.deployed_split() is None


def interrupted_update(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path, interrupts: int
) -> tuple[list[str], list[str], UpdateInterrupted, AutomationStackStandIn]:
    """An update to 40 % that gets `interrupts` Ctrl-Cs: the signals the engine trapped, what the tool said,
    the error and the stack's config after it."""
    log = engine_stand_in(bin_dir, "", 0, interrupts=interrupts)
    stack, automation, said = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(UpdateInterrupted) as interrupted:
            stack.apply({"canaryWeight": "40"}, "m")
    finally:
        signal.signal(signal.SIGINT, previous)
    return log.read_text().splitlines()[1:], said, interrupted.value, automation


def test_a_ctrl_c_cancels_the_engine_lets_it_finish_and_reconciles(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    trapped, said, interrupted, automation = interrupted_update(monkeypatch, bin_dir, 1)
    assert trapped == ["SIGINT"], "the engine got one Ctrl-C, and was not killed"
    assert said == [
        "interrupted: cancelling the update; pulumi finishes the operations in flight and unlocks the stack "
        "(interrupt again to force it, which can leave operations pending)"
    ]
    assert automation.config[f"{PROJECT}:canaryWeight"] == "10"
    assert str(interrupted).splitlines()[:2] == ["the update was cancelled", "deployed: v1 90% / v2 10%"]


def test_a_second_ctrl_c_forces_the_engine_to_stop_and_a_third_kills_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second Ctrl-C is forwarded (the engine's forced stop); an engine stuck even then gets SIGKILL from the
    third, which it cannot trap."""
    trapped, said, _, _ = interrupted_update(monkeypatch, tmp_path / "second", 2)
    assert trapped == ["SIGINT", "SIGINT"]
    assert said[1:] == ["interrupted again: forcing pulumi to stop now"]
    trapped, said, _, _ = interrupted_update(monkeypatch, tmp_path / "third", 3)
    assert trapped == ["SIGINT", "SIGINT"], "the third signal was not a trappable SIGINT"
    assert said[1:] == ["interrupted again: forcing pulumi to stop now"] * 2


def test_the_engine_runs_in_a_session_of_its_own(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    """A Ctrl-C at the terminal goes to the whole foreground process group: the engine must get only the one the
    tool forwards (two at once would force it, leaving operations pending)."""
    engine_stand_in(bin_dir, "", 0)
    stack, _, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    stack.apply({"canaryWeight": "40"}, "m")
    assert (bin_dir / "session.txt").read_text().splitlines() == ["own"], "the one `pulumi up`, in its own session"


def test_the_engine_runs_with_the_workspaces_environment_and_pulumi_home(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path, tmp_path: Path
) -> None:
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f"#!/bin/sh\necho \"$PULUMI_HOME $CANARY_TEST_VAR $(pwd)\" > '{bin_dir}/env.txt'\n")
    script.chmod(0o755)
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    automation.workspace.env_vars = {"CANARY_TEST_VAR": "from-workspace"}
    automation.workspace.pulumi_home = str(tmp_path / "home")
    monkeypatch.chdir(tmp_path)  # `canary` started elsewhere: the engine still runs in the project
    stack.apply({"canaryWeight": "20"}, "m")
    assert (bin_dir / "env.txt").read_text().split() == [str(tmp_path / "home"), "from-workspace", str(PROJECT_DIR)]


def test_what_the_engine_says_on_stderr_is_in_the_error(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text("#!/bin/sh\necho 'Updating (dev)'\necho 'error: said on stderr' >&2\nexit 1\n")
    script.chmod(0o755)
    stack, _, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    with pytest.raises(ApplyError, match="said on stderr"):
        stack.apply({"canaryWeight": "20"}, "m")


def test_settings_are_the_stacks_config_with_the_changes_applied(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path
) -> None:
    stack, _, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    assert stack.settings().app.canary_weight == 10
    assert stack.settings({"canaryWeight": "30"}).app.canary_weight == 30
    with pytest.raises(SettingsError, match="canaryWeight"):
        stack.settings({"canaryWeight": "-1"})


def test_what_is_served_comes_from_the_state_not_the_config(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    stack, _, _ = open_stack(monkeypatch, bin_dir, {**AT_10, "canaryWeight": "50"}, AT_10)
    served = stack.served()
    assert served is not None and served.split == {"v1": 90, "v2": 10}
    assert stack.deployed_split() == {"v1": 90, "v2": 10}


def test_the_update_history_newest_first_down_to_a_version(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    assert stack.last_update() is None
    automation.updates = [Summary(9, "abort"), Summary(8, "step 2"), Summary(7, "step 1"), Summary(6, "up")]
    assert stack.last_update() == Update(9, "abort")
    assert stack.updates_since(7) == [Update(9, "abort"), Update(8, "step 2")]
    assert stack.updates_since(9) == []
    assert automation.history_pages == [1, 1, 5, 5], "the newest updates only, not the whole history"
    automation.updates = [Summary(None, "in progress")]  # no version yet: 0
    assert stack.last_update() == Update(0, "in progress")
    assert stack.updates_since(0) == []
    assert stack.updates_since(-1) == [Update(0, "in progress")]


def test_the_run_record_lives_in_one_stack_tag(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    stack, automation, _ = open_stack(monkeypatch, bin_dir, AT_10, AT_10)
    automation.workspace.tags = {"dev": {"owner": "platform"}, "other": {TAG: "{}"}}
    assert stack.read_record() is None
    stack.clear_record()  # nothing to clear: the other tags stay
    record = RunRecord.begin((10, 50))
    stack.write_record(record)
    assert automation.workspace.tags["dev"] == {"owner": "platform", TAG: record.encode()}
    assert stack.read_record() == record
    stack.clear_record()
    assert automation.workspace.tags == {"dev": {"owner": "platform"}, "other": {TAG: "{}"}}


def test_why_an_update_failed_is_found_at_the_very_start_of_the_output_too() -> None:
    refused = "Policies:\n    pack@v1\n        - [mandatory]  rule  (type: name)\n          why\n\nResources:\n"
    assert _diagnostics(refused) == refused.split("\n\n")[0]
    diagnostics = "Diagnostics:\n  pulumi:pulumi:Stack (canary-dev):\n    warning: w\n"
    assert _diagnostics(diagnostics, limit=20) == diagnostics[:20], "from the section on, capped"
    indented = "\tan indented first line\n* a bullet\nthe end\n"
    assert _diagnostics(indented) == indented, "indented lines are reasons only under an error: line"
    preview_then_update = "Previewing update\nDiagnostics:\n  warning: p\n\nUpdating\nDiagnostics:\n  warning: u\n"
    assert _diagnostics(preview_then_update) == preview_then_update[len("Previewing update\n") :], "from the first"
