"""The control plane's side of the worker protocol (see `inference.contracts`).

A worker authenticates with the token the orchestrator gave it. Reports are idempotent by their
report id and fenced by the attempt: a report for an attempt the workload has moved on from is
"stale" — its usage still counts (the GPU time was spent), its progress and result do not.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from inference import signals, spec_secrets
from inference.contracts import (
    Heartbeat,
    Registration,
    Report,
    ReportOutcome,
    ScriptUpdate,
    Usage,
    script_version,
)
from inference.lifecycle import requeue, transition
from inference.models import (
    FINAL_STATES,
    ON_WORKER_STATES,
    ProcessedReport,
    UsageReport,
    Worker,
    WorkerState,
    Workload,
    WorkloadEvent,
    WorkloadKind,
    WorkloadState,
)
from inference.tokens import hash_token


def worker_for_token(token: str) -> Worker | None:
    """The live worker holding this token; a retired worker's token no longer works."""
    if not token:
        return None
    return (
        Worker.objects.unscoped_dangerously()
        .select_related("pool", "organization")
        .filter(token_hash=hash_token(token))
        .exclude(state=WorkerState.GONE)
        .first()
    )


def register(worker: Worker, registration: Registration) -> None:
    """The worker is up. A starting worker becomes ready; one drained meanwhile stays draining."""
    now = timezone.now()
    rows = Worker.objects.unscoped_dangerously().filter(pk=worker.pk)
    rows.update(last_heartbeat_at=now, metrics_url=registration.metrics_url[:300])
    rows.filter(state=WorkerState.STARTING).update(
        state=WorkerState.READY, ready_at=now, reason="", message=""
    )
    worker.refresh_from_db()


def heartbeat(worker: Worker, beat: Heartbeat) -> tuple[bool, list[str]]:
    """Record the beat; answer whether to drain and which running workloads to stop."""
    worker.last_heartbeat_at = timezone.now()
    worker.slots_used = max(0, min(beat.slots_used, worker.slots))
    worker.save(update_fields=["last_heartbeat_at", "slots_used"])
    mine = {
        str(pk)
        for pk in Workload.objects.for_organization(worker.organization)
        .filter(worker=worker, state__in=ON_WORKER_STATES)
        .values_list("id", flat=True)
    }
    cancel = [workload_id for workload_id in beat.running if workload_id not in mine]
    return worker.state == WorkerState.DRAINING, cancel


def script_updates(worker: Worker, beat: Heartbeat) -> dict[str, dict[str, Any]]:
    """Newer scripts for the live workloads the worker runs, by workload id: for each one the
    worker says it holds an older version of (a worker that says nothing gets nothing)."""
    asked = [workload_id for workload_id in beat.running if workload_id in beat.scripts]
    if not asked:
        return {}
    updates = {}
    for workload_id, spec in (
        Workload.objects.for_organization(worker.organization)
        .filter(id__in=asked, worker=worker, kind=WorkloadKind.LIVE, state__in=ON_WORKER_STATES)
        .values_list("id", "spec")
    ):
        version, segments = script_version(spec), spec.get("segments")
        if version > beat.scripts[str(workload_id)]:
            update = ScriptUpdate(version, tuple(segments) if isinstance(segments, list) else ())
            updates[str(workload_id)] = update.to_json()
    return updates


def assignments(worker: Worker) -> list[Workload]:
    """Workloads placed on this worker that it has not reported on yet. A lost reply loses
    nothing: the same assignments come back until the worker reports."""
    if worker.state != WorkerState.READY:
        return []
    return list(
        Workload.objects.for_organization(worker.organization)
        .filter(worker=worker, state=WorkloadState.PLACED)
        .select_related("pool")
        .order_by("-priority", "placed_at")
    )


def assignments_with_specs(worker: Worker) -> list[tuple[Workload, dict[str, Any]]]:
    """The assignments with the specs their worker receives: credentials the platform named by
    reference resolved (`spec_secrets.for_worker`). A workload whose credential cannot be had
    fails, saying why, instead of going to the worker without it."""
    given = []
    for workload in assignments(worker):
        try:
            spec = spec_secrets.for_worker(workload)
        except LookupError as missing:
            transition(workload, WorkloadState.FAILED, "secret_unavailable", str(missing))
            continue
        given.append((workload, spec))
    return given


