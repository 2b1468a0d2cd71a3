"""The README and docs/: the commands they show are real, the files and outputs they name exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from rollout.cli import build_parser
from tests.harness import PROJECT_DIR, run_program

README = PROJECT_DIR / "README.md"
DOCS = sorted((PROJECT_DIR / "docs").glob("*.md"))
PAGES = [README, *DOCS]
TRY_LOCAL_COMMANDS = {(), ("up",), ("down",), ("env",), ("demo",), ("demo", "--failing"), ("--help",)}


def code_lines(page: Path) -> list[str]:
    """Every line of the page's code blocks, and of its inline `code`, without comments."""
    text = page.read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL))
    return [line.split("  #")[0].strip() for line in lines]


def commands(program: str) -> list[tuple[Path, list[str]]]:
    """Each use of `program` in the docs, as its arguments (`&&` chains and `$(...)` are followed)."""
    found = []
    for page in PAGES:
        for line in code_lines(page):
            for part in re.split(r"&&|;|\$\(|\)|\|", line):
                part = part.strip().lstrip('"')  # eval "$(...)"
                words = (part.rstrip('"') if part.count('"') % 2 else part).split(" ", 1)
                if words[0] in (program, f"venv/bin/{program}"):
                    found.append((page, shlex.split(words[1]) if len(words) > 1 else []))
    return found


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert 120 <= len(text.splitlines()) <= 200
    headings = re.findall(r"^## (.*)$", text, re.MULTILINE)
    assert headings[:3] == ["What gets deployed", "Three commands", "The canary walkthrough"]
    three = text.split("## Three commands")[1].split("```")[1].splitlines()[1:]
    assert [line.split()[0] for line in three] == ["scripts/try-local", "scripts/deploy", "scripts/test"]


def test_every_page_of_docs_is_linked_from_the_readme_and_every_link_resolves() -> None:
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", README.read_text()))
    assert linked == {f"docs/{page.name}" for page in DOCS}
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_every_script_the_docs_name_exists() -> None:
    for page in PAGES:
        for script in set(re.findall(r"\b((?:scripts|benchmarks|\.ci)/[\w./-]+)", page.read_text())):
            assert (PROJECT_DIR / script.rstrip(".")).exists(), f"{page.name}: {script}"


def test_every_canary_command_in_the_docs_parses() -> None:
    # A bare `canary` names the command; `canary a1b2c3d4: step 2/4` quotes an update's message.
    shown = [(page, argv) for page, argv in commands("canary") if argv and not argv[0].endswith(":")]
    assert len(shown) >= 10
    for page, argv in shown:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exit_:  # `--help` exits 0
            if exit_.code != 0:
                pytest.fail(f"{page.name}: canary {shlex.join(argv)} is not a valid command")


def test_every_try_local_command_in_the_docs_is_one_it_accepts() -> None:
    shown = commands("scripts/try-local")
    assert len(shown) >= 5
    for page, argv in shown:
        assert tuple(argv) in TRY_LOCAL_COMMANDS, f"{page.name}: scripts/try-local {shlex.join(argv)}"


def test_every_stack_output_the_docs_name_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    exported: dict[str, Any] = {}
    monkeypatch.setattr("pulumi.export", lambda name, value: exported.__setitem__(name, value))
    run_program({})
    named = {name for page in PAGES for name in re.findall(r"pulumi stack output (\w+)", page.read_text())}
    assert named >= {"traffic_split", "curl_loop"}
    assert named <= exported.keys()
