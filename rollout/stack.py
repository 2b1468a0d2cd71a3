"""The stack a rollout drives, through Pulumi's Automation API.

Every change is a stack config change validated by the program's own settings
loader, then `pulumi up`: the same step a person makes with `pulumi config set`,
recorded in the stack's update history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from rollout.deployed import Served, deployed_config, served_by
from rollout.record import TAG, RunRecord
from settings import Settings, load_settings


class ApplyError(RuntimeError):
    """`pulumi up` failed; the config of the keys it changed now matches what is deployed."""


class UpdateInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during `pulumi up`: the engine was cancelled and has stopped; config matches the state."""


@dataclass(frozen=True)
class Update:
    """One entry of the stack's update history."""

    version: int
    message: str


@dataclass(frozen=True)
class StackConfig:
    """A ConfigSource over the stack's config (plus pending changes), as the program reads it."""

    project: str
    values: Mapping[str, str]

    def get(self, key: str) -> str | None:
        return self.values.get(f"{self.project}:{key}")

    def keys(self) -> list[str]:
        return [key.split(":", 1)[1] for key in self.values if key.startswith(f"{self.project}:")]


def reconciliations(
    project: str,
    before: Mapping[str, str],
    changes: Mapping[str, str],
    now: Mapping[str, str],
    deployed: Mapping[str, str],
) -> dict[str, str | None]:
    """After a failed or interrupted update, the config of each key it changed: what is deployed (the state
    says), else what was there before (None: remove the key). Keys changed since by someone else (`canary abort`
    while this update waited for the stack's lock) are spared."""
    return {
        key: deployed.get(key, before.get(f"{project}:{key}"))
        for key, ours in changes.items()
        if now.get(f"{project}:{key}") == ours
    }


def _diagnostics(output: str, limit: int = 4000) -> str:
    """Why an update failed: the policy violations and the engine's `error:` lines (a refused step also
    stops the program, whose Python traceback would bury them); else the diagnostics, else the output's end."""
    reasons = []
    if (policies := output.find("Policies:")) >= 0:
        reasons.append(output[policies:].split("\n\n", 1)[0])
    reasons += [line.strip() for line in output.splitlines() if line.strip().startswith("error:")]
    if reasons:
        return "\n".join(reasons)[:limit]
    start = output.find("Diagnostics:")
    return output[start : start + limit] if start >= 0 else output[-limit:]


