"""The generated parts of docs/ (scripts/generated_docs.py): the settings table is Pulumi.yaml's, the `canary`
reference is the parser's. Kept apart from test_docs.py so mutation testing can run them (docs/mutation.md)."""

from __future__ import annotations

import re
import runpy
from typing import Any

import pytest

from settings import declared_settings
from tests.harness import PROJECT_DIR

GENERATED = runpy.run_path(str(PROJECT_DIR / "scripts/generated_docs.py"))


@pytest.mark.parametrize("part", GENERATED["PARTS"], ids=lambda part: part.doc.name)
def test_the_generated_parts_of_the_docs_are_up_to_date(part: Any) -> None:
    """The settings table is Pulumi.yaml's; the `canary` reference is what each command's --help prints."""
    doc = part.doc.read_text()
    assert part.apply(doc) == doc, "run: venv/bin/python scripts/generated_docs.py --write"


def test_the_generated_table_has_every_setting_its_type_default_and_description() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| `([^`]*)` \| (.*) \|$", GENERATED["settings_table"](), re.MULTILINE)
    assert [row[0] for row in rows] == list(declared_settings())
    for key, type_, default, description in rows:
        declaration = declared_settings()[key]
        assert (type_, default, description) == (
            declaration["type"],
            GENERATED["shown"](declaration["default"]),
            declaration["description"],
        )
