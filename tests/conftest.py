import importlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pytest_configure(config: pytest.Config) -> None:
    # The harness checks the Pulumi SDK's internals as it loads: an SDK upgrade that breaks
    # its adapter stops the session with one message, not an import error per test module.
    try:
        importlib.import_module("tests.harness")
    except RuntimeError as error:  # harness.SdkAdapterError
        raise pytest.UsageError(str(error)) from None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A parameter's id with "::" splits the node id, and one with a backslash (pytest's escape of
    # a non-ASCII or control character) does not match itself when passed back: `pytest <id>`
    # cannot select such a test, nor can mutmut, which runs each mutant's tests by id.
    parameters = {item.nodeid: item.nodeid.partition("[")[2] for item in items}
    unselectable = [nodeid for nodeid, parameter in parameters.items() if "::" in parameter or "\\" in parameter]
    if unselectable:
        raise pytest.UsageError(f"test ids that `pytest <id>` cannot select (give them plain ids): {unselectable}")
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" in mutant:
        items[:] = in_mutation_order(items, mutant)


def in_mutation_order(items: list[pytest.Item], mutant: str) -> list[pytest.Item]:
    """A mutant's tests (scripts/mutation), the layer's own first and one test file after another.

    mutmut passes the tests that cover a mutant in no particular order and stops at the first
    failure. The tests mirror the layers, so the mutated module's own test file (rollout.stack:
    tests/test_rollout_stack.py), then its layer's (tests/test_rollout.py, then
    tests/test_rollout_*.py) are the likeliest to kill it; and running each file's tests
    together evaluates its module-scoped program once.
    """
    module = mutant.split(".x", 1)[0]  # "rollout.stack.xǁPulumiStackǁ_up__mutmut_3" -> "rollout.stack"
    own = f"tests/test_{module.replace('.', '_')}.py"
    layer = f"tests/test_{module.split('.')[0]}"
    files = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))

    def rank(item: pytest.Item) -> tuple[bool, bool, bool, int]:
        file = item.nodeid.split("::")[0]
        return file != own, file != f"{layer}.py", not file.startswith(layer), files.index(file)

    return sorted(items, key=rank)