class PulumiStack:
    def __init__(
        self,
        stack_name: str,
        work_dir: Path,
        policy_packs: list[str] | None = None,
        on_output: Callable[[str], None] | None = None,
        notify: Callable[[str], None] = print,
    ) -> None:
        self.name = stack_name
        self._policy_packs = policy_packs or []
        self.project = yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"]
        self._stack = auto.select_stack(stack_name, work_dir=str(work_dir))
        self._on_output = on_output
        self._notify = notify

    def _config(self) -> dict[str, str]:
        return {key: item.value for key, item in self._stack.get_all_config().items()}

    def settings(self, changes: Mapping[str, str] | None = None) -> Settings:
        """The validated settings, with `changes` applied; raises SettingsError naming every bad value."""
        return self._validated(self._config(), changes or {})

    def _validated(self, config: Mapping[str, str], changes: Mapping[str, str]) -> Settings:
        values = {**config, **{f"{self.project}:{key}": value for key, value in changes.items()}}
        return load_settings(StackConfig(self.project, values))

    def apply(self, changes: Mapping[str, str], message: str) -> float:
        """Validate, set the config and run `pulumi up`; the seconds it took.

        When the update fails or is interrupted, the config of the changed keys is set to what the
        stack's state says is deployed (never to a value the cluster does not serve), and the error says so.
        """
        before = self._config()
        self._validated(before, changes)
        start = time.monotonic()
        try:
            self._stack.set_all_config({key: auto.ConfigValue(value) for key, value in changes.items()})
            code, output = self._up(message)
        except KeyboardInterrupt:
            raise UpdateInterrupted(self._reconcile(before, changes, "the update was cancelled")) from None
        if code != 0:
            raise ApplyError(self._reconcile(before, changes, f"pulumi up failed:\n{_diagnostics(output)}"))
        return time.monotonic() - start

    def _up(self, message: str) -> tuple[int, str]:
        """`pulumi up` in a session of its own, so a Ctrl-C reaches only this process, which forwards it:
        the engine cancels, finishes the operations in flight and unlocks the stack; a second one forces."""
        workspace = self._stack.workspace
        argv = [workspace.pulumi_command.command, "up", "--yes", "--skip-preview", "--non-interactive"]
        argv += ["--stack", self.name, "--message", message, "--color", "never", "--suppress-progress"]
        for pack in self._policy_packs:
            argv += ["--policy-pack", pack]
        env = {**os.environ, **workspace.env_vars}
        if workspace.pulumi_home:
            env["PULUMI_HOME"] = workspace.pulumi_home
        with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a killed `canary` never kills the engine
            engine = subprocess.Popen(
                argv, cwd=workspace.work_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            interrupted = 0
            while True:
                try:
                    engine.wait()
                    break
                except KeyboardInterrupt:
                    interrupted += 1
                    if interrupted == 1:
                        self._notify(
                            "interrupted: cancelling the update; pulumi finishes the operations in flight and "
                            "unlocks the stack (interrupt again to force it, which can leave operations pending)"
                        )
                    else:
                        self._notify("interrupted again: forcing pulumi to stop now")
                    engine.send_signal(signal.SIGINT if interrupted <= 2 else signal.SIGKILL)
            log.seek(0)
            output = log.read()
        if self._on_output is not None:
            for line in output.splitlines():
                self._on_output(line)
        if interrupted:
            raise KeyboardInterrupt
        return engine.returncode, output

    def _reconcile(self, before: Mapping[str, str], changes: Mapping[str, str], what: str) -> str:
        """Config of the changed keys set to what the state says is deployed; the story of it, for the report."""
        state = self._deployment()
        deployed = deployed_config(state.get("resources") or [])
        now = self._config()
        fixed = reconciliations(self.project, before, changes, now, deployed)
        for key, value in fixed.items():
            if value is None:
                self._stack.remove_config(key)
            elif now.get(f"{self.project}:{key}") != value:
                self._stack.set_config(key, auto.ConfigValue(value))
        split = served_by(state.get("resources") or [])
        lines = [what, f"deployed: {split.describe() if split else 'nothing yet'}"]
        if fixed:
            lines.append("stack config set to what is deployed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
        if pending := state.get("pending_operations"):
            lines.append(
                f"{len(pending)} operation(s) were left pending by the forced stop; "
                "`pulumi refresh` (then `pulumi stack export`) clears them"
            )
        return "\n".join(lines)

    def _deployment(self) -> dict[str, Any]:
        return dict(self._stack.export_stack().deployment or {})

    def served(self) -> Served | None:
        """What the stack's VirtualService (or HTTPRoute) serves, as the stack's state says."""
        return served_by(self._deployment().get("resources") or [])

    def last_update(self) -> Update | None:
        updates = self._stack.history(page_size=1, show_secrets=False)
        return Update(updates[0].version or 0, updates[0].message) if updates else None

    def updates_since(self, version: int) -> list[Update]:
        """The updates after `version`, newest first (our own update and anything that slipped in before it)."""
        found = []
        for update in self._stack.history(page_size=5, show_secrets=False):
            if (update.version or 0) <= version:
                break
            found.append(Update(update.version or 0, update.message))
        return found

    def deployed_split(self) -> dict[str, int] | None:
        split = self.served()
        return split.split if split is not None else None

    def read_record(self) -> RunRecord | None:
        tags = self._stack.workspace.list_tags(self.name)
        return RunRecord.decode(tags[TAG]) if TAG in tags else None

    def write_record(self, record: RunRecord) -> None:
        self._stack.workspace.set_tag(self.name, TAG, record.encode())

    def clear_record(self) -> None:
        if TAG in self._stack.workspace.list_tags(self.name):
            self._stack.workspace.remove_tag(self.name, TAG)
