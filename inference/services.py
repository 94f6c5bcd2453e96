"""Actions on inference that other packages and the API call: submit and cancel workloads,
update a live workload's script, reserve capacity, drain a worker. Every change is one
transaction."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from inference.contracts import script_version
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
from inference.pipelines.script import parse_script
from inference.pipelines.types import StageError
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

SPEC_MAX_BYTES = 64 * 1024


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
    platform: bool = False,
) -> tuple[Workload, bool]:
    """Queue a workload. With an idempotency key, submitting again returns the first one
    (created=False) instead of queueing twice. `platform`: the platform submits it itself, so
    the credential references it put in the spec are resolved for the worker (never for a
    spec from the API: `inference.spec_secrets`)."""
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
                platform_submitted=platform,
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


def update_script(
    workload: Workload, segments: list[dict[str, Any]], base_version: int | None = None
) -> tuple[Workload, bool]:
    """Give a live workload that has not ended a new script, one version up; its worker gets it
    with its next heartbeat and puts it on air at the next segment boundary. Sending the script
    it already has changes nothing (changed=False), so a retried request is harmless. With
    `base_version`, the update is refused if someone else changed the script since."""
    with transaction.atomic():
        workload = (
            Workload.objects.for_organization(workload.organization)
            .select_for_update()
            .get(id=workload.id)
        )
        if workload.kind != WorkloadKind.LIVE:
            raise ConflictError(
                "not_live",
                _("Only a live workload has a script; this one is a %(kind)s workload.")
                % {"kind": workload.kind},
            )
        if workload.state in FINAL_STATES:
            raise ConflictError(
                "workload_ended",
                _("This workload has ended (%(state)s); its script can no longer change.")
                % {"state": workload.get_state_display()},
            )
        spec = dict(workload.spec)
        current = script_version(spec)
        try:
            script = parse_script(current + 1, segments)
        except StageError as error:
            raise DomainError("invalid_script", str(error), field="segments") from error
        if script.segments_json() == _segments_of(spec):
            return workload, False
        if base_version is not None and base_version != current:
            raise ConflictError(
                "script_changed",
                _(
                    "The script is at version %(current)s, not %(base)s: it changed meanwhile. "
                    "Read the workload again and send your update on top of it."
                )
                % {"current": current, "base": base_version},
                field="base_version",
            )
        spec.update(segments=script.segments_json(), script_version=script.version)
        size = len(json.dumps(spec, ensure_ascii=False).encode())
        if size > SPEC_MAX_BYTES:
            raise DomainError(
                "spec_too_large",
                _("With this script the spec would be %(size)s bytes; at most %(limit)s.")
                % {"size": size, "limit": SPEC_MAX_BYTES},
                field="segments",
            )
        workload.spec = spec
        workload.save(update_fields=["spec"])
    return workload, True


def _segments_of(spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The spec's segments as `update_script` stores them; None when they are not a script."""
    try:
        return parse_script(script_version(spec), spec.get("segments")).segments_json()
    except StageError:
        return None


def drain(worker: Worker) -> Worker:
    """Stop giving a worker new work; the orchestrator stops it once it is empty."""
    start_draining(worker, "Drained", "Drained by an operator.")
    return worker
