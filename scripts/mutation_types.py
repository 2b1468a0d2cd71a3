"""The mutants that `mypy --strict` rejects, from one mypy run over ./mutants (scripts/mutation).

mutmut can do this itself (`type_check_command`), but it maps each error to its mutant by
re-parsing the mutated files with libcst, which takes minutes on this code base (about 3.5 of
the 30 a whole run may take); Python's own `ast` does the same in a second. A mutant mypy
rejects is killed without running a test, as the unit tier's mypy test would reject it.

Prints one mutant name per line; exits 1 if an error falls outside every mutant, which would
mean the unmutated program does not type-check (fix that first).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
CHECKED = ["__main__.py", "workloads", "settings", "mesh", "infra", "capacity", "rollout", "policy/rules.py"]


def mutant_lines(path: Path) -> list[tuple[int, int, str]]:
    """(first line, last line, mutant name) of each mutant function in a mutated file."""
    module = ".".join(path.relative_to(MUTANTS).with_suffix("").parts)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.end_lineno or node.lineno, f"{module}.{node.name}")
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name
    ]


def rejected() -> tuple[set[str], list[str]]:
    """Mutant names mypy rejects, and the errors it reports outside any mutant."""
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--output", "json", "--no-warn-unused-ignores", *CHECKED],
        cwd=MUTANTS,
        capture_output=True,
        text=True,
    )
    errors = [json.loads(line) for line in mypy.stdout.splitlines() if line.strip()]
    errors = [error for error in errors if error["severity"] == "error"]
    if mypy.returncode not in (0, 1) or (mypy.returncode == 1 and not errors):
        sys.exit(f"mypy failed: {mypy.stderr.strip() or mypy.stdout.strip()}")
    names: set[str] = set()
    stray: list[str] = []
    functions: dict[str, list[tuple[int, int, str]]] = {}
    for error in errors:
        if error["file"] not in functions:
            functions[error["file"]] = mutant_lines(MUTANTS / error["file"])
        lines = functions[error["file"]]
        found = [name for first, last, name in lines if first <= error["line"] <= last]
        if found:
            names.update(found)
        else:
            stray.append(f"{error['file']}:{error['line']}: {error['message']}")
    return names, stray


def main() -> int:
    names, stray = rejected()
    if stray:
        print("mypy errors outside any mutant (the program must type-check):", *stray, sep="\n  ", file=sys.stderr)
        return 1
    print("\n".join(sorted(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
