"""A Grafana dashboard comparing the app's versions side by side, as plain data.

Queries group by Istio's `destination_version` (the pods' `version` label), so the
dashboard names no version and survives promotions unchanged; they use Flagger's metric
shapes (reporter="destination", or the waypoint's in ambient mode; 1m rates). The weight
itself lives in the VirtualService or HTTPRoute:
the dashboard shows the share of requests each version actually serves.
"""

from __future__ import annotations

import json
from typing import Any

PROMETHEUS_DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def _selector(app: str, namespace: str, reporter: str) -> str:
    return f'reporter="{reporter}", destination_workload_namespace="{namespace}", destination_app="{app}"'


def queries(app: str, namespace: str, reporter: str = "destination") -> dict[str, str]:
    """PromQL per panel, each by destination_version; `reporter` is the mesh's (MeshSettings.metrics_reporter)."""
    where = _selector(app, namespace, reporter)
    requests = f"sum by (destination_version) (rate(istio_requests_total{{{where}}}[1m]))"
    ok = f'sum by (destination_version) (rate(istio_requests_total{{{where}, response_code!~"5.*"}}[1m]))'
    buckets = f"sum by (le, destination_version) (rate(istio_request_duration_milliseconds_bucket{{{where}}}[1m]))"
    return {
        "Request rate (req/s)": requests,
        "Success rate (%)": f"{ok} / {requests} * 100",
        "p99 latency (ms)": f"histogram_quantile(0.99, {buckets})",
        "Share of requests (%)": f"{requests} / ignoring(destination_version) group_left sum({requests}) * 100",
    }


UNITS = {"Request rate (req/s)": "reqps", "Success rate (%)": "percent", "p99 latency (ms)": "ms"}


def dashboard(app: str, namespace: str, reporter: str = "destination") -> dict[str, Any]:
    panels = [
        {
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "datasource": PROMETHEUS_DATASOURCE,
            "gridPos": {"x": (index % 2) * 12, "y": (index // 2) * 8, "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": UNITS.get(title, "percent")}, "overrides": []},
            "targets": [
                {
                    "refId": "A",
                    "datasource": PROMETHEUS_DATASOURCE,
                    "expr": expr,
                    "legendFormat": "{{destination_version}}",
                }
            ],
        }
        for index, (title, expr) in enumerate(queries(app, namespace, reporter).items())
    ]
    return {
        "uid": f"canary-{app}",
        "title": f"Canary: {app} ({namespace})",
        "tags": ["canary", "istio"],
        "schemaVersion": 39,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "panels": panels,
    }


def dashboard_json(app: str, namespace: str, reporter: str = "destination") -> str:
    return json.dumps(dashboard(app, namespace, reporter), indent=2, sort_keys=True)
