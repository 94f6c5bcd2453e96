"""Prometheus metrics, correct when several processes serve requests.

With `PROMETHEUS_MULTIPROC_DIR` set (production: gunicorn workers; `make run`), every process
writes its samples to that folder and /metrics aggregates them; without it, the process's own
registry is exposed. The Celery worker's pods serve their own /metrics (`ironbowl.metrics_server`).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from inference.metrics import InferenceStateCollector
from ironbowl.analytics.metrics import AnalyticsStateCollector
from ironbowl.metrics_server import multiprocess_registry

HTTP_REQUESTS = Counter(
    "ironbowl_http_requests_total",
    "HTTP requests served, by method, route and status class.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "ironbowl_http_request_duration_seconds",
    "Time to serve an HTTP request, by method and route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        aggregated = multiprocess_registry()
        aggregated.register(_STATE)
        aggregated.register(_ANALYTICS_STATE)
        return aggregated
    from prometheus_client import REGISTRY

    return REGISTRY


# Figures read from the database at scrape time (inference slots and queues, rollup backlog).
_STATE = InferenceStateCollector()
_ANALYTICS_STATE = AnalyticsStateCollector()
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    from prometheus_client import REGISTRY as _DEFAULT

    _DEFAULT.register(_STATE)
    _DEFAULT.register(_ANALYTICS_STATE)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
