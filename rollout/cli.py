"""`canary`: status, run, promote and abort a canary release of the stack in the current directory."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

from pulumi import automation as auto

from rollout.checks import (
    MAX_P99_MS,
    MIN_SUCCESS_RATE,
    Check,
    CheckSpecError,
    Prometheus,
    builtin_checks,
    parse_bound,
    parse_check,
    parse_duration,
    parse_prometheus_url,
)
from rollout.gate import Gate, StepsError, parse_steps
from rollout.outcome import Outcome
from rollout.promotion import NothingToPromote
from rollout.runner import ReleaseStack, Report, Rollout, RunOptions, RunRefused, View, canary_target
from rollout.stack import ApplyError, PulumiStack, UpdateInterrupted
from rollout.view import ProgressView, describe
from settings import SettingsError

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"  # `kubectl -n istio-system port-forward svc/prometheus 9090`
POLICY_PACK = "policy"  # the project's own pack, run by every update unless --no-policy-pack
T = TypeVar("T")


def _option(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type whose errors keep our message (argparse prints the option and value)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except (CheckSpecError, StepsError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number, at least {minimum}")
        return int(text)

    return parse


def _duration(option: str, minimum: float) -> Callable[[str], float]:
    return _option(lambda text: parse_duration(text, option, minimum))


def _window(text: str) -> str:
    parse_duration(text, "--window", 1)
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="canary", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", "-s", help="stack name (default: the selected stack)")
    common.add_argument("--cwd", "-C", type=Path, default=Path.cwd(), help="the project directory (Pulumi.yaml)")
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout; progress on stderr")
    common.add_argument(
        "--policy-pack",
        action="append",
        default=[],
        help=f"run every update with this policy pack (default: the project's {POLICY_PACK}/)",
    )
    common.add_argument(
        "--no-policy-pack", action="store_true", help="run updates without any policy pack (not recommended)"
    )
    common.add_argument("--verbose", "-v", action="store_true", help="show pulumi's output of every update")
    analysis = argparse.ArgumentParser(add_help=False)
    analysis.add_argument(
        "--prometheus-url",
        type=_option(parse_prometheus_url),
        default=os.environ.get("CANARY_PROMETHEUS_URL", DEFAULT_PROMETHEUS),
        help=f"Prometheus' HTTP API (default: $CANARY_PROMETHEUS_URL or {DEFAULT_PROMETHEUS})",
    )
    analysis.add_argument("--window", type=_option(_window), default="1m", help="range of each query (default 1m)")
    analysis.add_argument(
        "--success-rate",
        type=_option(lambda text: parse_bound(text, "--success-rate", 0, 100)),
        default=MIN_SUCCESS_RATE,
        help=f"minimum success rate in %% (default {MIN_SUCCESS_RATE:g})",
    )
    analysis.add_argument(
        "--max-latency",
        type=_option(lambda text: parse_bound(text, "--max-latency", 0, math.inf)),
        default=MAX_P99_MS,
        help=f"maximum p99 latency in ms (default {MAX_P99_MS:g})",
    )
    analysis.add_argument(
        "--check",
        action="append",
        type=_option(parse_check),
        default=[],
        metavar="NAME:min|max:BOUND:PROMQL",
        help="an extra check; the PromQL may use $namespace, $workload and $window (repeatable)",
    )
    analysis.add_argument("--no-builtin-checks", action="store_true", help="only the --check checks")

    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", parents=[common, analysis], help="split, versions, run and live metrics")
    run = commands.add_parser("run", parents=[common, analysis], help="walk the steps, gated by metric checks")
    run.add_argument("--steps", type=_option(parse_steps), default=(10, 25, 50, 100), help="weights (10,25,50,100)")
    run.add_argument("--interval", type=_duration("--interval", 1), default=60.0, help="analysis interval (60s)")
    run.add_argument("--poll", type=_duration("--poll", 1), default=10.0, help="live view refresh (10s)")
    run.add_argument("--threshold", type=_count(1), default=5, help="failed checks before rollback (5)")
    run.add_argument("--error-limit", type=_count(1), default=4, help="unanswered analyses in a row before rollback")
    run.add_argument("--no-promote", action="store_true", help="stop at the last step instead of promoting")
    run.add_argument("--resume", action="store_true", help="continue the run kept on the stack (after a kill)")
    commands.add_parser("promote", parents=[common], help="make the canary the stable version; retire the old one")
    commands.add_parser("abort", parents=[common], help="all traffic to the stable version now; end any run")
    commands.add_parser("guard", parents=[common], help="fail when a canary run is in progress (for deploy jobs)")
    return parser


def _policy_packs(args: argparse.Namespace) -> list[str]:
    if args.no_policy_pack:
        return []
    if args.policy_pack:
        return [str(pack) for pack in args.policy_pack]
    own = Path(args.cwd) / POLICY_PACK
    if not (own / "PulumiPolicy.yaml").is_file():
        return []
    if not (own / "venv").is_dir():  # named by PulumiPolicy.yaml; without it every update would fail
        raise RunRefused(
            f"the policy pack {own} has no virtualenv ({own / 'venv'}): run scripts/venv, or pass --no-policy-pack"
        )
    return [str(own)]


def _stack_name(args: argparse.Namespace) -> str:
    if args.stack:
        return str(args.stack)
    current = auto.LocalWorkspace(work_dir=str(args.cwd)).stack()
    if current is None:
        raise RunRefused("no stack selected: pass --stack NAME or run `pulumi stack select NAME`")
    return current.name


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "no_builtin_checks", False) and not args.check:
        parser.error("--no-builtin-checks needs at least one --check: a run with no checks would judge nothing")
    return args


def _checks(args: argparse.Namespace) -> list[Check]:
    checks = [] if args.no_builtin_checks else builtin_checks(args.success_rate, args.max_latency)
    return [*checks, *args.check]


def status(stack: PulumiStack, args: argparse.Namespace, view: ProgressView) -> dict[str, object]:
    settings = stack.settings()
    app = settings.app
    prometheus = Prometheus(args.prometheus_url)
    checks = _checks(args)
    versions = {}
    for role, version in (("stable", app.stable), ("canary", app.canary)):
        weight = app.canary_weight if role == "canary" else 100 - app.canary_weight
        target = canary_target(settings, args.window, version.label)
        results = prometheus.evaluate(checks, target)
        versions[role] = {
            "version": version.label,
            "image": version.image,
            "replicas": version.replicas,
            "weight": weight,
            "checks": [result.as_dict() for result in results],
        }
        view.say(f"{role} {version.label}: {version.image}, {version.replicas} replicas, weight {weight}")
        for result in results:
            view.say(f"  {describe(result)}")
    record = stack.read_record()
    deployed = stack.deployed_split()
    view.say(f"deployed split: {deployed}" if deployed else "deployed split: none (the stack has no update yet)")
    if app.canary_header:
        view.say(f"header route: {app.canary_header[0]}: {app.canary_header[1]} -> {app.canary.label}")
    view.say(f"run: {record.describe()}" if record else "run: none")
    return {
        "stack": stack.name,
        "versions": versions,
        "deployed_split": deployed,
        "header": list(app.canary_header) if app.canary_header else None,
        "mirror_percent": app.mirror_percent,
        "run": record.as_dict() if record else None,
    }


def _require_prometheus(url: str) -> None:
    """Refuse a run that could only roll back: Prometheus does not answer at all."""
    try:
        Prometheus(url).ready()
    except LookupError as error:
        raise RunRefused(
            f"{error}: port-forward it (kubectl -n istio-system port-forward svc/prometheus 9090), "
            "or pass --prometheus-url"
        ) from None


def _first_error_line(text: str) -> str:
    """What pulumi's first `error:` line says (its output, as CommandError quotes it, has more)."""
    errors = [line.split("error:", 1)[1].strip() for line in text.splitlines() if "error:" in line]
    return errors[0] if errors else "failed (run the same pulumi command by hand to see why)"


