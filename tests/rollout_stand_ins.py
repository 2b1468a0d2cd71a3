"""Stand-ins for what `canary` drives and the unit tier cannot run: the Automation API's `Stack` and the `pulumi` CLI.

`AutomationStackStandIn` holds one stack's config, state, update history and tags in memory.
`engine_stand_in` writes a `pulumi` script that logs its arguments, prints what the engine
would and exits with its code. `DeployingStackStandIn` joins the two: after each `pulumi up`
the script reports as successful, its state becomes what the real program (run under mocks)
deploys with the stack's config, and its history gets an entry with the update's message,
as the engine's would. Used by tests/test_rollout_stack.py and tests/test_rollout_cli.py.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from tests.test_rollout import state_of

PROJECT = "canary"
PULUMI_VERSION = "v3.274.1"


@dataclass
class Summary:
    """The two fields of an UpdateSummary the tool reads."""

    version: int | None
    message: str


@dataclass
class Command:
    command: str


@dataclass
class WorkspaceStandIn:
    pulumi_command: Command
    work_dir: str
    env_vars: dict[str, str] = field(default_factory=dict)
    pulumi_home: str | None = None
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def list_tags(self, stack_name: str) -> dict[str, str]:
        return dict(self.tags.get(stack_name, {}))

    def set_tag(self, stack_name: str, key: str, value: str) -> None:
        self.tags.setdefault(stack_name, {})[key] = value

    def remove_tag(self, stack_name: str, key: str) -> None:
        del self.tags[stack_name][key]


class AutomationStackStandIn:
    """The Automation API's Stack over one stack: config keys as `project:key`, the state's resources."""

    def __init__(self, workspace: WorkspaceStandIn, config: Mapping[str, str], resources: list[dict[str, Any]]) -> None:
        self.workspace = workspace
        self.config = {f"{PROJECT}:{key}": value for key, value in config.items()}
        self.resources = resources
        self.pending_operations: list[dict[str, Any]] = []
        self.updates: list[Summary] = []  # newest first, as `pulumi stack history` lists them
        self.history_pages: list[int | None] = []  # the page size of each history read
        self.config_calls: list[str] = []

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return {key: auto.ConfigValue(value) for key, value in self.config.items()}

    def set_all_config(self, values: Mapping[str, auto.ConfigValue]) -> None:
        self.config_calls.append("set_all " + ",".join(values))
        self.config.update({f"{PROJECT}:{key}": value.value for key, value in values.items()})

    def set_config(self, key: str, value: auto.ConfigValue) -> None:
        self.config_calls.append(f"set {key}")
        self.config[f"{PROJECT}:{key}"] = value.value

    def remove_config(self, key: str) -> None:
        self.config_calls.append(f"remove {key}")
        del self.config[f"{PROJECT}:{key}"]

    def export_stack(self) -> auto.Deployment:
        state: dict[str, Any] = {"resources": self.resources}
        if self.pending_operations:
            state["pending_operations"] = self.pending_operations
        return auto.Deployment(version=3, deployment=state)

    def history(self, page_size: int | None = None, show_secrets: bool = True) -> list[Summary]:
        assert not show_secrets, "the tool never needs secrets from the history"
        self.history_pages.append(page_size)
        return self.updates[:page_size]


@cache
def _deployed(config: frozenset[tuple[str, str]]) -> list[dict[str, Any]]:
    """state_of, once per config: a run deploys the same few configs again and again (read only)."""
    return state_of(dict(config))


def deployed_state(config: Mapping[str, str]) -> list[dict[str, Any]]:
    """The state's resources after `pulumi up` with this config (keys without the project prefix)."""
    return _deployed(frozenset(config.items()))


