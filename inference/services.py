"""Actions on inference that other packages and the API call: submit and cancel workloads,
reserve capacity, drain a worker. Every change is one transaction."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from inference.lifecycle import start_draining, transition
from inference.models import (
    DEFAULT_PRIORITY,
    FINAL_STATES,
    KIND_PIPELINE,
    Priority,
    Reservation,
    Worker,
    WorkerPool,
    Workload,
    WorkloadKind,
    WorkloadState,
)
from tenants.models import Organization


class InferenceError(ValueError):
    """A request inference cannot take; the message says what to change."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def pool_for(kind: str, pool_name: str | None = None, gpu_class: str | None = None) -> WorkerPool:
    """The pool a workload runs in: the one named, else the first active pool of the kind's
    pipeline (of the GPU class asked for, if any)."""
    pools = WorkerPool.objects.filter(is_active=True)
    if pool_name:
        pool = pools.filter(name=pool_name).first()
        if pool is None:
            raise InferenceError(_("There is no active pool named %s.") % pool_name, "pool")
        return pool
    pools = pools.filter(pipeline=KIND_PIPELINE[WorkloadKind(kind)])
    if gpu_class:
        pools = pools.filter(gpu_class=gpu_class)
    pool = pools.order_by("name").first()
    if pool is None:
        raise InferenceError(
            _("No active pool runs %(kind)s workloads%(on)s.")
            % {"kind": kind, "on": f" on {gpu_class}" if gpu_class else ""},
            "kind",
        )
    return pool


def submit(
    organization: Organization,
    *,
    kind: str,
    spec: dict[str, Any],
    slots: int = 1,
    pool_name: str | None = None,
    gpu_class: str | None = None,
    public_service: bool = False,
    idempotency_key: str = "",
    reservation: Reservation | None = None,
) -> tuple[Workload, bool]:
    """Queue a workload. With an idempotency key, submitting again returns the first one
    (created=False) instead of queueing twice."""
    if idempotency_key:
        existing = (
            Workload.objects.for_organization(organization)
            .filter(idempotency_key=idempotency_key)
            .first()
        )
        if existing:
            return existing, False
    pool = pool_for(kind, pool_name, gpu_class)
    if slots > pool.slots_per_worker:
        raise InferenceError(
            _("A %(pool)s worker has %(n)s slots; ask for at most that many.")
            % {"pool": pool.name, "n": pool.slots_per_worker},
            "slots",
        )
    priority = (
        Priority.PUBLIC_SERVICE
        if public_service and kind == WorkloadKind.LIVE
        else DEFAULT_PRIORITY[WorkloadKind(kind)]
    )
    try:
        with transaction.atomic():
            workload = Workload.objects.create(
                organization=organization,
                kind=kind,
                pool=pool,
                priority=priority,
                slots=slots,
                spec=spec,
                idempotency_key=idempotency_key,
                reservation=reservation,
                reason_code="queued",
                reason="Waiting for the orchestrator's next admission pass.",
            )
            transition(workload, WorkloadState.QUEUED, "queued", workload.reason)
    except IntegrityError:  # a concurrent submit with the same key won
        return (
            Workload.objects.for_organization(organization).get(idempotency_key=idempotency_key),
            False,
        )
    return workload, True


def cancel(workload: Workload, reason: str) -> Workload:
    """Cancel a workload; its worker is told to stop at its next heartbeat. Cancelling a
    finished workload changes nothing."""
    with transaction.atomic():
        workload = (
            Workload.objects.for_organization(workload.organization)
            .select_for_update()
            .get(id=workload.id)
        )
        if workload.state not in FINAL_STATES:
            transition(workload, WorkloadState.CANCELLED, "cancelled", reason, worker=None)
    return workload


def drain(worker: Worker) -> Worker:
    """Stop giving a worker new work; the orchestrator stops it once it is empty."""
    start_draining(worker, "Drained", "Drained by an operator.")
    return worker
