"""Workload state changes, each written with its reason and a history event.

Every change of a workload's state goes through `transition`, so that the reason a person reads
("waiting: the plan's 2 h100 slots are in use") and the history always agree.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

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
) -> None:
    """Move a workload to `state`, saving only what changed, and record the event."""
    now = timezone.now()
    changed = ["state", "reason_code", "reason", *fields]
    workload.state, workload.reason_code, workload.reason = state, reason_code, reason
    for name, value in fields.items():
        setattr(workload, name, value)
    stamp = _TIMESTAMP.get(WorkloadState(state))
    if stamp and stamp not in fields:
        setattr(workload, stamp, now)
        changed.append(stamp)
    workload.save(update_fields=changed)
    WorkloadEvent.objects.create(
        organization_id=workload.organization_id,
        workload=workload,
        state=state,
        reason_code=reason_code,
        reason=reason,
    )


def set_waiting_reason(workload: Workload, reason_code: str, reason: str) -> bool:
    """Say why a queued or admitted workload still waits; writes only when the reason changed."""
    if (workload.reason_code, workload.reason) == (reason_code, reason):
        return False
    workload.reason_code, workload.reason = reason_code, reason
    workload.save(update_fields=["reason_code", "reason"])
    return True


def requeue(workload: Workload, reason_code: str, reason: str, *, counts_as_failure: bool) -> None:
    """Take a workload off its worker and queue it again, or fail it when it has used up its
    attempts. A preempted workload was not at fault: it does not use up an attempt."""
    if workload.state in FINAL_STATES:
        return
    if counts_as_failure and workload.attempts >= workload.max_attempts:
        transition(
            workload,
            WorkloadState.FAILED,
            reason_code,
            f"{reason} (gave up after {workload.attempts} attempts)",
            worker=None,
        )
        return
    if reason_code == "preempted":
        WorkloadEvent.objects.create(
            organization_id=workload.organization_id,
            workload=workload,
            state=WorkloadState.PREEMPTED,
            reason_code=reason_code,
            reason=reason,
        )
    transition(workload, WorkloadState.QUEUED, reason_code, reason, worker=None, progress=0.0)


def start_draining(worker: Worker, reason: str, message: str) -> bool:
    """Tell a worker (at its next heartbeat) to take nothing new, finish, release and leave.
    Writes only when the worker was not draining already."""
    if worker.state not in (WorkerState.STARTING, WorkerState.READY):
        return False
    worker.state, worker.reason, worker.message = WorkerState.DRAINING, reason, message
    worker.draining_since = timezone.now()
    worker.save(update_fields=["state", "reason", "message", "draining_since"])
    return True
