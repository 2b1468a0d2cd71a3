"""The mutation score per module from mutmut's results in ./mutants (scripts/mutation).

Killed (by a failing test, a timeout or mypy: mutants/rejected-by-mypy.txt) over all mutants; the survivors
are listed unless docs/mutation.md lists them as equivalent (a line starting with the
mutant's name in backticks).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REJECTED_BY_MYPY = 37  # mutmut's exit code for a mutant its type checker rejected
KILLED = {1, 3, 36, REJECTED_BY_MYPY, -24, 24, 152}  # a failing test or pytest error, a timeout (SIGXCPU), mypy
SURVIVED = 0
# mutmut's worker exits 255 when running the tests raised (pytest refused the test ids, say). mutmut calls
# that a timeout; it is no verdict: the tests never ran.
NOT_TESTED = 255


def equivalent_mutants() -> set[str]:
    text = (ROOT / "docs" / "mutation.md").read_text() if (ROOT / "docs" / "mutation.md").exists() else ""
    return set(re.findall(r"^- `([\w.]+__mutmut_\d+)`", text, re.MULTILINE))


def results(prefixes: list[str], every: int = 1, needing_a_test: bool = False) -> dict[str, dict[str, int | None]]:
    """Exit code by mutant name, per module; with `every` > 1 only every so many mutants of each (a sample);
    `needing_a_test`: only the mutants mypy did not reject (scripts/mutation_types.py), which need a test."""
    rejected_file = ROOT / "mutants" / "rejected-by-mypy.txt"
    rejected = set(rejected_file.read_text().split()) if rejected_file.exists() else set()
    by_module: dict[str, dict[str, int | None]] = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        module = ".".join(meta.relative_to(ROOT / "mutants").with_suffix("").with_suffix("").parts)
        if not any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        codes = {name: REJECTED_BY_MYPY if name in rejected else code for name, code in codes.items()}
        sample = sorted(codes, key=lambda name: (name.rsplit("__mutmut_", 1)[0], int(name.rsplit("_", 1)[1])))[::every]
        if needing_a_test:
            sample = [name for name in sample if name not in rejected]
        if sample:
            by_module[module] = {name: codes[name] for name in sample}
    return by_module


def main(prefixes: list[str], every: int) -> int:
    equivalent = equivalent_mutants()
    total = Counter[str]()
    survivors: list[str] = []
    not_tested: list[str] = []
    print(f"{'module':<24} {'mutants':>8} {'killed':>7} {'equivalent':>10} {'survived':>9} {'not run':>8} {'score':>7}")
    if every > 1:
        print(f"a sample: every {every}th mutant of each module")
    for module, codes in results(prefixes, every).items():
        counts = Counter[str]()
        for name, code in codes.items():
            if code in KILLED:
                counts["killed"] += 1
            elif code == SURVIVED and name in equivalent:
                counts["equivalent"] += 1
            elif code == SURVIVED or code in (5, 33):  # survived, or no test covers it
                counts["survived"] += 1
                survivors.append(name)
            else:
                counts["not run"] += 1
                if code == NOT_TESTED:
                    not_tested.append(name)
        judged = counts["killed"] + counts["equivalent"] + counts["survived"]
        score = (counts["killed"] + counts["equivalent"]) / judged if judged else 0.0
        print(
            f"{module:<24} {len(codes):>8} {counts['killed']:>7} {counts['equivalent']:>10} "
            f"{counts['survived']:>9} {counts['not run']:>8} {score:>7.1%}"
        )
        total.update(counts)
    judged = total["killed"] + total["equivalent"] + total["survived"]
    if judged:
        score = (total["killed"] + total["equivalent"]) / judged
        print(
            f"{'all':<24} {sum(total.values()):>8} {total['killed']:>7} {total['equivalent']:>10} "
            f"{total['survived']:>9} {total['not run']:>8} {score:>7.1%}"
        )
    if survivors:
        print("\nsurvivors (`venv/bin/mutmut show NAME` shows the change):")
        print("\n".join(f"  {name}" for name in sorted(survivors)))
    if not_tested:
        print(
            f"\n{len(not_tested)} mutants counted as not run: their tests could not be started"
            " (exit 255: pytest refused to run them, e.g. a test id it cannot select):"
        )
        print("\n".join(f"  {name}" for name in sorted(not_tested)))
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=int, default=1, help="only every so many mutants of each module (a sample)")
    parser.add_argument(
        "--names", action="store_true", help="print the names of the mutants mypy did not reject instead of the score"
    )
    parser.add_argument(
        "modules", nargs="*", default=["workloads", "settings", "capacity", "mesh", "infra", "rollout", "policy"]
    )
    options = parser.parse_args()
    if options.names:
        selected = results(options.modules, options.every, needing_a_test=True)
        print("\n".join(name for codes in selected.values() for name in codes))
        sys.exit(0)
    sys.exit(main(options.modules, options.every))
