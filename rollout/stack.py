"""The stack a rollout drives, through Pulumi's Automation API.

Every change is a stack config change validated by the program's own settings
loader, then `pulumi up`: the same step a person makes with `pulumi config set`,
recorded in the stack's update history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from rollout.record import TAG, RunRecord
from settings import Settings, load_settings


class ApplyError(RuntimeError):
    """`pulumi up` failed; the stack config was put back as it was."""


@dataclass(frozen=True)
class StackConfig:
    """A ConfigSource over the stack's config (plus pending changes), as the program reads it."""

    project: str
    values: Mapping[str, str]

    def get(self, key: str) -> str | None:
        return self.values.get(f"{self.project}:{key}")

    def keys(self) -> list[str]:
        return [key.split(":", 1)[1] for key in self.values if key.startswith(f"{self.project}:")]


def restorations(
    project: str, before: Mapping[str, str], changes: Mapping[str, str], now: Mapping[str, str]
) -> dict[str, str | None]:
    """What to put back after a failed update (None: remove the key), sparing keys changed since by someone else
    (`canary abort` while this update waited for the stack's lock)."""
    return {key: before.get(f"{project}:{key}") for key, ours in changes.items() if now.get(f"{project}:{key}") == ours}


def _diagnostics(output: str, limit: int = 4000) -> str:
    """The engine's diagnostics of a failed update (the part that says why), else the end of its output."""
    start = output.find("Diagnostics:")
    return output[start : start + limit] if start >= 0 else output[-limit:]


class PulumiStack:
    def __init__(
        self,
        stack_name: str,
        work_dir: Path,
        policy_packs: list[str] | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        self.name = stack_name
        self._policy_packs = policy_packs or None
        self.project = yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"]
        self._stack = auto.select_stack(stack_name, work_dir=str(work_dir))
        self._on_output = on_output

    def _config(self) -> dict[str, str]:
        return {key: item.value for key, item in self._stack.get_all_config().items()}

    def settings(self, changes: Mapping[str, str] | None = None) -> Settings:
        """The validated settings, with `changes` applied; raises SettingsError naming every bad value."""
        return self._validated(self._config(), changes or {})

    def _validated(self, config: Mapping[str, str], changes: Mapping[str, str]) -> Settings:
        values = {**config, **{f"{self.project}:{key}": value for key, value in changes.items()}}
        return load_settings(StackConfig(self.project, values))

    def apply(self, changes: Mapping[str, str], message: str) -> float:
        """Validate, set the config and run `pulumi up`; the seconds it took. On failure the config is restored."""
        before = self._config()
        self._validated(before, changes)
        start = time.monotonic()
        self._stack.set_all_config({key: auto.ConfigValue(value) for key, value in changes.items()})
        try:
            self._stack.up(
                message=message,
                color="never",
                policy_packs=self._policy_packs,
                on_output=self._on_output,
                suppress_progress=True,
            )
        except auto.errors.CommandError as error:
            self._restore(before, changes)
            raise ApplyError(f"pulumi up failed; stack config restored:\n{_diagnostics(str(error))}") from None
        return time.monotonic() - start

    def _restore(self, before: Mapping[str, str], changes: Mapping[str, str]) -> None:
        for key, previous in restorations(self.project, before, changes, self._config()).items():
            if previous is None:
                self._stack.remove_config(key)
            else:
                self._stack.set_config(key, auto.ConfigValue(previous))

    def deployed_split(self) -> dict[str, int] | None:
        output: Any = self._stack.outputs().get("traffic_split")
        return {str(k): int(v) for k, v in output.value.items()} if output is not None else None

    def read_record(self) -> RunRecord | None:
        tags = self._stack.workspace.list_tags(self.name)
        return RunRecord.decode(tags[TAG]) if TAG in tags else None

    def write_record(self, record: RunRecord) -> None:
        self._stack.workspace.set_tag(self.name, TAG, record.encode())

    def clear_record(self) -> None:
        if TAG in self._stack.workspace.list_tags(self.name):
            self._stack.workspace.remove_tag(self.name, TAG)
