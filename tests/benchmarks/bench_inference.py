"""Benchmark: the inference control plane — reconcile, admission and the capacity calendar.

1. One reconcile pass over 5,000 running workloads on 1,500 workers (300 organizations, three
   pools) against the in-memory backend of the tests (the cluster is what cannot run here; its
   API calls are counted instead): the first pass that places everything, a pass after 1% of the
   workloads finished, and the steady state, which must write nothing — database statements and
   backend calls are counted. There is one kind of pass: each recomputes what should run from the
   database (reads) and writes only what differs, so the cost of a pass follows the change.
2. Admitting 10,000 queued workloads of 500 organizations in one admission pass.
3. Capacity-calendar answers ("can org X have N slots of class Y from t1 to t2") over 14 days ×
   5,000 reservations: the indexed sweep over overlapping reservations (what `capacity.check`
   does) against a full recompute over every reservation of the class, and the 14-day hourly
   platform calendar.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from inference import admission, capacity
from inference.backends.base import ObservedWorker
from inference.models import (
    Reservation,
    Worker,
    WorkerPool,
    Workload,
    WorkloadState,
)
from inference.reconcile import Reconciler
from tenants.models import Organization
from tests.benchmarks.bench_api import BenchmarkSection
from tests.inference.fakes import FakeBackend

WORKLOADS, WORKERS, ORGANIZATIONS = 5_000, 1_500, 300
QUEUED, QUEUE_ORGANIZATIONS = 10_000, 500
RESERVATIONS, HORIZON_DAYS, QUERIES = 5_000, 14, 300
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def _orgs(prefix: str, count: int) -> list[Organization]:
    Organization.objects.bulk_create(
        Organization(slug=f"{prefix}-{i}", name=f"{prefix} {i}", plan="enterprise")
        for i in range(count)
    )
    return list(Organization.objects.filter(slug__startswith=f"{prefix}-").order_by("slug"))


def _pools(prefix: str, maximum: int) -> list[WorkerPool]:
    specs = (("live", "h100", 4), ("converse", "l4", 8), ("render", "l4", 4))
    return [
        WorkerPool.objects.create(
            name=f"{prefix}-{pipeline}", pipeline=pipeline, gpu_class=gpu, gpus_per_worker=1,
            slots_per_worker=slots, image="bench", maximum=maximum,
        )
        for pipeline, gpu, slots in specs
    ]  # fmt: skip


class _Statements:
    """Counts the SQL statements run, and those that write, without keeping them."""

    def __init__(self) -> None:
        self.total = self.writes = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.total += 1
        if sql.lstrip().upper().startswith(WRITE_VERBS):
            self.writes += 1
        return execute(sql, params, many, context)


def _timed(action: Callable[[], Any]) -> tuple[float, _Statements, Any]:
    statements = _Statements()
    with connection.execute_wrapper(statements):
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
    return seconds, statements, result


def _reconcile() -> dict[str, Any]:
    orgs = _orgs("rec", ORGANIZATIONS)
    pools = _pools("rec", maximum=WORKERS)
    backend = FakeBackend()
    reconciler = Reconciler(backend)
    now = timezone.now()
    rng = random.Random(4)
    # 1,500 ready workers (5 per organization), registered and beating.
    workers = []
    for index in range(WORKERS):
        org, pool = orgs[index % ORGANIZATIONS], pools[index % len(pools)]
        workers.append(
            Worker(
                organization=org, pool=pool, backend_id=f"ibw-bench-{index}", state="ready",
                slots=pool.slots_per_worker, token_hash=uuid.uuid4().hex, ready_at=now,
                last_heartbeat_at=now,
            )
        )  # fmt: skip
        backend.workers[f"ibw-bench-{index}"] = backend_worker(org.slug, pool.name, index)
    Worker.objects.unscoped_dangerously().bulk_create(workers, batch_size=500)
    # 5,000 admitted workloads that fit on those workers exactly as they are.
    load = []
    per_worker = {w.backend_id: 0 for w in workers}
    by_key: dict[tuple[Any, int], list[Worker]] = {}
    for worker in workers:
        by_key.setdefault((worker.organization_id, worker.pool_id), []).append(worker)
    keys = list(by_key)
    while len(load) < WORKLOADS:
        org_id, pool_id = rng.choice(keys)
        pool = next(p for p in pools if p.id == pool_id)
        room = [w for w in by_key[(org_id, pool_id)] if per_worker[w.backend_id] < w.slots]
        if not room:
            continue
        per_worker[room[0].backend_id] += 1
        load.append(
            Workload(
                organization_id=org_id, kind="session", pool=pool, priority=30, slots=1,
                state=WorkloadState.ADMITTED, admitted_at=now,
            )
        )  # fmt: skip
    Workload.objects.unscoped_dangerously().bulk_create(load, batch_size=1_000)

    full_s, full_q, full = _timed(reconciler.run_once)
    full_calls = backend.writes
    settle = 0
    while not reconciler.run_once().idle and settle < 5:  # stop the idle workers it drained
        settle += 1
    # 1% finish; the next pass frees their slots (and places nothing new).
    finished = list(
        Workload.objects.unscoped_dangerously().filter(state="placed").values_list("id", flat=True)
    )[: WORKLOADS // 100]
    Workload.objects.unscoped_dangerously().filter(id__in=finished).update(state="succeeded")
    Worker.objects.unscoped_dangerously().update(last_heartbeat_at=timezone.now())
    inc_s, inc_q, incremental = _timed(reconciler.run_once)
    settle = 0
    while not reconciler.run_once().idle and settle < 5:
        settle += 1
    calls_before = backend.writes
    Worker.objects.unscoped_dangerously().update(last_heartbeat_at=timezone.now())
    steady = [_timed(reconciler.run_once) for _ in range(5)]
    steady_s = statistics.median(s for s, _q, _r in steady)
    steady_queries = steady[0][1].total
    return {
        "workloads": WORKLOADS,
        "workers": WORKERS,
        "organizations": ORGANIZATIONS,
        "full_pass_s": full_s,
        "full_pass_queries": full_q.total,
        "full_pass_db_writes": full_q.writes,
        "full_pass_placed": full.placed,
        "full_pass_backend_writes": full_calls,
        "incremental_pass_s": inc_s,
        "incremental_pass_queries": inc_q.total,
        "incremental_pass_db_writes": inc_q.writes,
        "steady_pass_s": steady_s,
        "steady_pass_queries": steady_queries,
        "steady_pass_db_writes": sum(q.writes for _s, q, _r in steady),
        "steady_pass_backend_writes": backend.writes - calls_before,
        "steady_over_full": steady_s / full_s,
        "incremental_over_full": inc_s / full_s,
        "drained_in_incremental": incremental.drained,
    }


def backend_worker(org: str, pool: str, index: int) -> ObservedWorker:
    return ObservedWorker(f"ibw-bench-{index}", org, pool, "running")


def _admission() -> dict[str, Any]:
    orgs = _orgs("adm", QUEUE_ORGANIZATIONS)
    (live, converse, render) = _pools("adm", maximum=10_000)
    rng = random.Random(7)
    pools, kinds = (live, converse, render), ("live", "session", "render")
    Workload.objects.unscoped_dangerously().bulk_create(
        (
            Workload(
                organization=rng.choice(orgs), kind=kinds[i % 3], pool=pools[i % 3],
                priority=(40, 30, 20)[i % 3], slots=1, state=WorkloadState.QUEUED,
            )
            for i in range(QUEUED)
        ),
        batch_size=1_000,
    )  # fmt: skip
    seconds, queries, result = _timed(admission.admit)
    again_s, again_q, again = _timed(admission.admit)
    return {
        "queued": QUEUED,
        "organizations": QUEUE_ORGANIZATIONS,
        "admit_s": seconds,
        "admitted": len(result.admitted),
        "per_workload_ms": seconds / QUEUED * 1000,
        "queries": queries.total,
        "db_writes": queries.writes,
        "second_pass_s": again_s,
        "second_pass_db_writes": again_q.writes,
        "second_pass_admitted": len(again.admitted),
    }


def _calendar() -> dict[str, Any]:
    orgs = _orgs("cal", 250)
    _pools("cal", maximum=2_000)
    rng = random.Random(11)
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    horizon = dt.timedelta(days=HORIZON_DAYS)
    rows = []
    for i in range(RESERVATIONS):
        begins = start + dt.timedelta(minutes=rng.randrange(0, HORIZON_DAYS * 24 * 60, 15))
        rows.append(
            Reservation(
                organization=rng.choice(orgs), gpu_class="h100", slots=rng.randint(1, 2),
                starts_at=begins, ends_at=begins + dt.timedelta(hours=rng.choice((1, 2, 4, 8))),
                holder=f"shift:{i}",
            )
        )  # fmt: skip
    Reservation.objects.unscoped_dangerously().bulk_create(rows, batch_size=1_000)
    windows = []
    for _ in range(QUERIES):
        begins = start + dt.timedelta(minutes=rng.randrange(0, HORIZON_DAYS * 24 * 60, 15))
        windows.append((rng.choice(orgs), begins, begins + dt.timedelta(hours=2)))

    def indexed(org: Organization, t1: dt.datetime, t2: dt.datetime) -> int:
        return capacity.check(org, "h100", 1, t1, t2).class_peak

    def full(org: Organization, t1: dt.datetime, t2: dt.datetime) -> int:
        every = Reservation.objects.unscoped_dangerously().filter(gpu_class="h100")
        intervals = list(every.values_list("starts_at", "ends_at", "slots"))
        return capacity.peak(intervals, t1, t2)

    samples: dict[str, list[float]] = {"indexed": [], "full": []}
    for org, t1, t2 in windows:  # interleaved, so that load falls on both alike
        for name, answer in (("indexed", indexed), ("full", full)):
            began = time.perf_counter()
            value = answer(org, t1, t2)
            samples[name].append(time.perf_counter() - began)
            samples.setdefault(f"{name}_values", []).append(value)
    assert samples["indexed_values"] == samples["full_values"]  # the same answers
    month_s, _q, steps = _timed(
        lambda: capacity.calendar("h100", start, start + horizon, dt.timedelta(hours=1))
    )
    p50 = {name: statistics.median(samples[name]) * 1000 for name in ("indexed", "full")}
    p99 = {
        name: statistics.quantiles(samples[name], n=100, method="inclusive")[98] * 1000
        for name in ("indexed", "full")
    }
    return {
        "reservations": RESERVATIONS,
        "horizon_days": HORIZON_DAYS,
        "answers": QUERIES,
        "indexed_p50_ms": p50["indexed"],
        "indexed_p99_ms": p99["indexed"],
        "full_p50_ms": p50["full"],
        "full_p99_ms": p99["full"],
        "indexed_over_full": p50["indexed"] / p50["full"],
        "calendar_14d_hourly_s": month_s,
        "calendar_steps": len(steps),
    }


def run() -> BenchmarkSection:
    with transaction.atomic():
        reconcile = _reconcile()
        transaction.set_rollback(True)
    with transaction.atomic():
        admit = _admission()
        transaction.set_rollback(True)
    with transaction.atomic():
        calendar = _calendar()
        transaction.set_rollback(True)
    data = {"reconcile": reconcile, "admission": admit, "calendar": calendar}
    return BenchmarkSection(
        name="inference",
        title="Inference: reconcile, admission, capacity calendar",
        markdown=_markdown(data),
        data=data,
    )


def _markdown(data: dict[str, Any]) -> str:
    r, a, c = data["reconcile"], data["admission"], data["calendar"]
    return "\n".join(
        [
            f"Reconcile over {r['workloads']:,} workloads on {r['workers']:,} workers of "
            f"{r['organizations']} organizations (in-memory backend; its calls are counted).",
            "",
            "| pass (each recomputes, writes only the difference) | time | queries | DB writes "
            "| backend writes | vs first |",
            "|---|---:|---:|---:|---:|---:|",
            f"| first (places all) | {r['full_pass_s'] * 1000:.0f} ms | {r['full_pass_queries']:,} "
            f"| {r['full_pass_db_writes']:,} | {r['full_pass_backend_writes']} | 1.00× |",
            f"| after 1% finished | {r['incremental_pass_s'] * 1000:.0f} ms | "
            f"{r['incremental_pass_queries']:,} | {r['incremental_pass_db_writes']:,} | – | "
            f"{r['incremental_over_full']:.3f}× |",
            f"| steady state (median of 5) | {r['steady_pass_s'] * 1000:.0f} ms | "
            f"{r['steady_pass_queries']} | {r['steady_pass_db_writes']} | "
            f"{r['steady_pass_backend_writes']} | {r['steady_over_full']:.3f}× |",
            "",
            f"Admission of {a['queued']:,} queued workloads of {a['organizations']} organizations: "
            f"{a['admit_s']:.2f} s ({a['per_workload_ms']:.3f} ms each), {a['admitted']:,} "
            f"admitted, {a['queries']:,} queries, {a['db_writes']:,} writes (a state change and "
            f"a history event per workload). A second pass over the empty queue: "
            f"{a['second_pass_s'] * 1000:.1f} ms, {a['second_pass_db_writes']} writes.",
            "",
            f"Capacity calendar, {c['reservations']:,} reservations over {c['horizon_days']} days, "
            f"{c['answers']} answers for 2-hour windows (same answers from both):",
            "",
            "| answer | p50 | p99 | vs full |",
            "|---|---:|---:|---:|",
            f"| indexed sweep of overlapping reservations | {c['indexed_p50_ms']:.2f} ms | "
            f"{c['indexed_p99_ms']:.2f} ms | {c['indexed_over_full']:.3f}× |",
            f"| full recompute over every reservation | {c['full_p50_ms']:.2f} ms | "
            f"{c['full_p99_ms']:.2f} ms | 1.00× |",
            "",
            f"Platform calendar for 14 days, hourly ({c['calendar_steps']} steps): "
            f"{c['calendar_14d_hourly_s'] * 1000:.0f} ms.",
        ]
    )
