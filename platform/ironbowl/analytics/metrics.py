"""Prometheus metrics of analytics, platform-wide: no per-tenant labels (per-organization
figures are in the API). Counters and histograms are counted by the processes that ingest (web)
and roll up (the Celery worker, whose pods serve their own /metrics); the backlog is read from
the database at scrape time, so any web process answers it.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS = Counter(
    "ironbowl_analytics_events_total",
    "Events received, by outcome (stored, duplicate, rejected).",
    ["outcome"],
)
BATCHES = Counter(
    "ironbowl_analytics_batches_total",
    "Event batches received, by outcome: stored (anything new or already stored), rejected "
    "(every event refused), refused (the whole batch unreadable or too large), failed (a "
    "database error; nothing stored).",
    ["outcome"],
)
BATCH_OUTCOMES = ("stored", "rejected", "refused", "failed")
for _outcome in BATCH_OUTCOMES:
    BATCHES.labels(_outcome)  # each shown from the start, at 0, so rates and alerts see it
INGEST_SECONDS = Histogram(
    "ironbowl_analytics_ingest_duration_seconds",
    "Time to validate, attribute and store one batch of events.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_DELAY = Histogram(
    "ironbowl_analytics_event_delay_seconds",
    "How long after it happened an event arrived (received minus occurred; a retry again).",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)
ROLLUP_DELAY = Histogram(
    "ironbowl_analytics_rollup_delay_seconds",
    "From an hour being marked stale to its rollup being recomputed.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600, 4 * 3600),
)
ROLLUP_SECONDS = Histogram(
    "ironbowl_analytics_rollup_duration_seconds",
    "Time to recompute one organization-day's marked hours and the day.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROLLUP_ERRORS = Counter(
    "ironbowl_analytics_rollup_errors_total", "Organization-days whose rollup failed."
)
USAGE_RECORDS = Counter(
    "ironbowl_analytics_usage_records_total",
    "Usage records appended, by usage type.",
    ["usage_type"],
)


class AnalyticsStateCollector(Collector):
    """The rollup backlog, read from the database at scrape time."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Names only, so that registering the collector does not query the database."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "ironbowl_analytics_rollup_backlog_marks",
                "Stale-hour marks waiting for the rollup.",
            ),
            GaugeMetricFamily(
                "ironbowl_analytics_rollup_lag_seconds",
                "Age of the oldest stale-hour mark (0 when none waits).",
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "ironbowl_analytics_state_up",
            "1 when the analytics figures below could be read from the database.",
        )
        try:
            from ironbowl.analytics.models import RollupMark

            figures = RollupMark.objects.unscoped_dangerously().aggregate(
                marks=Count("id"), oldest=Min("marked_at")
            )
        except DatabaseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        backlog, lag = self._families()
        backlog.add_metric([], figures["marks"])
        oldest = figures["oldest"]
        lag.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
        yield backlog
        yield lag
