"""Metric checks of one version of the app, answered by Prometheus.

The built-in checks are Flagger's, on the series Istio's sidecars report
(`reporter="destination"`; the waypoint's, `reporter="waypoint"`, in ambient mode:
MeshSettings.metrics_reporter): request success rate (at least 99 %) and p99 request
duration (at most 500 ms) over a window. Custom checks are PromQL with a bound.
A check that cannot be answered (Prometheus unreachable, no series, NaN) is an
error, never a pass: the run does not advance on missing data.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from string import Template
from typing import Literal

Bound = Literal["min", "max"]

# Flagger's built-in queries; $reporter, $namespace, $workload and $window are filled in per run.
SUCCESS_RATE = (
    'sum(rate(istio_requests_total{reporter="$reporter",destination_workload_namespace="$namespace",'
    'destination_workload=~"$workload",response_code!~"5.*"}[$window])) / '
    'sum(rate(istio_requests_total{reporter="$reporter",destination_workload_namespace="$namespace",'
    'destination_workload=~"$workload"}[$window])) * 100'
)
P99_LATENCY = (
    'histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="$reporter",'
    'destination_workload_namespace="$namespace",destination_workload=~"$workload"}[$window])) by (le))'
)
# The bounds of Flagger's built-in checks, the defaults of `canary run`.
MIN_SUCCESS_RATE = 99.0  # %
MAX_P99_MS = 500.0
CHECK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
QUERY_TIMEOUT_SECONDS = 10.0  # the whole answer, not each read: a trickling server cannot stretch it
READY_TIMEOUT_SECONDS = 5.0  # before the first step: a Prometheus that does not answer by then is not there
MAX_ANSWER_BYTES = 1_000_000  # one instant-query value is a few hundred bytes


@dataclass(frozen=True)
class Check:
    """A PromQL query whose value must stay at or above (`min`) or at or below (`max`) a bound."""

    name: str
    query: str
    kind: Bound
    bound: float
    unit: str = ""
    possible: tuple[float, float] = (-math.inf, math.inf)  # values outside are garbage, not measurements

    def passes(self, value: float) -> bool:
        return value >= self.bound if self.kind == "min" else value <= self.bound

    def describe_bound(self) -> str:
        return f"{'>=' if self.kind == 'min' else '<='} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Target:
    """The workload a check looks at: one version's Deployment, as Istio labels its series.
    Each field fills the query's placeholder of its name ($namespace, $workload, ...)."""

    namespace: str
    workload: str
    window: str
    """The range each query's rates are taken over, a PromQL duration ("1m")."""
    reporter: str = "destination"
    """The proxy whose series count: the pods' sidecars, or the waypoint in ambient mode."""

    def fill(self, query: str) -> str:
        return Template(query).substitute(asdict(self))


@dataclass(frozen=True)
class CheckResult:
    check: Check
    value: float | None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.value is not None and self.check.passes(self.value)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.check.name,
            "value": self.value,
            "bound": self.check.bound,
            "kind": self.check.kind,
            "passed": self.passed,
            "error": self.error,
        }


class CheckSpecError(ValueError):
    """A check given on the command line that cannot be used."""


def builtin_checks(min_success_rate: float = MIN_SUCCESS_RATE, max_p99_ms: float = MAX_P99_MS) -> list[Check]:
    return [
        Check("request-success-rate", SUCCESS_RATE, "min", min_success_rate, "%", (0.0, 100.0)),
        Check("request-duration", P99_LATENCY, "max", max_p99_ms, "ms", (0.0, math.inf)),
    ]


def parse_bound(text: str, option: str, low: float, high: float) -> float:
    """A finite number from `low` to `high` (an inclusive range)."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        upper = "" if math.isinf(high) else f" to {high:g}"
        raise CheckSpecError(f"{option} {text!r}: must be a number from {low:g}{upper}")
    return number


def parse_prometheus_url(text: str) -> str:
    """An http(s) URL; the error never repeats credentials the URL carries."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CheckSpecError(f"--prometheus-url {redacted(text)!r}: must be an http:// or https:// URL")
    return text.strip()


