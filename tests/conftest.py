import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import mutation


def pytest_configure(config: pytest.Config) -> None:
    # The harness checks the Pulumi SDK's internals as it loads: an SDK upgrade that breaks
    # its adapter stops the session with one message, not an import error per test module.
    try:
        importlib.import_module("tests.harness")
    except RuntimeError as error:  # harness.SdkAdapterError
        raise pytest.UsageError(str(error)) from None
    mutation.configure(config)  # scripts/mutation's runs only


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A parameter's id with "::" splits the node id, and one with a backslash (pytest's escape of
    # a non-ASCII or control character) does not match itself when passed back: `pytest <id>`
    # cannot select such a test, nor can mutmut, which runs each mutant's tests by id.
    parameters = {item.nodeid: item.nodeid.partition("[")[2] for item in items}
    unselectable = [nodeid for nodeid, parameter in parameters.items() if "::" in parameter or "\\" in parameter]
    if unselectable:
        raise pytest.UsageError(f"test ids that `pytest <id>` cannot select (give them plain ids): {unselectable}")
    mutation.select(config, items)