class DeployingStackStandIn(AutomationStackStandIn):
    """A stack whose state and history follow the engine stand-in's successful updates.

    Every call first takes in the updates the engine reported since the last call, each deployed with the
    config as it was then: nothing changes the config between an update and the next call but the tool's
    own calls, which all sync first."""

    def __init__(self, workspace: WorkspaceStandIn, config: Mapping[str, str], engine: Path) -> None:
        super().__init__(workspace, config, deployed_state(config))
        self.updates = [Summary(1, "")]  # the stack was deployed once, by a plain `pulumi up`
        self._engine_updates = engine / "updates.txt"
        self._seen = 0
        self._deployed_config: dict[str, str] | None = None  # the last update's, until its state is read

    def deploy(self, message: str) -> None:
        """Someone's `pulumi up` with the current config (after the tool's updates so far)."""
        self._sync()
        self._deploy(message)

    def _deploy(self, message: str) -> None:
        """The state is made when it is read: the program runs under mocks in the main thread only, and an
        update by someone else may come from another (a Prometheus stand-in's answer)."""
        values = {key.split(":", 1)[1]: value for key, value in self.config.items() if key.startswith(f"{PROJECT}:")}
        self._deployed_config = values
        self.updates.insert(0, Summary((self.updates[0].version or 0) + 1 if self.updates else 1, message))

    def _sync(self) -> None:
        done = self._engine_updates.read_text().splitlines() if self._engine_updates.exists() else []
        for message in done[self._seen :]:
            self._deploy(message)
        self._seen = len(done)

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        self._sync()
        return super().get_all_config()

    def set_all_config(self, values: Mapping[str, auto.ConfigValue]) -> None:
        self._sync()
        super().set_all_config(values)

    def set_config(self, key: str, value: auto.ConfigValue) -> None:
        self._sync()
        super().set_config(key, value)

    def remove_config(self, key: str) -> None:
        self._sync()
        super().remove_config(key)

    def export_stack(self) -> auto.Deployment:
        self._sync()
        if self._deployed_config is not None:
            self.resources = deployed_state(self._deployed_config)
            self._deployed_config = None
        return super().export_stack()

    def history(self, page_size: int | None = None, show_secrets: bool = True) -> list[Summary]:
        self._sync()
        return super().history(page_size, show_secrets)

    @property
    def messages(self) -> list[str]:
        """The update history's messages, oldest first."""
        self._sync()
        return [update.message for update in reversed(self.updates)]


def engine_stand_in(
    bin_dir: Path, output: str, exit_code: int, interrupts: int = 0, selected: str | None = None
) -> Path:
    """A `pulumi` that logs its arguments, prints `output` and exits with `exit_code`. With `interrupts`, it
    sends that many Ctrl-Cs to its parent (the tool) while it runs, one per SIGINT it gets (the first after a
    pause), logging each SIGINT, and exits 255 after the last, as a cancelled engine does.

    A successful `up` also appends its `--message` to updates.txt (for DeployingStackStandIn). It answers
    `pulumi version`, and `pulumi stack ls --json` with stacks dev and prod, `selected` the current one; outside
    a project (no Pulumi.yaml in its working directory) it fails as pulumi does. Each run that leads a session
    of its own (a Ctrl-C at the terminal does not reach it) appends "own" to session.txt."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "pulumi"
    log = bin_dir / "calls.txt"
    stacks = json.dumps([{"name": name, "current": name == selected} for name in ("dev", "prod")])
    lines = [
        "#!/bin/sh",
        f"echo \"$*\" >> '{log}'",
        f'if [ "$1" = version ]; then echo {PULUMI_VERSION}; exit 0; fi',
        "if [ ! -f Pulumi.yaml ]; then echo 'error: no Pulumi.yaml project file found' >&2; exit 255; fi",
        f"case \"$*\" in *'stack ls --json'*) printf '%s' '{stacks}'; exit 0;; esac",  # after --non-interactive
        f"printf '%s' '{output}'",
        # Whether it leads a session of its own (field 6 of /proc/PID/stat is the session id).
        f"[ \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$ ] && echo own >> '{bin_dir / 'session.txt'}'",
    ]
    if interrupts:
        lines += [
            "got=0",
            f"on_int() {{ got=$((got + 1)); echo SIGINT >> '{log}'; "
            f"if [ $got -ge {interrupts} ]; then exit 255; fi; kill -INT $PPID; }}",
            "trap on_int INT",
            "sleep 0.3; kill -INT $PPID",
            # Bounded: a tool that never forwards the Ctrl-C (a bug, or a mutant) must not leave it running.
            "n=0; while [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done",
            f"echo 'no SIGINT within 10 s' >> '{log}'; exit 1",
        ]
    elif exit_code == 0:
        lines += [
            'if [ "$1" = up ]; then',
            '  while [ $# -gt 0 ]; do if [ "$1" = --message ]; then message="$2"; fi; shift; done',
            f"  echo \"$message\" >> '{bin_dir / 'updates.txt'}'",
            "fi",
        ]
    lines.append(f"exit {exit_code}")
    script.write_text("\n".join(lines) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log