def explain(error: OSError | auto.errors.CommandError, args: argparse.Namespace) -> str:
    """One line for the errors a newcomer meets (no CLI, no passphrase, unknown or locked stack), not pulumi's 30."""
    stack = f"stack {args.stack}" if args.stack else "the selected stack"
    if isinstance(error, FileNotFoundError) and error.filename == "pulumi":
        return 'the pulumi CLI is not on PATH: install it, or run eval "$(scripts/try-local env)" in the project'
    if not isinstance(error, auto.errors.CommandError):
        return str(error)
    text = str(error)
    if isinstance(error, auto.errors.StackNotFoundError):
        return f"{stack} does not exist in this backend ({_first_error_line(text)}): see `pulumi stack ls`"
    if isinstance(error, auto.errors.ConcurrentUpdateError):
        return (
            f"{stack} is locked by another update: wait for it to end, or run `pulumi cancel` "
            "if none is running (a killed update leaves its lock)"
        )
    if "PULUMI_CONFIG_PASSPHRASE" in text:
        return (
            f"{stack} encrypts its secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE "
            "(or PULUMI_CONFIG_PASSPHRASE_FILE); a scripts/try-local stack uses an empty one"
        )
    return f"pulumi: {_first_error_line(text)}"


def _dispatch(args: argparse.Namespace, view: ProgressView) -> tuple[dict[str, object], int]:
    output = (lambda text: view.say(text.rstrip())) if args.verbose else None
    if not (args.cwd / "Pulumi.yaml").is_file():
        raise RunRefused(f"no Pulumi.yaml in {args.cwd}: run canary in the project's directory, or pass --cwd DIR")
    if args.command == "run":
        _require_prometheus(args.prometheus_url)
    stack = PulumiStack(_stack_name(args), args.cwd, _policy_packs(args), on_output=output, notify=view.say)
    if args.command == "status":
        return status(stack, args, view), 0
    if args.command == "guard":
        return guard(stack, view)
    rollout = Rollout(stack, Prometheus(getattr(args, "prometheus_url", DEFAULT_PROMETHEUS)), view)
    if args.command == "run":
        record = rollout.claim(args.steps, args.resume)
        view.say(f"canary run {record.id} on stack {stack.name}: steps {','.join(map(str, record.steps))}")
        gate = Gate(record.steps, args.threshold, args.error_limit)
        options = RunOptions(gate, _checks(args), args.interval, args.window, args.poll, not args.no_promote)
        report = rollout.run(options, record)
    else:
        report = Report(stack.name, "", ())
        if args.command == "abort":
            rollout.abort(report)
        else:
            if (active := stack.read_record()) is not None:
                raise RunRefused(f"{active.describe()} is in progress; let it finish or `canary abort` it first")
            rollout.promote(report)
            report.outcome = Outcome.PROMOTED
        served = stack.served()
        report.deployed = served.describe() if served is not None else None
    outcome = report.outcome or Outcome.INTERRUPTED
    view.say(f"outcome: {outcome.word}, weight {report.weight}")
    if report.deployed:
        view.say(f"deployed: {report.deployed}")
    if report.updates:
        view.say(
            f"Pulumi.{stack.name}.yaml has the new settings: commit it, or the next `pulumi up` from a checkout "
            "without them (the deploy workflow) puts the old ones back"
        )
    return report.as_dict(), outcome.exit_code


