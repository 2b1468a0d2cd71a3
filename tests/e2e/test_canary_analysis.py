"""The `canary` checks against a real Prometheus scraping Istio-shaped series of nginx-v1 and nginx-v2."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from mesh.canary_dashboard import queries
from rollout.checks import CheckResult, Prometheus, Target, builtin_checks, parse_check
from rollout.demo import MeshTraffic, PrometheusServer
from tests.e2e.conftest import WINDOW

CANARY = Target("default", "nginx-v2", WINDOW)
STABLE = Target("default", "nginx-v1", WINDOW)


Results = list[CheckResult]


def eventually(analyse: Callable[[], Results], wanted: Callable[[Results], bool]) -> Results:
    """Results once they show what the traffic now is: rate() needs a window of samples after a change."""
    deadline = time.monotonic() + 20
    while not wanted(results := analyse()):
        assert time.monotonic() < deadline, [result.as_dict() for result in results]
        time.sleep(0.5)
    return results


def test_a_healthy_canary_passes_flaggers_checks(mesh_traffic: MeshTraffic, prometheus: PrometheusServer) -> None:
    mesh_traffic.set("v2", error_ratio=0, latency_ms=50)
    analyst = Prometheus(prometheus.url)
    success, latency = eventually(
        lambda: analyst.evaluate(builtin_checks(), CANARY), lambda results: all(r.passed for r in results)
    )
    assert success.value == 100
    assert latency.value is not None and latency.value <= 100


def test_errors_and_slowness_fail_their_checks_with_the_values(
    mesh_traffic: MeshTraffic, prometheus: PrometheusServer
) -> None:
    mesh_traffic.set("v2", error_ratio=0.1, latency_ms=800)
    analyst = Prometheus(prometheus.url)
    success, latency = eventually(
        lambda: analyst.evaluate(builtin_checks(), CANARY),
        lambda results: not any(r.passed for r in results) and abs((results[0].value or 0) - 90) < 2,
    )
    assert success.value == pytest.approx(90, abs=2)
    assert latency.value is not None and 500 < latency.value <= 1000
    assert all(result.passed for result in analyst.evaluate(builtin_checks(), STABLE)), "v1 is unaffected"
    mesh_traffic.set("v2", error_ratio=0, latency_ms=50)


def test_no_series_and_no_server_are_errors_never_passes(prometheus: PrometheusServer) -> None:
    analyst = Prometheus(prometheus.url)
    (absent,) = analyst.evaluate(builtin_checks()[:1], Target("default", "nginx-v9", WINDOW))
    assert (absent.passed, absent.value) == (False, None)
    assert absent.error is not None and "no data" in absent.error
    unreachable = Prometheus("http://127.0.0.1:9")  # the discard port: nothing listens
    for result in unreachable.evaluate(builtin_checks(), CANARY):
        assert not result.passed and result.error is not None and "cannot be reached" in result.error


def test_custom_checks_use_the_same_target(prometheus: PrometheusServer) -> None:
    rps = parse_check(
        'request-rate:min:50:sum(rate(istio_requests_total{destination_workload_namespace="$namespace",'
        'destination_workload=~"$workload"}[$window]))'
    )
    (result,) = Prometheus(prometheus.url).evaluate([rps], CANARY)
    assert result.passed and result.value == pytest.approx(100, rel=0.1)


def test_the_grafana_canary_dashboard_queries_answer_per_version(
    mesh_traffic: MeshTraffic, prometheus: PrometheusServer
) -> None:
    mesh_traffic.set("v1", rps=150, error_ratio=0, latency_ms=50)
    mesh_traffic.set("v2", rps=50, error_ratio=0.2, latency_ms=50)
    panels = queries("nginx", "default")

    def by_version(title: str) -> dict[str, float]:
        series = prometheus.query(panels[title].replace("[1m]", f"[{WINDOW}]"))  # the 1m of a 1s scrape: 5s
        return {one["metric"]["destination_version"]: float(one["value"][1]) for one in series}

    def settled() -> bool:  # the window no longer holds the traffic of earlier tests
        share, success = by_version("Share of requests (%)"), by_version("Success rate (%)")
        return abs(share.get("v2", 0) - 25) <= 3 and abs(success.get("v2", 0) - 80) <= 3

    deadline = time.monotonic() + 20
    while not settled():
        assert time.monotonic() < deadline, (by_version("Share of requests (%)"), by_version("Success rate (%)"))
        time.sleep(0.5)
    assert by_version("Share of requests (%)")["v1"] == pytest.approx(75, abs=3)
    assert by_version("Request rate (req/s)")["v1"] == pytest.approx(150, rel=0.1)
    assert by_version("Success rate (%)")["v1"] == 100
    assert by_version("p99 latency (ms)")["v1"] <= 100
    mesh_traffic.set("v2", error_ratio=0)
    mesh_traffic.set("v1", rps=100)
    mesh_traffic.set("v2", rps=100)
