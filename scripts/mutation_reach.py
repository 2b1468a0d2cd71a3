"""Which tests reach each mutant's change (scripts/mutation, docs/mutation.md).

mutmut runs a mutant against every test during which its function ran. A mutant differs from
the original function in one statement, and until that statement runs the two are the same
code: a test that never executes it cannot kill the mutant. From the per-test line coverage
recorded by a run of the same tests (tests/mutation.py: ./mutants/mutation-lines.coverage), this
writes, for each mutant, the tests that executed the original of its changed statement, to
./mutants/mutation-reaching-tests.json, which tests/mutation.py narrows each mutant's run to.

A mutant whose change is in the `def` line (a parameter's default, evaluated when the module
loads, outside any test) is left out: it runs against all of mutmut's tests.
"""

import ast
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.mutation import LINES, REACHING  # from the project root, put on the path above

MUTANTS = Path("mutants")
ORIGINAL = "__mutmut_orig"


def functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """mutmut's copies of the functions: module-level, and methods one class deep."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node
        elif isinstance(node, ast.ClassDef):
            yield from (child for child in node.body if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))


def changed_statements(source: str) -> dict[str, tuple[int, int]]:
    """Each mutant function's name -> the lines (first, last) of the original's statement its
    change is in: the innermost statement holding the first line where the two differ."""
    lines = source.splitlines()
    copies = {node.name: node for node in functions(ast.parse(source))}
    changed: dict[str, tuple[int, int]] = {}
    for name, mutant in copies.items():
        stem, marker, number = name.rpartition("__mutmut_")
        original = copies.get(stem + ORIGINAL)
        if not marker or not number.isdigit() or original is None:
            continue
        mine = [line.replace(name, stem + ORIGINAL, 1) for line in lines[mutant.lineno - 1 : mutant.end_lineno]]
        theirs = lines[original.lineno - 1 : original.end_lineno]
        first = next((index for index, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), None)
        if first is None:
            continue
        line = original.lineno + first
        # None for a change in the signature (a default): no statement of the body holds it.
        enclosing = [
            statement
            for statement in ast.walk(original)
            if isinstance(statement, ast.stmt)
            and statement is not original
            and statement.lineno <= line <= (statement.end_lineno or statement.lineno)
        ]
        if enclosing:
            innermost = min(enclosing, key=lambda statement: (statement.end_lineno or 0) - statement.lineno)
            changed[name] = (innermost.lineno, innermost.end_lineno or innermost.lineno)
    return changed


def reaching(lines_data: Path, root: Path) -> dict[str, Any]:
    """The answer tests/mutation.py reads: test ids once, each statement's tests as indices."""
    coverage: Any = importlib.import_module("coverage")  # comes with mutmut, not with the unit tier
    data = coverage.CoverageData(basename=str(lines_data))
    data.read()
    tests: dict[str, int] = {}
    statements: dict[tuple[str, int, int], int] = {}
    tests_of_statements: list[list[int]] = []
    mutants: dict[str, int] = {}
    for measured in sorted(data.measured_files()):
        path = Path(measured)
        if not path.with_name(path.name + ".meta").exists():
            continue  # not a mutated module
        module = ".".join(path.relative_to(root.resolve()).with_suffix("").parts).removesuffix(".__init__")
        contexts_by_line = data.contexts_by_lineno(measured)
        for name, (first, last) in changed_statements(path.read_text()).items():
            key = (measured, first, last)
            if key not in statements:
                ids = sorted(
                    {test for line in range(first, last + 1) for test in contexts_by_line.get(line, []) if test}
                )
                statements[key] = len(tests_of_statements)
                tests_of_statements.append([tests.setdefault(test, len(tests)) for test in ids])
            mutants[f"{module}.{name}"] = statements[key]
    return {"tests": list(tests), "statements": tests_of_statements, "mutants": mutants}


def main() -> int:
    lines_data = MUTANTS / LINES
    if not lines_data.exists():
        print(f"{lines_data}: no line coverage (is tests/mutation.py's LineRecorder wired in?)", file=sys.stderr)
        return 1
    answer = reaching(lines_data, MUTANTS)
    (MUTANTS / REACHING).write_text(json.dumps(answer))
    narrowed = sum(1 for statement in answer["mutants"].values() if answer["statements"][statement])
    print(f"mutation_reach: {len(answer['mutants'])} mutants placed, {narrowed} reached by some test", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
