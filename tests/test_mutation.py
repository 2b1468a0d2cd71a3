"""scripts/mutation's narrowing of a mutant's tests to those that execute its change."""

import importlib.util
import json
import textwrap
from collections import Counter
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Literal, cast

import pytest

from tests import mutation


def _script(name: str = "mutation_reach") -> ModuleType:
    """One of scripts/'s Python scripts, loaded as a module."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
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
            outcome: Literal["failed", "passed"] = "failed" if exit_status else "passed"
            report = pytest.TestReport(test, (test, 1, test), {}, outcome, None, "call")
            hooks.pytest_runtest_logreport(report=report)
            hooks.pytest_runtest_logfinish(nodeid=test, location=(test, 1, test))
        hooks.pytest_sessionfinish(session=None, exitstatus=exit_status)

    lines = [json.loads(line) for line in (tmp_path / mutation.TIMES).read_text().splitlines()]
    assert [(line["mutant"], line["tests"], line["exit"], line["killed_by"]) for line in lines] == [
        ("settings.load.x__image__mutmut_7", 1, 1, "tests/test_settings.py::test_image"),
        ("mesh.charts.x_base__mutmut_2", 2, 0, ""),
    ]
    assert all(0 <= line["seconds"] < 60 for line in lines)


def test_only_a_mutants_run_is_timed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {})
    for mutant_under_test in ("", "stats", "fail"):
        monkeypatch.setenv("MUTANT_UNDER_TEST", mutant_under_test)
        config = _config(["tests/test_settings.py::test_image"], root=tmp_path)
        mutation.configure(config)
        assert config.pluginmanager.get_plugin("mutation-timer") is None


def _score_script(root: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/mutation_score.py reading `root`'s docs/mutation.md and mutants/."""
    module = _script("mutation_score")
    monkeypatch.setattr(module, "ROOT", root)
    return module


EQUIVALENTS_DOC = """\
### Survivors judged equivalent

- `rollout.checks.x_redacted__mutmut_10` (`aaaa11112222`): `rsplit("@", 1)` becomes `rsplit("@")`.
- `rollout.checks.x_redacted__mutmut_13` (`aaaa11112222`): the same with a limit of 2.
- `rollout.runner.xǁRolloutǁrun__mutmut_25` (`bbbb33334444`): judged before `run` changed.
- `rollout.checks.x_parse_check__mutmut_35`: listed without a hash.
"""


def _mutants(root: Path, codes: dict[str, dict[str, int | None]], hashes: dict[str, dict[str, str]]) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "mutation.md").write_text(EQUIVALENTS_DOC)
    for module, exit_codes in codes.items():
        meta = root / "mutants" / (module.replace(".", "/") + ".py.meta")
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": exit_codes, "hash_by_function_name": hashes[module]}))


def test_mutants_judged_equivalent_on_unchanged_code_are_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    score = _score_script(tmp_path, monkeypatch)
    _mutants(
        tmp_path,
        {
            "rollout.checks": {
                "rollout.checks.x_redacted__mutmut_9": None,
                "rollout.checks.x_redacted__mutmut_10": None,
                "rollout.checks.x_redacted__mutmut_13": None,
                "rollout.checks.x_parse_check__mutmut_35": None,
            },
            "rollout.runner": {"rollout.runner.xǁRolloutǁrun__mutmut_25": None},
        },
        {
            "rollout.checks": {"x_redacted": "aaaa11112222", "x_parse_check": "cccc55556666"},
            "rollout.runner": {"xǁRolloutǁrun": "dddd77778888"},  # changed since it was judged
        },
    )

    assert score.equivalent_mutants()["rollout.checks.x_redacted__mutmut_13"] == "aaaa11112222"
    assert score.to_run(["rollout"], 1) == [
        "rollout.checks.x_parse_check__mutmut_35",  # no hash: no proof it is the same change
        "rollout.checks.x_redacted__mutmut_9",
        "rollout.runner.xǁRolloutǁrun__mutmut_25",  # its function changed: judged again
    ]
    assert len(score.to_run(["rollout"], 1, run_equivalents=True)) == 5


def test_a_skipped_equivalent_counts_as_equivalent_and_a_stale_one_as_a_survivor_to_judge_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    score = _score_script(tmp_path, monkeypatch)
    _mutants(
        tmp_path,
        {
            "rollout.checks": {
                "rollout.checks.x_redacted__mutmut_9": 1,
                "rollout.checks.x_redacted__mutmut_10": None,  # skipped: judged equivalent on this code
                "rollout.checks.x_redacted__mutmut_13": 1,  # killed after all
            },
            "rollout.runner": {"rollout.runner.xǁRolloutǁrun__mutmut_25": 0},
        },
        {"rollout.checks": {"x_redacted": "aaaa11112222"}, "rollout.runner": {"xǁRolloutǁrun": "dddd77778888"}},
    )

    assert score.main(["rollout"], 1) == 0
    out = capsys.readouterr().out
    assert "rollout.checks                  3       2          1         0        0  100.0%" in out
    assert "rollout.runner                  1       0          0         1        0    0.0%" in out
    assert "rollout.runner.xǁRolloutǁrun__mutmut_25 (bbbb33334444, now dddd77778888)" in out
    assert "killed, yet listed as equivalent in docs/mutation.md (take them off the list):\n" in out
    assert out.endswith("  rollout.checks.x_redacted__mutmut_13\n")
    assert "survivors (`venv/bin/mutmut show NAME`" not in out  # the stale one is listed once, to judge again


