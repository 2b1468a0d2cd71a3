"""scripts/mutation's narrowing of a mutant's tests to those that execute its change."""

import importlib.util
import json
import textwrap
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import cast

import pytest

from tests import mutation


def _script() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "scripts" / "mutation_reach.py"
    spec = importlib.util.spec_from_file_location("mutation_reach", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A mutated module as mutmut writes it: the original of each function and one copy per mutant.
MUTATED = textwrap.dedent(
    """\
    def x_weight__mutmut_orig(raw, default=10):
        value = int(raw)
        if value < 0:
            raise ValueError(
                "negative",
            )
        return value


    def x_weight__mutmut_1(raw, default=10):
        value = int(raw)
        if value <= 0:
            raise ValueError(
                "negative",
            )
        return value


    def x_weight__mutmut_2(raw, default=10):
        value = int(raw)
        if value < 0:
            raise ValueError(
                "XXnegativeXX",
            )
        return value


    def x_weight__mutmut_3(raw, default=11):
        value = int(raw)
        if value < 0:
            raise ValueError(
                "negative",
            )
        return value


    class Reader:
        def xǁReaderǁtext__mutmut_orig(self, key):
            return key.strip()

        def xǁReaderǁtext__mutmut_1(self, key):
            return None
    """
)


def test_a_change_is_placed_in_the_originals_innermost_statement() -> None:
    changed = _script().changed_statements(MUTATED)

    assert changed == {
        "x_weight__mutmut_1": (3, 6),  # the `if` and its block: a test that reaches the block reached the test
        "x_weight__mutmut_2": (4, 6),  # the `raise`, over its three lines
        "xǁReaderǁtext__mutmut_1": (39, 39),  # a method
    }  # mutmut_3 changes a default, evaluated at import, outside every test: not placed


def _config(args: list[str], root: Path = Path("/nonexistent")) -> pytest.Config:
    """What configure reads of pytest's config: the test ids mutmut passed, a stash, the plugins."""
    plugins = pytest.PytestPluginManager()
    return cast(pytest.Config, SimpleNamespace(args=args, stash=pytest.Stash(), rootpath=root, pluginmanager=plugins))


def test_a_mutant_runs_only_the_tests_that_reach_its_change(monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = "settings.load.x__image__mutmut_7"
    monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
    reached = {mutant: frozenset({"tests/test_settings.py::test_image", "tests/test_workloads.py::test_pods"})}
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: reached)
    config = _config(
        [
            "tests/test_workloads.py::test_pods",
            "tests/test_workloads.py::test_service",
            "tests/test_settings.py::test_image",
            "tests/test_mesh.py::test_gateway",
        ]
    )

    mutation.configure(config)

    assert config.args == ["tests/test_workloads.py", "tests/test_settings.py"]  # collected by file


def test_a_mutant_no_test_reaches_ends_the_run_as_no_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = "settings.load.x__image__mutmut_7"
    monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {mutant: frozenset()})

    with pytest.raises(pytest.exit.Exception) as ended:
        mutation.configure(_config(["tests/test_settings.py::test_image"]))

    assert ended.value.returncode == pytest.ExitCode.NO_TESTS_COLLECTED  # mutmut: "no tests", a survivor


def test_a_mutant_placed_nowhere_runs_all_of_mutmuts_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUTANT_UNDER_TEST", "settings.load.x__image__mutmut_7")
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {})
    config = _config(["tests/test_settings.py::test_image", "tests/test_mesh.py::test_gateway"])

    mutation.configure(config)

    assert config.args == ["tests/test_settings.py", "tests/test_mesh.py"]


@pytest.mark.parametrize(
    ("mutant_under_test", "passed", "args", "skipped"),
    [
        ("", "1", ["tests/test_settings.py::test_image"], True),  # mutmut's clean run, after the recording passed
        ("", None, ["tests/test_settings.py::test_image"], False),  # no recording run: mutmut's check stands
        ("", "1", ["tests/test_settings.py"], False),  # the fork server's warm-up: files, collect only
        ("fail", "1", ["tests/test_settings.py"], False),  # mutmut's forced-fail run
        ("stats", "1", ["tests/test_settings.py::test_image"], False),  # mutmut's mapping run
    ],
    ids=["clean-run", "no-recording", "warm-up", "forced-fail", "mapping-run"],
)
def test_only_mutmuts_clean_run_after_a_passed_recording_is_skipped(
    monkeypatch: pytest.MonkeyPatch, mutant_under_test: str, passed: str | None, args: list[str], skipped: bool
) -> None:
    monkeypatch.setenv("MUTANT_UNDER_TEST", mutant_under_test)
    if passed is None:
        monkeypatch.delenv(mutation.TESTS_PASSED, raising=False)
    else:
        monkeypatch.setenv(mutation.TESTS_PASSED, passed)
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {})
    monkeypatch.setattr(mutation, "preload", lambda root: None)
    config = _config(list(args))

    try:
        mutation.configure(config)
        ended = None
    except pytest.exit.Exception as exit_:  # caught either way: an uncaught one would end this session
        ended = exit_.returncode

    assert ended == (pytest.ExitCode.OK if skipped else None)
    assert config.args == args


def test_each_mutants_run_is_timed_into_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {})
    for mutant, exit_status in [("settings.load.x__image__mutmut_7", 1), ("mesh.charts.x_base__mutmut_2", 0)]:
        monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
        config = _config(["tests/test_settings.py::test_image", "tests/test_mesh.py::test_gateway"], root=tmp_path)
        mutation.configure(config)
        hooks = config.pluginmanager.hook  # called the way pytest calls them: their arguments checked against its specs
        for test in ("tests/test_settings.py::test_image", "tests/test_mesh.py::test_gateway")[: 2 - exit_status]:
            hooks.pytest_runtest_logfinish(nodeid=test, location=(test, 1, test))
        hooks.pytest_sessionfinish(session=None, exitstatus=exit_status)

    lines = [json.loads(line) for line in (tmp_path / mutation.TIMES).read_text().splitlines()]
    assert [(line["mutant"], line["tests"], line["exit"]) for line in lines] == [
        ("settings.load.x__image__mutmut_7", 1, 1),
        ("mesh.charts.x_base__mutmut_2", 2, 0),
    ]
    assert all(0 <= line["seconds"] < 60 for line in lines)


def test_only_a_mutants_run_is_timed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {})
    for mutant_under_test in ("", "stats", "fail"):
        monkeypatch.setenv("MUTANT_UNDER_TEST", mutant_under_test)
        config = _config(["tests/test_settings.py::test_image"], root=tmp_path)
        mutation.configure(config)
        assert config.pluginmanager.get_plugin("mutation-timer") is None
