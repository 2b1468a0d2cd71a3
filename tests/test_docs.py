"""docs/settings.md: the settings table lists every declared setting with its real default."""

from __future__ import annotations

import json
import re

from settings import declared_settings
from tests.harness import PROJECT_DIR


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (PROJECT_DIR / "docs" / "settings.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| \w+ \| `([^`]*)` \|", readme, re.MULTILINE))
    assert rows.keys() == declared_settings().keys()
    for key, declaration in declared_settings().items():
        default = declaration["default"]
        shown = json.dumps(default) if isinstance(default, (bool, list)) or default == "" else str(default)
        assert rows[key] == shown, key
