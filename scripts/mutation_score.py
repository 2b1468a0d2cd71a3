"""The mutation score per module from mutmut's results in ./mutants (scripts/mutation).

Killed (by a failing test, a timeout or mypy: mutants/rejected-by-mypy.txt) over all mutants; the survivors
are listed unless docs/mutation.md lists them as equivalent: a line starting with the mutant's name in
backticks, then mutmut's hash of its function when it was judged (`- `NAME` (`HASH`): why`). While its
function's hash is the same, the mutant is the same change of the same code: scripts/mutation does not run it
again (`--names` leaves it out) and it counts as equivalent. Once the function changed, it runs again, and a
survivor counts as such until it is judged again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REJECTED_BY_MYPY = 37  # mutmut's exit code for a mutant its type checker rejected
KILLED = {1, 3, 36, REJECTED_BY_MYPY, -24, 24, 152}  # a failing test or pytest error, a timeout (SIGXCPU), mypy
SURVIVED = 0
# mutmut's worker exits 255 when running the tests raised (pytest refused the test ids, say). mutmut calls
# that a timeout; it is no verdict: the tests never ran.
NOT_TESTED = 255


def equivalent_mutants() -> dict[str, str]:
    """The mutants judged equivalent: name -> mutmut's hash of its function then ("" when not given)."""
    doc = ROOT / "docs" / "mutation.md"
    text = doc.read_text() if doc.exists() else ""
    return dict(re.findall(r"^- `([\w.]+__mutmut_\d+)`(?: \(`([0-9a-f]+)`\))?", text, re.MULTILINE))


def function_hashes() -> dict[str, str]:
    """Mutant name -> mutmut's hash of the function it mutates, as the code is now."""
    hashes: dict[str, str] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        functions = data.get("hash_by_function_name", {})
        for name in data["exit_code_by_key"]:
            function = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]  # "rollout.runner.xǁRolloutǁrun"
            hashes[name] = functions.get(function, "")
    return hashes


def still_equivalent(equivalent: dict[str, str], hashes: dict[str, str]) -> set[str]:
    """The mutants judged equivalent on the code as it is now: their function's hash unchanged."""
    return {name for name, judged in equivalent.items() if judged and hashes.get(name) == judged}


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


def verdict(name: str, code: int | None, equivalent: set[str]) -> str:
    """killed, equivalent, survived or not run; `equivalent`: the mutants judged equivalent on this code."""
    if code in KILLED:
        return "killed"
    if name in equivalent and code in (SURVIVED, None, 5, 33):  # None: not run again (--names)
        return "equivalent"
    if code == SURVIVED or code in (5, 33):  # survived, or no test covers it
        return "survived"
    return "not run"


def main(prefixes: list[str], every: int) -> int:
    listed = equivalent_mutants()
    hashes = function_hashes()
    equivalent = still_equivalent(listed, hashes)
    total = Counter[str]()
    by_verdict: defaultdict[str, list[str]] = defaultdict(list)
    print(f"{'module':<24} {'mutants':>8} {'killed':>7} {'equivalent':>10} {'survived':>9} {'not run':>8} {'score':>7}")
    if every > 1:
        print(f"a sample: every {every}th mutant of each module")
    results_now = results(prefixes, every)
    for module, codes in results_now.items():
        counts = Counter[str]()
        for name, code in codes.items():
            judgement = verdict(name, code, equivalent)
            counts[judgement] += 1
            by_verdict[judgement].append(name)
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
    stale = sorted(name for name in listed if name in by_verdict["survived"])
    wrongly_listed = sorted(name for name in listed if name in by_verdict["killed"])
    survivors = [name for name in by_verdict["survived"] if name not in stale]
    if survivors:
        print("\nsurvivors (`venv/bin/mutmut show NAME` shows the change):")
        print("\n".join(f"  {name}" for name in sorted(survivors)))
    if stale:
        print("\nsurvivors listed as equivalent in docs/mutation.md for a function that changed since: judge them")
        print("again and write the hash now (in the listing's order: judged then, now):")
        print("\n".join(f"  {name} ({listed[name] or 'no hash'}, now {hashes.get(name)})" for name in stale))
    if wrongly_listed:
        print("\nkilled, yet listed as equivalent in docs/mutation.md (take them off the list):")
        print("\n".join(f"  {name}" for name in wrongly_listed))
    not_tested = [name for codes in results_now.values() for name, code in codes.items() if code == NOT_TESTED]
    if not_tested:
        print(
            f"\n{len(not_tested)} mutants counted as not run: their tests could not be started"
            " (exit 255: pytest refused to run them, e.g. a test id it cannot select):"
        )
        print("\n".join(f"  {name}" for name in sorted(not_tested)))
        return 1
    return 0


def to_run(prefixes: list[str], every: int, run_equivalents: bool = False) -> list[str]:
    """The mutants scripts/mutation runs: those mypy did not reject, but for the ones judged equivalent on this
    code (unless `run_equivalents`, to judge them again)."""
    equivalent = set() if run_equivalents else still_equivalent(equivalent_mutants(), function_hashes())
    selected = results(prefixes, every, needing_a_test=True)
    return [name for codes in selected.values() for name in codes if name not in equivalent]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=int, default=1, help="only every so many mutants of each module (a sample)")
    parser.add_argument(
        "--names",
        action="store_true",
        help="print the mutants to run: mypy did not reject them, nor were they judged equivalent on this code",
    )
    parser.add_argument(
        "--run-equivalents", action="store_true", help="with --names: also the mutants judged equivalent on this code"
    )
    parser.add_argument(
        "modules", nargs="*", default=["workloads", "settings", "capacity", "mesh", "infra", "rollout", "policy"]
    )
    options = parser.parse_args()
    if options.names:
        print("\n".join(to_run(options.modules, options.every, options.run_equivalents)))
        sys.exit(0)
    sys.exit(main(options.modules, options.every))
