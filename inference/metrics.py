"""Prometheus metrics of inference, with no per-tenant labels.

State (slots used and free per pool, queue length and oldest age per priority) is read from the
database when /metrics is scraped, so any web process answers it correctly. Events (admissions,
preemptions, reconcile passes) are counted by the orchestrator process, which serves its own
/metrics when ORCHESTRATOR_METRICS_PORT is set (and shares the multiprocess folder locally).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.db import DatabaseError
from django.db.models import Count, Min, Sum
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from inference.reconcile import PassReport

ADMISSIONS = Counter("ironbowl_inference_admissions_total", "Workloads admitted.")
PREEMPTIONS = Counter("ironbowl_inference_preemptions_total", "Workloads preempted and requeued.")
PLACEMENTS = Counter("ironbowl_inference_placements_total", "Workloads placed on a worker slot.")
WORKERS_STARTED = Counter("ironbowl_inference_workers_started_total", "Workers started.")
WORKERS_LOST = Counter(
    "ironbowl_inference_workers_lost_total", "Workers lost (crashed, killed, silent, node lost)."
)
ORPHANS = Counter("ironbowl_inference_orphans_stopped_total", "Backend workers nobody owned.")
RECONCILE_SECONDS = Histogram(
    "ironbowl_inference_reconcile_duration_seconds",
    "Time of one reconcile pass.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = Counter(
    "ironbowl_inference_reconcile_errors_total", "Reconcile passes that failed, by kind.", ["kind"]
)
LEADER = Gauge(
    "ironbowl_inference_orchestrator_leader",
    "1 while this orchestrator process holds the leader lock.",
    multiprocess_mode="max",
)


def observe_pass(report: PassReport) -> None:
    RECONCILE_SECONDS.observe(report.seconds)
    ADMISSIONS.inc(report.admitted)
    PREEMPTIONS.inc(report.preempted)
    PLACEMENTS.inc(report.placed)
    WORKERS_STARTED.inc(report.started)
    WORKERS_LOST.inc(report.lost)
    ORPHANS.inc(report.orphans)


_STATE_FAMILIES = (
    (
        "ironbowl_inference_slots_used",
        "Slots in use, by pool and GPU class.",
        ["pool", "gpu_class"],
    ),
    (
        "ironbowl_inference_slots_free",
        "Free slots on ready workers, by pool and GPU class.",
        ["pool", "gpu_class"],
    ),
    ("ironbowl_inference_workers", "Workers by pool and state.", ["pool", "state"]),
    ("ironbowl_inference_queue_length", "Queued workloads by priority.", ["priority"]),
    (
        "ironbowl_inference_queue_oldest_age_seconds",
        "Age of the oldest queued workload by priority.",
        ["priority"],
    ),
    (
        "ironbowl_inference_workers_unschedulable",
        "Starting workers the cluster cannot place (a capacity alert), by pool.",
        ["pool"],
    ),
)


class InferenceStateCollector(Collector):
    """Slots and queues, computed from the database at scrape time."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Names only, so that registering the collector does not query the database."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return tuple(
            GaugeMetricFamily(name, help_text, labels=labels)
            for name, help_text, labels in _STATE_FAMILIES
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "ironbowl_inference_state_up",
            "1 when the inference figures below could be read from the database.",
        )
        try:
            families = list(self._read())
        except DatabaseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[GaugeMetricFamily]:
        from inference.models import (
            ON_WORKER_STATES,
            Priority,
            Worker,
            WorkerPool,
            WorkerState,
            Workload,
            WorkloadState,
        )

        used, free, workers, queued, oldest, unschedulable = self._families()
        pools = {pool.id: pool for pool in WorkerPool.objects.all()}
        ready_slots = dict(
            Worker.objects.unscoped_dangerously()
            .filter(state=WorkerState.READY)
            .values_list("pool_id")
            .annotate(slots=Sum("slots"))
        )
        in_use = dict(
            Workload.objects.unscoped_dangerously()
            .filter(state__in=ON_WORKER_STATES)
            .values_list("pool_id")
            .annotate(slots=Sum("slots"))
        )
        by_state = {
            (pool_id, state): n
            for pool_id, state, n in Worker.objects.unscoped_dangerously()
            .exclude(state=WorkerState.GONE)
            .values_list("pool_id", "state")
            .annotate(n=Count("id"))
        }
        stuck = dict(
            Worker.objects.unscoped_dangerously()
            .filter(state=WorkerState.STARTING, reason="Unschedulable")
            .values_list("pool_id")
            .annotate(n=Count("id"))
        )
        for pool_id, pool in pools.items():
            used.add_metric([pool.name, pool.gpu_class], in_use.get(pool_id, 0))
            free.add_metric(
                [pool.name, pool.gpu_class],
                max(ready_slots.get(pool_id, 0) - in_use.get(pool_id, 0), 0),
            )
            for state in (WorkerState.STARTING, WorkerState.READY, WorkerState.DRAINING):
                workers.add_metric([pool.name, state.value], by_state.get((pool_id, state), 0))
            unschedulable.add_metric([pool.name], stuck.get(pool_id, 0))
        now = timezone.now()
        waiting = {
            priority: (n, first)
            for priority, n, first in Workload.objects.unscoped_dangerously()
            .filter(state=WorkloadState.QUEUED)
            .values_list("priority")
            .annotate(n=Count("id"), first=Min("created_at"))
        }
        for priority in Priority:
            n, first = waiting.get(priority.value, (0, None))
            label = priority.name.lower()
            queued.add_metric([label], n)
            oldest.add_metric([label], (now - first).total_seconds() if first else 0.0)
        yield from (used, free, workers, queued, oldest, unschedulable)