def guard(stack: ReleaseStack, view: View) -> tuple[dict[str, object], int]:
    """For a deploy job before `pulumi up`: an update now would undo a run's step, or be undone by it."""
    record = stack.read_record()
    if record is None:
        view.say(f"stack {stack.name}: no canary run in progress")
        return {"stack": stack.name, "run": None}, 0
    view.say(
        f"stack {stack.name} has a canary run in progress: {record.describe()}.\n"
        "Deploying now would change the split under it. Let it finish, `canary abort` it, "
        "or deploy with force (the workflow's `force` input)."
    )
    return {"stack": stack.name, "run": record.as_dict()}, Outcome.REFUSED.exit_code


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    view = ProgressView(sys.stderr if args.json else sys.stdout)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result, code = _dispatch(args, view)
    except (SettingsError, RunRefused, NothingToPromote) as error:
        print(f"canary {args.command}: {error}", file=sys.stderr)
        return Outcome.REFUSED.exit_code
    except ApplyError as error:
        print(f"canary {args.command}: {error}", file=sys.stderr)
        return Outcome.UPDATE_FAILED.exit_code
    except UpdateInterrupted as error:
        print(f"canary {args.command}: interrupted: {error}", file=sys.stderr)
        return Outcome.INTERRUPTED.exit_code
    except KeyboardInterrupt:
        print(f"canary {args.command}: interrupted", file=sys.stderr)
        return Outcome.INTERRUPTED.exit_code
    except (OSError, auto.errors.CommandError) as error:
        print(f"canary {args.command}: {explain(error, args)}", file=sys.stderr)
        return Outcome.REFUSED.exit_code
    if args.json:
        print(json.dumps(result, indent=2))
    return code
