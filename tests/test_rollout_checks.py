"""`Prometheus.query` with good and empty answers, the query sent as is, and Flagger's queries in full.

Garbage and hostile answers are in tests/test_rollout_prometheus.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from rollout.checks import (
    P99_LATENCY,
    SUCCESS_RATE,
    Check,
    CheckResult,
    CheckSpecError,
    Prometheus,
    Target,
    builtin_checks,
    parse_bound,
)
from tests.harness import serve_in_background


class FakeApi:
    """What the next request gets: (HTTP status, body); records every query it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {}
        self.queries: list[str] = []
        self.paths: list[str] = []


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            fake.paths.append(url.path)
            fake.queries += parse_qs(url.query).get("query", [])
            body = fake.body if isinstance(fake.body, bytes) else json.dumps(fake.body).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    serve_in_background(server)
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {}, "value": [1700000000.0, value]} for value in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_one_sample_is_the_answer_and_the_query_is_sent_as_is(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.body = vector("99.5")
    promql = 'sum(rate(x{a="b", c=~"d.*"}[1m])) / 2 & more'
    assert Prometheus(url).query(promql) == 99.5
    assert fake.queries == [promql], "the query reaches Prometheus unchanged (URL-encoded)"
    assert fake.paths == ["/api/v1/query"], "the trailing slash of the URL is not doubled"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, vector(), "no data: the query returned 0 series, one is needed"),
        (200, vector("1", "2"), "no data: the query returned 2 series, one is needed"),
        (200, vector("NaN"), "no data: the query's value is NaN"),
        (200, {"status": "error", "error": "parse error at char 3"}, "Prometheus query failed: parse error at char 3"),
        (400, {"status": "error", "error": "bad_data"}, 'Prometheus answered 400: {"status": "error"'),
    ],
)
def test_anything_but_one_number_is_no_answer(api: tuple[FakeApi, str], status: int, body: Any, message: str) -> None:
    fake, url = api
    fake.status, fake.body = status, body
    with pytest.raises(LookupError) as error:
        Prometheus(url).query("up")
    assert message in str(error.value)


def test_an_unreachable_prometheus_is_no_answer() -> None:
    with pytest.raises(LookupError, match=r"Prometheus at http://127.0.0.1:9 cannot be reached"):
        Prometheus("http://127.0.0.1:9", timeout=2).query("up")


def test_evaluate_fills_each_query_for_the_target_and_keeps_errors_as_results(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.body = vector("42")
    checks = [Check("a", 'x{ns="$namespace", w="$workload"}[$window]', "min", 1.0), Check("b", "y", "max", 10.0)]
    results = Prometheus(url).evaluate(checks, Target("shop", "cart-v3", "30s"))
    assert fake.queries == ['x{ns="shop", w="cart-v3"}[30s]', "y"]
    assert results == [CheckResult(checks[0], 42.0), CheckResult(checks[1], 42.0)]
    assert [result.passed for result in results] == [True, False]
    fake.body = vector()
    (failed,) = Prometheus(url).evaluate(checks[:1], Target("shop", "cart-v3", "30s"))
    assert failed.value is None and failed.error is not None and "0 series" in failed.error
    assert failed.as_dict() == {
        "name": "a",
        "value": None,
        "bound": 1.0,
        "kind": "min",
        "passed": False,
        "error": failed.error,
    }


def test_flaggers_queries_in_full() -> None:
    target = Target("default", "nginx-v2", "1m")
    selector = 'reporter="destination",destination_workload_namespace="default",destination_workload=~"nginx-v2"'
    assert target.fill(SUCCESS_RATE) == (
        f'sum(rate(istio_requests_total{{{selector},response_code!~"5.*"}}[1m])) / '
        f"sum(rate(istio_requests_total{{{selector}}}[1m])) * 100"
    )
    assert target.fill(P99_LATENCY) == (
        f"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{{selector}}}[1m])) by (le))"
    )
    success, latency = builtin_checks(min_success_rate=95.5, max_p99_ms=250)
    assert (success.query, success.kind, success.bound, success.unit) == (SUCCESS_RATE, "min", 95.5, "%")
    assert (latency.query, latency.kind, latency.bound, latency.unit) == (P99_LATENCY, "max", 250, "ms")
    assert success.describe_bound() == ">= 95.5%" and latency.describe_bound() == "<= 250ms"
    assert math.isclose(Prometheus("http://127.0.0.1:9090/").timeout, 10.0)


@pytest.mark.parametrize(("text", "high"), [("0", 100.0), ("100", 100.0), ("0", math.inf), ("1e9", math.inf)])
def test_a_bound_at_either_end_of_its_range_is_accepted(text: str, high: float) -> None:
    assert parse_bound(text, "--bound", 0, high) == float(text)


@pytest.mark.parametrize(
    ("text", "high", "message"),
    [
        ("-0.001", 100.0, "--bound '-0.001': must be a number from 0 to 100"),
        ("100.5", 100.0, "--bound '100.5': must be a number from 0 to 100"),
        ("-1", math.inf, "--bound '-1': must be a number from 0"),  # no upper end to name
    ],
)
def test_a_bound_just_outside_its_range_is_refused_naming_the_range(text: str, high: float, message: str) -> None:
    with pytest.raises(CheckSpecError) as refused:
        parse_bound(text, "--bound", 0, high)
    assert str(refused.value) == message