def redacted(url: str) -> str:
    """The URL without its user and password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def parse_check(spec: str) -> Check:
    """`NAME:min|max:BOUND:PROMQL`, PromQL with $namespace, $workload and $window where it needs them."""
    parts = spec.split(":", 3)
    if len(parts) != 4:
        raise CheckSpecError(f"--check {spec!r}: must be NAME:min|max:BOUND:PROMQL")
    name, kind, bound, query = parts
    if not CHECK_NAME.fullmatch(name):
        raise CheckSpecError(f"--check {spec!r}: the name {name!r} must be lowercase letters, digits and '-'")
    if kind not in ("min", "max"):
        raise CheckSpecError(f"--check {spec!r}: the bound kind {kind!r} must be min or max")
    try:
        number = float(bound)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise CheckSpecError(f"--check {spec!r}: the bound {bound!r} must be a number")
    try:
        Target("ns", "w", "1m").fill(query)
    except (KeyError, ValueError) as error:
        raise CheckSpecError(
            f"--check {spec!r}: the query may only use $namespace, $workload and $window ({error})"
        ) from None
    return Check(name, query, "min" if kind == "min" else "max", number)


def parse_duration(text: str, option: str, minimum_seconds: float) -> float:
    """Seconds of a duration such as 60s, 1m or 500ms, at least `minimum_seconds`."""
    match = DURATION.fullmatch(text.strip())
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    seconds = int(match.group(1)) * scale[match.group(2)] if match else -1.0
    if seconds < minimum_seconds:
        raise CheckSpecError(f"{option} {text!r}: must be a duration like 60s or 1m, at least {minimum_seconds:g}s")
    return seconds


class Prometheus:
    """The instant-query endpoint of Prometheus' HTTP API.

    Every answer that is not one finite number is an error, never a pass: a malformed
    shape, a non-numeric value, NaN or ±Inf, more than MAX_ANSWER_BYTES, or no complete
    answer within the timeout. Credentials in the URL are sent as basic auth and never shown.
    """

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT_SECONDS) -> None:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        self._headers = {}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1])
        self.url = urllib.parse.urlunsplit(parts)
        self.timeout = timeout

    def _answer(self, address: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        request = urllib.request.Request(address, headers=self._headers)
        chunks: list[bytes] = []
        size = 0
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            while chunk := response.read1(65536):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise LookupError(f"Prometheus' answer is larger than {MAX_ANSWER_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise LookupError(f"Prometheus gave no complete answer within {self.timeout:g}s")
                chunks.append(chunk)
        return b"".join(chunks)

    def ready(self) -> None:
        """Raises LookupError when Prometheus does not answer at all; any HTTP answer will do."""
        request = urllib.request.Request(f"{self.url}/-/ready", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, READY_TIMEOUT_SECONDS)):
                pass
        except urllib.error.HTTPError:
            pass  # it answers; whether its queries do is the analysis' business
        except (OSError, ValueError) as error:
            raise LookupError(
                f"Prometheus at {self.url} cannot be reached ({getattr(error, 'reason', error)})"
            ) from None

    def query(self, promql: str) -> float:
        """The single value of an instant query; raises LookupError when there is none to judge by."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            answer = self._answer(address)
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode(errors="replace")
            raise LookupError(f"Prometheus answered {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise LookupError(f"Prometheus at {self.url} cannot be reached: {error.reason}") from None
        except (OSError, ValueError) as error:
            raise LookupError(f"Prometheus at {self.url} did not answer: {error}") from None
        return _value(answer)

    def evaluate(self, checks: list[Check], target: Target) -> list[CheckResult]:
        results = []
        for check in checks:
            try:
                value = self.query(target.fill(check.query))
                low, high = check.possible
                if not low <= value <= high:
                    raise LookupError(f"garbage: {value:g}{check.unit} is not a possible {check.name}")
                results.append(CheckResult(check, value))
            except LookupError as error:
                results.append(CheckResult(check, None, str(error)))
        return results


def _value(answer: bytes) -> float:
    """The one finite value of an instant-query answer."""
    try:
        body = json.loads(answer)
    except ValueError:
        raise LookupError(f"garbage: Prometheus' answer is not JSON: {answer[:80]!r}") from None
    if not isinstance(body, dict):
        raise LookupError(f"garbage: Prometheus' answer is not a JSON object: {answer[:80]!r}")
    if body.get("status") != "success":
        raise LookupError(f"Prometheus query failed: {str(body.get('error', body))[:300]}")
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    series = data.get("result")
    if not isinstance(series, list) or data.get("resultType") != "vector":
        raise LookupError(f"garbage: not an instant vector: {answer[:120]!r}")
    if len(series) != 1:
        raise LookupError(f"no data: the query returned {len(series)} series, one is needed")
    sample = series[0].get("value") if isinstance(series[0], dict) else None
    text = sample[1] if isinstance(sample, list) and len(sample) == 2 else None
    garbage = LookupError(f'garbage: the sample is not [time, "number"]: {str(sample)[:80]}')
    if not isinstance(text, str):
        raise garbage
    try:
        value = float(text)
    except ValueError:
        raise garbage from None
    if math.isnan(value):
        raise LookupError("no data: the query's value is NaN (no requests in the window?)")
    if math.isinf(value):
        raise LookupError(f"garbage: the query's value is {value}")
    return value
