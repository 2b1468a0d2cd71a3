"""How the tests run under scripts/mutation (docs/mutation.md), wired in by tests/conftest.py.

mutmut maps each function to the tests during which it ran (its "stats" run) and runs a mutant
against all of them. Most of the program runs in every test that evaluates it, so a mutant of
`settings/load.py` would run ~700 tests even when its change sits on a line only a bad setting
reaches. Here:

- during that run (scripts/mutation sets `MUTATION_RECORD_LINES=1`), `LineRecorder` records
  which lines each test executes (coverage.py, one context per test) into
  ./mutants/mutation-lines.coverage;
- `scripts/mutation_reach.py` turns that into the tests that reach each mutant's changed statement;
- running a mutant, `select` keeps only those of mutmut's tests (none reach it: no test can kill
  it, the run ends at once as "no tests"), collected file by file rather than id by id, and
  `in_mutation_order` runs them a file at a time, cheap files first, then the likeliest killers;
  `killers_first` puts before them the tests that killed other mutants of the same function.

A mutant's change can only alter what a test sees once the test executes the changed statement:
the mutant and the original function are the same code up to it.
"""

import contextlib
import importlib
import json
import os
import sys
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

LINES = "mutation-lines.coverage"  # the mapping run's per-test line coverage, in ./mutants
REACHING = "mutation-reaching-tests.json"  # scripts/mutation_reach.py's answer, in ./mutants
MODULES = "mutation-modules.txt"  # every module loaded by the end of the mapping run, in ./mutants
CHEAP_FILE_SECONDS = 0.5  # a test file whose reaching tests took at most this in the mapping run runs first
STATS = "mutmut-stats.json"  # mutmut's mapping run: the tests of each function, each test's time, in ./mutants
TIMES = "mutation-times.jsonl"  # each mutant's run: seconds, tests run, pytest's exit status, in ./mutants
LAST_TIMES = "mutation-times-last.jsonl"  # the previous run's TIMES, kept by scripts/mutation, in ./mutants
# Set by scripts/mutation once mutmut's mapping run passed: the same tests on the unmutated code.
TESTS_PASSED = "MUTATION_TESTS_PASSED"
_WANTED = pytest.StashKey[set[str]]()