def apply_reports(worker: Worker, reports: list[Report]) -> dict[str, ReportOutcome]:
    ids = {report.workload_id for report in reports}
    workloads = {
        str(w.id): w
        for w in Workload.objects.for_organization(worker.organization).filter(id__in=ids)
    }
    outcomes: dict[str, ReportOutcome] = {}
    for report in reports:
        workload = workloads.get(report.workload_id)
        outcomes[report.report_id] = (
            "stale" if workload is None else _apply(worker, workload, report)
        )
    return outcomes


def _held(worker: Worker, workload: Workload, attempt: int) -> bool:
    """Whether this worker was given this attempt of the workload (now or earlier)."""
    if workload.worker_id == worker.id and workload.attempts == attempt:
        return True
    return (
        WorkloadEvent.objects.for_organization(worker.organization)
        .filter(workload=workload, state=WorkloadState.PLACED, worker=worker, attempt=attempt)
        .exists()
    )


def _apply(worker: Worker, workload: Workload, report: Report) -> ReportOutcome:
    if not _held(worker, workload, report.attempt):
        return "stale"  # never this worker's: not even its usage counts
    try:
        with transaction.atomic():
            ProcessedReport.objects.create(workload=workload, report_id=report.report_id)
            workload = (
                Workload.objects.for_organization(worker.organization)
                .select_for_update()
                .get(id=workload.id)
            )
            if report.usage is not None:
                _record_usage(worker, workload, report.report_id, report.usage)
            current = (
                workload.worker_id == worker.id
                and workload.attempts == report.attempt
                and workload.state in ON_WORKER_STATES
            )
            if not current:
                return "stale"
            if report.kind == "result":
                _finish(workload, report)
            elif workload.state == WorkloadState.PLACED:
                transition(workload, WorkloadState.RUNNING, progress=_clamp(report.progress))
                if report.message:  # the transition announced the state; this, the words
                    signals.announce(workload, report.message)
            elif report.progress is not None:
                workload.progress = _clamp(report.progress)
                workload.save(update_fields=["progress"])
                signals.announce(workload, report.message)
    except IntegrityError:
        return "duplicate"
    return "accepted"


def _clamp(progress: float | None) -> float:
    return 0.0 if progress is None else max(0.0, min(1.0, float(progress)))


def _record_usage(worker: Worker, workload: Workload, report_id: str, usage: Usage) -> None:
    stored = UsageReport.objects.create(
        organization_id=workload.organization_id,
        report_id=report_id,
        workload=workload,
        worker=worker,
        gpu_class=worker.pool.gpu_class,
        stream_minutes=max(usage.stream_minutes, 0.0),
        gpu_seconds=max(usage.gpu_seconds, 0.0),
        rendered_seconds=max(usage.rendered_seconds, 0.0),
        interactions=max(usage.interactions, 0),
    )
    signals.announce_usage(stored)


def _finish(workload: Workload, report: Report) -> None:
    output: dict[str, Any] = dict(report.output)
    if report.status == "succeeded":
        transition(workload, WorkloadState.SUCCEEDED, progress=1.0, result=output)
    else:
        reason = report.reason or "The worker reported a failure without a reason."
        transition(workload, WorkloadState.FAILED, "pipeline_failed", reason, result=output)


def release(worker: Worker) -> int:
    """The worker leaves: what it still held goes back to the queue. Returns how many."""
    with transaction.atomic():
        held = list(
            Workload.objects.for_organization(worker.organization).filter(
                worker=worker, state__in=ON_WORKER_STATES
            )
        )
        for workload in held:
            requeue(
                workload,
                "worker_released",
                "Its worker shut down before finishing.",
                counts_as_failure=False,
            )
        if worker.state != WorkerState.DRAINING:  # a drained worker keeps why it was drained
            worker.reason = "Released"
        worker.state, worker.gone_at = WorkerState.GONE, timezone.now()
        worker.save(update_fields=["state", "reason", "gone_at"])
    return len(held)


def is_final(workload: Workload) -> bool:
    return workload.state in FINAL_STATES
