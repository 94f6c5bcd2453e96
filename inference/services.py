"""Actions on inference that other packages and the API call: submit and cancel workloads,
update a live workload's script, reserve capacity, drain a worker. Every change is one
transaction. Also what workers measure of their live streams (frames/s), kept for the console's
on-air board."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from inference.contracts import script_version
from inference.lifecycle import start_draining, transition
from inference.models import (
    DEFAULT_PRIORITY,
    FINAL_STATES,
    KIND_PIPELINE,
    ON_WORKER_STATES,
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
from inference.signals import stream_stats_reported
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization
from tenants.signals import send_after_commit

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


# --- Stream stats (the console's on-air board) ----------------------------------------------------

# Heartbeats a measurement stays: older numbers say nothing about the stream now.
STREAM_STATS_HEARTBEATS = 3


def _stream_stats_key(organization_id: object, workload_id: object) -> str:
    return f"inference:stream-stats:{organization_id}:{workload_id}"


def record_stream_stats(worker: Worker, stats: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Keep what a worker measured of the workloads it runs (`{"fps": frames/s sent}` by
    workload id) for a few heartbeats, in the cache the web processes share. Numbers for
    workloads that are not on this worker are dropped. Returns the workload ids kept."""
    if not stats:
        return []
    mine = sorted(
        str(pk)
        for pk in Workload.objects.for_organization(worker.organization)
        .filter(worker=worker, state__in=ON_WORKER_STATES, id__in=list(stats))
        .values_list("id", flat=True)
    )
    if not mine:
        return []
    at = timezone.now().isoformat()
    cache.set_many(
        {
            _stream_stats_key(worker.organization_id, workload_id): {
                "fps": round(float(stats[workload_id]["fps"]), 2),
                "at": at,
            }
            for workload_id in mine
        },
        timeout=max(10, round(settings.INFERENCE_HEARTBEAT_INTERVAL_S * STREAM_STATS_HEARTBEATS)),
    )
    send_after_commit(
        stream_stats_reported,
        Workload,
        "stream_stats_receiver_failed",
        organization_id=worker.organization_id,
        workload_ids=mine,
    )
    return mine


def stream_stats(
    organization_id: object, workload_ids: Iterable[object]
) -> dict[str, dict[str, Any]]:
    """The latest stats workers reported of these workloads of the organization, by workload
    id; a workload whose worker said nothing lately is left out."""
    keys = {_stream_stats_key(organization_id, pk): str(pk) for pk in workload_ids}
    if not keys:
        return {}
    found = cache.get_many(list(keys))
    return {keys[key]: value for key, value in found.items()}