def mutant_under_test() -> str | None:
    """The mutant mutmut is running the tests of ("settings.load.x__image__mutmut_7"), if any."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    return mutant if "__mutmut_" in mutant else None


def is_line_recording() -> bool:
    """mutmut's mapping run in scripts/mutation's first step, which also records the lines each test executes."""
    return os.environ.get("MUTATION_RECORD_LINES") == "1" and os.environ.get("MUTANT_UNDER_TEST") == "stats"


class LineRecorder:
    """A pytest plugin: the lines each test executes, one coverage context per test id."""

    def __init__(self, root: Path) -> None:
        # coverage.py comes with mutmut (scripts/mutation-requirements.txt), not with the unit tier.
        coverage: Any = importlib.import_module("coverage")
        self.root = root
        self.coverage = coverage.Coverage(
            data_file=str(root / LINES), source=[str(root)], omit=["tests/*", "scripts/*"], config_file=False
        )

    def pytest_sessionstart(self) -> None:
        self.coverage.start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.coverage.switch_context(nodeid)

    def pytest_runtest_logfinish(self) -> None:
        self.coverage.switch_context("")

    def pytest_sessionfinish(self) -> None:
        self.coverage.stop()
        self.coverage.save()
        (self.root / MODULES).write_text("\n".join(sorted(sys.modules)))


class MutantTimer:
    """A pytest plugin: how long a mutant's run took, how many tests it ran and which failed first, one JSON line per
    mutant (mutmut's own durations stay 0 with its fork server), for docs/mutation.md's "How long it takes"."""

    def __init__(self, root: Path, mutant: str) -> None:
        self.path, self.mutant = root / TIMES, mutant
        self.start, self.tests, self.killed_by = time.monotonic(), 0, ""

    def pytest_runtest_logfinish(self) -> None:
        self.tests += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and not self.killed_by:
            self.killed_by = report.nodeid

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        seconds = round(time.monotonic() - self.start, 3)
        line = {"mutant": self.mutant, "seconds": seconds, "tests": self.tests, "killed_by": self.killed_by}
        with self.path.open("a") as times:  # one short append per process: the two at a time do not interleave
            times.write(json.dumps({**line, "exit": int(exitstatus)}) + "\n")


def preload(root: Path) -> None:
    """Load in mutmut's fork server what the tests load as they run (the SDKs the program imports
    only when it needs them, such as `pulumi_aws` for EKS, and the Kubernetes SDK's API groups):
    otherwise every mutant's process would import them again, 1-2 s of a program test's run.

    Reached the way the program reaches them, as attributes (`pulumi_kubernetes.core.v1`), not
    imported by name: the SDKs load their groups lazily, and importing a module by name binds it
    on its package, over a class of the same name (`pulumi_kubernetes.apiextensions.CustomResource`).
    """
    path = root / MODULES
    for name in path.read_text().split() if path.exists() else []:
        top, *attributes = name.split(".")
        if top.startswith("_") or top in ("tests", "__main__"):
            continue
        with contextlib.suppress(Exception):  # best effort: what is not an attribute is loaded by its package
            value: object = importlib.import_module(top)
            for attribute in attributes:
                value = getattr(value, attribute)


@cache
def reaching_tests(root: Path) -> dict[str, frozenset[str]]:
    """Mutant name -> the test ids that execute its changed statement (none for a mutant whose
    change no line coverage can place, such as a parameter's default: all of mutmut's tests run).
    Loaded once in mutmut's fork server, whose warm-up session runs this, not per mutant."""
    path = root / REACHING
    if not path.exists():
        return {}
    answer = json.loads(path.read_text())
    tests: list[str] = answer["tests"]
    statements = [frozenset(tests[index] for index in indices) for indices in answer["statements"]]
    return {mutant: statements[statement] for mutant, statement in answer["mutants"].items()}


def tests_by_id(config: pytest.Config) -> bool:
    """mutmut passes the tests it runs by id; its warm-up and forced-fail runs pass test files."""
    return all("::" in arg for arg in config.args)


def is_clean_run(config: pytest.Config) -> bool:
    """mutmut's clean run, after its mapping run passed in scripts/mutation: no mutant active
    (`MUTANT_UNDER_TEST` empty, not `stats`, `fail` or a mutant) and every test given by id."""
    passed = os.environ.get(TESTS_PASSED) == "1" and os.environ.get("MUTANT_UNDER_TEST") == ""
    return passed and bool(config.args) and tests_by_id(config)


def configure(config: pytest.Config) -> None:
    """Record lines for scripts/mutation; narrow a mutant's tests when running one."""
    if is_line_recording():
        config.pluginmanager.register(LineRecorder(config.rootpath), "mutation-line-recorder")
        return
    if is_clean_run(config):
        # What mutmut's clean run would check, its mapping run just did: every selected test
        # passes with no mutant active. Running them all again would cost minutes of each run.
        pytest.exit("mutmut's mapping run passed these tests on the unmutated code", returncode=pytest.ExitCode.OK)
    reaching = reaching_tests(config.rootpath)
    mutant = mutant_under_test()
    # mutmut's runs without a mutant: the fork server's warm-up, and the clean run when it was not skipped above.
    if mutant is None and reaching:
        preload(config.rootpath)
    if mutant is None or not tests_by_id(config):
        return
    config.pluginmanager.register(MutantTimer(config.rootpath, mutant), "mutation-timer")
    wanted = [test for test in config.args if mutant not in reaching or test in reaching[mutant]]
    if not wanted:
        pytest.exit(f"no test executes {mutant}'s change", returncode=pytest.ExitCode.NO_TESTS_COLLECTED)
    config.stash[_WANTED] = set(wanted)
    # Collected by file, not one id at a time: pytest resolves each id argument on its own, a
    # second for the 700 of a function every program run calls.
    config.args[:] = list(dict.fromkeys(test.split("::")[0] for test in wanted))


def select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A mutant's wanted tests, in mutation order (the files collected hold others too)."""
    mutant = mutant_under_test()
    if mutant is None:
        return
    wanted = config.stash.get(_WANTED, None)
    if wanted is not None:
        dropped = [item for item in items if item.nodeid not in wanted]
        items[:] = [item for item in items if item.nodeid in wanted]
        config.hook.pytest_deselected(items=dropped)
    items[:] = killers_first(
        in_mutation_order(items, mutant, test_durations(config.rootpath)), sibling_killers(config.rootpath, mutant)
    )


@cache
def test_durations(root: Path) -> dict[str, float]:
    """Each test's time in mutmut's mapping run (./mutants/mutmut-stats.json; a program per test)."""
    path = root / STATS
    durations: dict[str, float] = json.loads(path.read_text()).get("duration_by_test", {}) if path.exists() else {}
    return durations


def in_mutation_order(items: list[pytest.Item], mutant: str, durations: dict[str, float]) -> list[pytest.Item]:
    """A mutant's tests, one test file after another: cheap files first, then the likeliest killers.

    mutmut passes the tests that cover a mutant in no particular order and stops at the first
    failure, so a killed mutant costs the tests run before its killer. Files go whole (running
    a file's tests together evaluates its module-scoped program once):

    - first the files whose reaching tests took at most CHEAP_FILE_SECONDS in mutmut's mapping
      run, cheapest first: probes that cost next to nothing (`rollout.cli`'s parser mutants are
      killed by the 3 tests of `tests/test_generated_docs.py` that read every option's help,
      which used to wait for the 58 of `tests/test_rollout_cli.py`, 2.9 s a mutant);
    - then the mutated module's own file (rollout.stack: tests/test_rollout_stack.py), its
      layer's (tests/test_rollout.py, then tests/test_rollout_*.py), then the rest, where most
      mutants' killers are. Ordering all files by cost instead put `infra`'s and `capacity`'s
      layer files last (their program tests add up in the mapping run, which runs the program
      per test) and made those mutants 3-15 times slower (docs/mutation.md).
    """
    module = mutant.split(".x", 1)[0]  # "rollout.stack.xǁPulumiStackǁ_up__mutmut_3" -> "rollout.stack"
    own = f"tests/test_{module.replace('.', '_')}.py"
    layer = f"tests/test_{module.split('.')[0]}"
    position = {file: index for index, file in enumerate(dict.fromkeys(item.nodeid.split("::")[0] for item in items))}
    cost = dict.fromkeys(position, 0.0)
    for item in items:
        cost[item.nodeid.split("::")[0]] += durations.get(item.nodeid, 0.0)

    def rank(item: pytest.Item) -> tuple[bool, float, bool, bool, bool, int]:
        file = item.nodeid.split("::")[0]
        cheap = cost[file] <= CHEAP_FILE_SECONDS
        return (
            not cheap,
            cost[file] if cheap else 0.0,
            file != own,
            file != f"{layer}.py",
            not file.startswith(layer),
            position[file],
        )

    return sorted(items, key=rank)


def sibling_killers(root: Path, mutant: str) -> Counter[str]:
    """The tests that killed other mutants of `mutant`'s function, in this run and the last
    (./mutants/TIMES and LAST_TIMES), each with how many it killed."""
    function = mutant.rsplit("__mutmut_", 1)[0]
    marker = json.dumps({"mutant": f"{function}__mutmut_"})[1:-2]  # '"mutant": "<function>__mutmut_'
    killers: Counter[str] = Counter()
    for path in (root / TIMES, root / LAST_TIMES):
        for line in path.read_text().splitlines() if path.exists() else []:
            if marker in line:  # most lines are other functions': not parsed
                killers[json.loads(line)["killed_by"]] += 1
    del killers[""]  # survivors
    return killers


def killers_first(items: list[pytest.Item], killers: Counter[str]) -> list[pytest.Item]:
    """The tests that killed most of a function's other mutants first, then the others in their order.

    A function's mutants are mostly killed by the same few tests (its branches' own), and mutmut
    runs them one after another. A killed mutant costs what runs before its killer, so the test
    that killed its siblings goes first; when it does not kill this one, the files' order resumes
    (the killer's module may then be set up a second time, a program evaluation at most).
    """
    return sorted(items, key=lambda item: -killers[item.nodeid])
