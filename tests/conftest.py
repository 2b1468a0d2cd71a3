import importlib
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
