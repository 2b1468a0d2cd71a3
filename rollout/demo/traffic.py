"""An in-process stand-in for an Istio mesh: the metrics the sidecars of an app's versions report.

Each version of the app gets the series Istio's sidecars export with reporter="destination"
(istio_requests_total, istio_request_duration_milliseconds), driven by a background thread
from what set() says that version's traffic is, and served on 127.0.0.1 for a real Prometheus
to scrape. The demo (`scripts/try-local demo`) and the end-to-end tests use it.
Deterministic: request counts, errors and latencies follow fixed sequences.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Self
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from rollout.demo.background import BackgroundServer

# The buckets Istio's sidecars use for istio_request_duration_milliseconds.
ISTIO_DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_service_name",
    "destination_app",
    "destination_version",
    "response_code",
)
SPREAD = 100  # latencies cycle through SPREAD evenly spaced values from latency_ms/2 up to latency_ms


@dataclasses.dataclass
class _Version:
    rps: float = 100.0
    error_ratio: float = 0.0
    latency_ms: float = 50.0
    requests_due: float = 0.0  # fractions of requests carried to the next tick
    errors_due: float = 0.0
    sequence: int = 0  # position in the latency cycle


class MeshTraffic(BackgroundServer):
    """Istio-shaped request metrics for versions of one app; `with MeshTraffic() as mesh: mesh.set("v1")`."""

    def __init__(self, app: str = "nginx", namespace: str = "default", tick: float = 0.1) -> None:
        self.app = app
        self.namespace = namespace
        self.tick = tick
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "istio_requests_total", "Requests, as Istio reports them.", LABELS, registry=self.registry
        )
        self._duration = Histogram(
            "istio_request_duration_milliseconds",
            "Request durations, as Istio reports them.",
            LABELS,
            buckets=ISTIO_DURATION_BUCKETS_MS,
            registry=self.registry,
        )
        self._versions: dict[str, _Version] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None

    def set(
        self,
        version: str,
        *,
        rps: float | None = None,
        error_ratio: float | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Set a version's traffic from the next tick on; what is not given is kept (a new version:
        100 rps, no errors, 50 ms). latency_ms is the slowest request's, so p99 is about latency_ms."""
        with self._lock:
            current = self._versions.get(version, _Version())
            new = dataclasses.replace(
                current,
                rps=current.rps if rps is None else rps,
                error_ratio=current.error_ratio if error_ratio is None else error_ratio,
                latency_ms=current.latency_ms if latency_ms is None else latency_ms,
            )
            if new.rps < 0 or not 0 <= new.error_ratio <= 1 or new.latency_ms <= 0:
                raise ValueError(f"invalid traffic for {version}: {new}")
            self._versions[version] = new

    @property
    def target(self) -> str:
        """The scrape target, "127.0.0.1:PORT"."""
        if self._server is None:
            raise RuntimeError("MeshTraffic is not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server, self._server_thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self._stopping.clear()
        self._ticker = threading.Thread(target=self._run, name="mesh-traffic", daemon=True)
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join()
            self._server_thread = None

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stopping.wait(self.tick):
            now = time.monotonic()
            self._record(now - last)
            last = now

    def _record(self, seconds: float) -> None:
        """Record the requests each version's rate implies for `seconds`; fractions carry over."""
        with self._lock:
            for name, v in self._versions.items():
                v.requests_due += v.rps * seconds
                count = int(v.requests_due)
                v.requests_due -= count
                v.errors_due += count * v.error_ratio
                errors = int(v.errors_due)
                v.errors_due -= errors
                for code, n in (("200", count - errors), ("500", errors)):
                    if n == 0:
                        continue
                    labels = self._labels(name, code)
                    self._requests.labels(**labels).inc(n)
                    histogram = self._duration.labels(**labels)
                    for _ in range(n):
                        histogram.observe(v.latency_ms * (0.5 + 0.5 * (v.sequence + 1) / SPREAD))
                        v.sequence = (v.sequence + 1) % SPREAD

    def _labels(self, version: str, response_code: str) -> dict[str, str]:
        return {
            "reporter": "destination",
            "source_workload": "istio-ingressgateway",
            "source_workload_namespace": "istio-system",
            "destination_workload": f"{self.app}-{version}",
            "destination_workload_namespace": self.namespace,
            "destination_service_name": self.app,
            "destination_app": self.app,
            "destination_version": version,
            "response_code": response_code,
        }
