"""Workload state changes, each written with its reason and a history event.

Every change of a workload's state goes through `transition`, so that the reason a person reads
("waiting: the plan's 2 h100 slots are in use") and the history always agree.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from inference import signals
from inference.models import (
    FINAL_STATES,
    Worker,
    WorkerState,
    Workload,
    WorkloadEvent,
    WorkloadState,
)

_TIMESTAMP = {
    WorkloadState.ADMITTED: "admitted_at",
    WorkloadState.PLACED: "placed_at",
    WorkloadState.RUNNING: "started_at",
    WorkloadState.SUCCEEDED: "finished_at",
    WorkloadState.FAILED: "finished_at",
    WorkloadState.CANCELLED: "finished_at",
    WorkloadState.PREEMPTED: "finished_at",
}


def transition(
    workload: Workload, state: str, reason_code: str = "", reason: str = "", **fields: Any
) -> bool:
    """Move a workload to `state` and record the event — only if it is still in the state the
    caller saw (compare and set), so that the orchestrator never undoes a concurrent cancel or a
    worker's result. Returns False, with the workload reloaded, when someone else got there."""
    values: dict[str, Any] = {"state": state, "reason_code": reason_code, "reason": reason}
    values.update(fields)
    stamp = _TIMESTAMP.get(WorkloadState(state))
    if stamp and stamp not in values:
        values[stamp] = timezone.now()
    moved = (
        Workload.objects.unscoped_dangerously()
        .filter(pk=workload.pk, state=workload.state)
        .update(**values)
    )
    if not moved:
        workload.refresh_from_db()
        return False
    for name, value in values.items():
        setattr(workload, name, value)
    WorkloadEvent.objects.create(
        organization_id=workload.organization_id,
        workload=workload,
        state=state,
        reason_code=reason_code,
        reason=reason,
        worker_id=workload.worker_id if state == WorkloadState.PLACED else None,
        attempt=workload.attempts,
    )
    signals.announce(workload)
    return True


def set_waiting_reason(workload: Workload, reason_code: str, reason: str) -> bool:
    """Say why a queued or admitted workload still waits; writes only when the reason changed,
    and only while the workload is still in the state the caller saw."""
    if (workload.reason_code, workload.reason) == (reason_code, reason):
        return False
    workload.reason_code, workload.reason = reason_code, reason
    return bool(
        Workload.objects.unscoped_dangerously()
        .filter(pk=workload.pk, state=workload.state)
        .update(reason_code=reason_code, reason=reason)
    )


def requeue(workload: Workload, reason_code: str, reason: str, *, counts_as_failure: bool) -> bool:
    """Take a workload off its worker and queue it again, or fail it when it has failed too
    often. A preempted or released workload was not at fault: that is not a failure."""
    if workload.state in FINAL_STATES:
        return False
    if counts_as_failure and workload.failures + 1 >= workload.max_attempts:
        return transition(
            workload,
            WorkloadState.FAILED,
            reason_code,
            f"{reason} Gave up after {workload.failures + 1} failed attempts.",
            worker=None,
            failures=workload.failures + 1,
        )
    extra = {"failures": workload.failures + 1} if counts_as_failure else {}
    with transaction.atomic():
        if reason_code == "preempted":
            WorkloadEvent.objects.create(
                organization_id=workload.organization_id,
                workload=workload,
                state=WorkloadState.PREEMPTED,
                reason_code=reason_code,
                reason=reason,
                attempt=workload.attempts,
            )
        moved = transition(
            workload,
            WorkloadState.QUEUED,
            reason_code,
            f"{reason} Queued again; it resumes when capacity frees.",
            worker=None,
            progress=0.0,
            **extra,
        )
        if not moved:
            transaction.set_rollback(True)  # no preemption event for a move that did not happen
        return moved


def start_draining(worker: Worker, reason: str, message: str) -> bool:
    """Tell a worker (at its next heartbeat) to take nothing new, finish, release and leave.
    Writes only when the worker was not draining already."""
    if worker.state not in (WorkerState.STARTING, WorkerState.READY):
        return False
    return set_worker_state(worker, WorkerState.DRAINING, reason, message, draining_since=True)


def set_worker_state(
    worker: Worker, state: str, reason: str, message: str, *, draining_since: bool = False
) -> bool:
    """Compare and set a worker's state: a worker that released itself meanwhile stays gone."""
    now = timezone.now()
    values: dict[str, Any] = {"state": state, "reason": reason, "message": message}
    if draining_since:
        values["draining_since"] = now
    if state == WorkerState.GONE:
        values["gone_at"] = now
    moved = (
        Worker.objects.unscoped_dangerously()
        .filter(pk=worker.pk, state=worker.state)
        .update(**values)
    )
    if not moved:
        worker.refresh_from_db()
        return False
    for name, value in values.items():
        setattr(worker, name, value)
    return True
