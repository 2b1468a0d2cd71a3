"""The benchmarks' own logic (their measurements need the local cluster: benchmarks/*.py)."""

from __future__ import annotations

import json
import runpy

from tests.harness import PROJECT_DIR

# By path: benchmarks/ is a directory of scripts, which mypy checks as top-level modules.
WEIGHT_SHIFT = runpy.run_path(str(PROJECT_DIR / "benchmarks" / "weight_shift.py"))


def line(at: str, message: str) -> str:
    return json.dumps({"time": f"2026-11-29T05:36:{at}Z", "level": "INFO", "msg": message})


def test_an_updates_phases_are_read_from_the_engine_log() -> None:
    log = "\n".join(
        [
            line("22.1", "OTLP receiver started"),
            line("22.2", "langhost[python].GetRequiredPackages(root=/p, program=/p, entryPoint=.) executing"),
            line(
                "22.35", "langhost[python].GetRequiredPackages(root=/p, program=/p, entryPoint=.) success: #versions=4"
            ),
            "not json: the program's own output",
            line("22.4", "langhost[python].Run(pwd=/p,root=/p, program=/p, entryPoint=.,dryrun=false) executing"),
            line("22.6", "registering resource: ty=pulumi:pulumi:Stack, name=canary-local, custom=False"),
            line("22.61", "registering resource: ty=pulumi:pulumi:Stack, name=canary-local, custom=False"),
            line("23.5", "run_pulumi_func completed"),
            line(
                "23.55",
                "langhost[python].Run(pwd=/p,root=/p, program=/p, entryPoint=.,...,dryrun=false) success: progerr=",
            ),
            line("23.6", "*** Update(preview=false) complete ***"),
        ]
    )
    marks = WEIGHT_SHIFT["log_marks"](log)
    seconds = {label: round(marks[end] - marks[begin], 3) for label, (begin, end) in WEIGHT_SHIFT["PHASES"].items()}
    assert list(seconds.values()) == [0.25, 0.2, 0.9, 0.05, 0.05]