def test_a_mutants_test_files_run_whole_cheap_ones_first_then_its_layers() -> None:
    tests = [
        "tests/test_rollout_cli.py::test_run",  # its own file, costly
        "tests/test_generated_docs.py::test_reference",  # cheap
        "tests/test_rollout_cli.py::test_abort",
        "tests/test_workloads.py::test_pods",  # costly, of another layer
        "tests/test_rollout_stack.py::test_up",  # costly, of the layer
        "tests/test_rollout.py::test_status",  # the layer's own file, costly
        "tests/test_rollout_errors.py::test_exit",  # cheap
    ]
    items = [cast(pytest.Item, SimpleNamespace(nodeid=test)) for test in tests]
    durations = dict(zip(tests, [2.0, 0.1, 1.0, 0.6, 0.7, 5.0, 0.3], strict=True))

    ordered = [
        item.nodeid for item in mutation.in_mutation_order(items, "rollout.cli.x_build_parser__mutmut_7", durations)
    ]

    assert ordered == [
        "tests/test_generated_docs.py::test_reference",  # cheap files, cheapest first
        "tests/test_rollout_errors.py::test_exit",
        "tests/test_rollout_cli.py::test_run",  # then its own file, a file's tests together, in their order
        "tests/test_rollout_cli.py::test_abort",
        "tests/test_rollout.py::test_status",  # the layer's
        "tests/test_rollout_stack.py::test_up",
        "tests/test_workloads.py::test_pods",  # the rest
    ]


def test_the_durations_are_those_of_mutmuts_mapping_run(tmp_path: Path) -> None:
    (tmp_path / mutation.STATS).write_text(json.dumps({"duration_by_test": {"tests/test_a.py::test_b": 0.25}}))
    assert mutation.test_durations(tmp_path) == {"tests/test_a.py::test_b": 0.25}
    assert mutation.test_durations(tmp_path / "elsewhere") == {}


@pytest.mark.parametrize(
    ("mutant_under_test", "recorded"),
    [("stats", True), ("", False), ("fail", False), ("settings.load.x__image__mutmut_7", False)],
    ids=["mapping-run", "clean-run", "forced-fail", "a-mutant"],
)
def test_lines_are_recorded_only_in_mutmuts_mapping_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mutant_under_test: str, recorded: bool
) -> None:
    monkeypatch.setenv("MUTATION_RECORD_LINES", "1")  # scripts/mutation's first step: mutmut's every run in it
    monkeypatch.setenv("MUTANT_UNDER_TEST", mutant_under_test)
    monkeypatch.setattr(mutation, "reaching_tests", lambda root: {})
    monkeypatch.delenv(mutation.TESTS_PASSED, raising=False)
    monkeypatch.setattr(mutation, "LineRecorder", lambda root: SimpleNamespace())  # coverage.py comes with mutmut
    config = _config(["tests/test_settings.py::test_image"], root=tmp_path)

    mutation.configure(config)

    assert (config.pluginmanager.get_plugin("mutation-line-recorder") is not None) == recorded


def _timed(root: Path, name: str, lines: list[tuple[str, str]]) -> None:
    (root / name).write_text(
        "".join(json.dumps({"mutant": m, "seconds": 1.0, "tests": 3, "killed_by": k}) + "\n" for m, k in lines)
    )


def test_the_tests_that_killed_a_functions_other_mutants_are_counted_from_this_run_and_the_last(
    tmp_path: Path,
) -> None:
    function = "rollout.stack.xǁPulumiStackǁ_up"
    _timed(
        tmp_path,
        mutation.TIMES,
        [
            (f"{function}__mutmut_1", "tests/test_rollout_stack.py::test_up"),
            (f"{function}__mutmut_2", ""),  # survived
            (f"{function}__mutmut_3", "tests/test_rollout.py::test_status"),
            (f"{function}x__mutmut_1", "tests/test_other.py::test_a"),  # another function, a longer name
            ("rollout.stack.x_down__mutmut_1", "tests/test_other.py::test_b"),
        ],
    )
    _timed(tmp_path, mutation.LAST_TIMES, [(f"{function}__mutmut_4", "tests/test_rollout_stack.py::test_up")])

    assert mutation.sibling_killers(tmp_path, f"{function}__mutmut_9") == {
        "tests/test_rollout_stack.py::test_up": 2,
        "tests/test_rollout.py::test_status": 1,
    }
    assert mutation.sibling_killers(tmp_path / "elsewhere", f"{function}__mutmut_9") == {}


def test_a_functions_killers_run_first_the_others_in_their_order() -> None:
    tests = ["tests/test_a.py::test_1", "tests/test_a.py::test_2", "tests/test_b.py::test_3", "tests/test_c.py::test_4"]
    items = [cast(pytest.Item, SimpleNamespace(nodeid=test)) for test in tests]
    killers = Counter({"tests/test_c.py::test_4": 1, "tests/test_b.py::test_3": 5, "tests/test_gone.py::test_5": 9})

    assert [item.nodeid for item in mutation.killers_first(items, killers)] == [
        "tests/test_b.py::test_3",  # killed most of the function's other mutants
        "tests/test_c.py::test_4",
        "tests/test_a.py::test_1",
        "tests/test_a.py::test_2",
    ]
