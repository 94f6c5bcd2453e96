"""Avatar builds: start one from footage under a consent, follow its GPU work, cancel it.

A build is queued → running → succeeded, failed or cancelled. Starting one submits a `build`
workload to inference (once per build, at the priority inference gives builds). A GPU worker runs
the build pipeline (`inference.pipelines.build`): it fetches the footage through the worker
protocol, picks the portrait, derives the voice profile and delivers the bundle's parts. The
build follows its workload (`follow_workload`, called on `inference.signals.workload_changed`):
running with the worker's progress and stage; then succeeded — the parts become the bundle of
version n+1, the avatar's current version (`_publish`) — or failed with the reason in the
organization's language, or cancelled. A failure or a cancel leaves the avatar as it was: its
previous version stays current, its status goes back to ready (or draft when it never had a
version). Cancelling a build, or its consent lapsing, ends it at once and cancels its workload:
the worker stops at its next heartbeat and whatever it still delivers is refused. A worker that
dies is inference's to handle: the orchestrator queues the workload again (the build waits
again) and fails it after repeated losses. `sweep_builds` (the beat task
`avatars.requeue_stale_builds`) catches up builds whose workload ended while its signal was
missed, and fails builds that no workload runs.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars.models import (
    Avatar,
    AvatarBuild,
    AvatarStatus,
    AvatarVersion,
    BuildStatus,
    Consent,
    Upload,
    UploadPurpose,
    UploadStatus,
)
from inference import artifacts
from inference import services as inference
from inference.models import FINAL_STATES, Workload, WorkloadKind, WorkloadState
from inference.pipelines import build as build_pipeline
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)

ACTIVE = (BuildStatus.QUEUED, BuildStatus.RUNNING)
_WAITING = (WorkloadState.QUEUED, WorkloadState.ADMITTED, WorkloadState.PLACED)
REASON_MAX_LENGTH = 500
STAGE_MAX_LENGTH = 64
# A build that no workload runs (started before builds ran on workers, or its workload was
# deleted) and that has been silent this long is failed: nothing will ever finish it.
LOST_AFTER = dt.timedelta(minutes=30)


# --- Selectors ------------------------------------------------------------------------------------


def active_build_of(avatar: Avatar) -> AvatarBuild | None:
    return (
        AvatarBuild.objects.for_organization(avatar.organization)
        .filter(avatar=avatar, status__in=ACTIVE)
        .first()
    )


def bundle_directory(avatar: Avatar, number: int) -> str:
    """Where version `number`'s bundle lives, relative to MEDIA_ROOT."""
    return f"avatars/{avatar.organization_id}/{avatar.pk}/v{number}"


def consent_problem(consent: Consent, avatar: Avatar) -> str | None:
    """Why this consent does not allow building this avatar now; None when it does."""
    if consent.avatar_id != avatar.pk:
        return _("This consent was given for another avatar; record one for %(avatar)s.") % {
            "avatar": str(avatar)
        }
    if consent.revoked_at is not None:
        return _("%(subject)s revoked this consent; record a new one before building.") % {
            "subject": consent.subject_name
        }
    if not consent.is_valid():
        return _("This consent expired on %(date)s; record a new one before building.") % {
            "date": timezone.localdate(consent.expires_at).isoformat()
        }
    return None


def _footage_problem(footage: Upload) -> str | None:
    if footage.purpose != UploadPurpose.FOOTAGE:
        return _("This upload is a %(purpose)s, not footage; upload the footage itself.") % {
            "purpose": str(UploadPurpose(footage.purpose).label).lower()
        }
    if footage.status == UploadStatus.FAILED:
        return _("This footage failed its checks: %(reason)s Upload new footage.") % {
            "reason": footage.failure_reason
        }
    if footage.status != UploadStatus.COMPLETE:
        return _(
            "This footage has not finished uploading (%(received)d of %(size)d bytes); send the "
            "rest and complete it."
        ) % {"received": footage.received, "size": footage.size}
    return None


# --- Starting and cancelling ----------------------------------------------------------------------


def _avatar_status_without_build(avatar: Avatar) -> str:
    return AvatarStatus.READY if avatar.current_version_id else AvatarStatus.DRAFT


@transaction.atomic
def start_build(
    actor: Actor,
    organization: Organization,
    *,
    avatar: Avatar,
    footage: Upload | None,
    consent: Consent | None,
) -> AvatarBuild:
    """Queue a build of a new version of `avatar`; the avatar is `building` until it ends."""
    avatar = Avatar.objects.for_organization(organization).select_for_update().get(pk=avatar.pk)
    if avatar.status == AvatarStatus.RETIRED:
        raise ConflictError(
            "avatar_retired",
            _("%(avatar)s is retired; it can no longer be built.") % {"avatar": str(avatar)},
            field="avatar",
        )
    if active_build_of(avatar) is not None:
        raise ConflictError(
            "build_in_progress",
            _("%(avatar)s is being built already; wait for that build or cancel it.")
            % {"avatar": str(avatar)},
            field="avatar",
        )
    if footage is None:
        raise DomainError(
            "footage_required",
            _(
                "A build needs footage: upload 2 to 3 minutes of the person (purpose footage), "
                "complete the upload and name it here."
            ),
            field="footage",
        )
    problem = _footage_problem(footage)
    if problem:
        raise DomainError("footage_not_usable", problem, field="footage")
    if consent is None:
        raise DomainError(
            "consent_required",
            _(
                "A build needs the filmed person's consent: record it with their statement and "
                "consent clip, then name it here."
            ),
            field="consent",
        )
    problem = consent_problem(consent, avatar)
    if problem:
        raise DomainError("consent_not_valid", problem, field="consent")
    build = AvatarBuild(
        organization=organization,
        avatar=avatar,
        footage=footage,
        consent=consent,
        created_by=actor.user,
    )
    build.workload = _submit(organization, build)
    build.save(force_insert=True)
    before = audit.snapshot(avatar)
    avatar.status = AvatarStatus.BUILDING
    avatar.save(update_fields=["status", "updated_at"])
    audit.record(actor, organization, "build.start", build, after=audit.snapshot(build))
    audit.record_update(actor, organization, "avatar.update", avatar, before=before)
    return build


def _submit(organization: Organization, build: AvatarBuild) -> Workload:
    """The build's workload: the footage as its input; submitting again returns the same one."""
    footage = build.footage
    spec = {
        "build": str(build.pk),
        "avatar": str(build.avatar_id),
        "inputs": {
            "footage": artifacts.media_input(
                footage.relative_path, sha256=footage.sha256, size=footage.size
            )
        },
    }
    try:
        workload, _created = inference.submit(
            organization,
            kind=WorkloadKind.BUILD,
            spec=spec,
            idempotency_key=f"avatar-build:{build.pk}",
        )
    except inference.InferenceError as error:
        logger.error("build_not_submitted", organization=organization.slug, error=str(error))
        raise ConflictError(
            "build_capacity_unavailable",
            _(
                "No GPU pool builds avatars at the moment, so the build cannot be queued; "
                "ask the platform's operators."
            ),
        ) from error
    return workload


def _settle_avatar(avatar_id: Any, organization: Organization) -> None:
    """After a build ends without a new version: the avatar is as it was before the build."""
    avatar = Avatar.objects.for_organization(organization).select_for_update().get(pk=avatar_id)
    if avatar.status == AvatarStatus.BUILDING and active_build_of(avatar) is None:
        avatar.status = _avatar_status_without_build(avatar)
        avatar.save(update_fields=["status", "updated_at"])


def _lock(organization: Organization, build_id: Any) -> AvatarBuild | None:
    return (
        AvatarBuild.objects.for_organization(organization)
        .select_for_update()
        .filter(pk=build_id)
        .first()
    )


def _end(
    actor: Actor,
    build: AvatarBuild,
    status: str,
    code: str,
    reason: str,
    action: str,
    *,
    asked: bool = False,
) -> None:
    """Mark a locked, active build failed or cancelled; the avatar returns to its former state.
    `asked`: someone asked for the stop (a person, a consent that lapsed)."""
    before = audit.snapshot(build)
    build.status = status
    build.failure_code = code
    build.failure_reason = reason[:REASON_MAX_LENGTH]
    build.cancel_requested = build.cancel_requested or asked
    build.finished_at = timezone.now()
    build.save(
        update_fields=[
            "status",
            "failure_code",
            "failure_reason",
            "cancel_requested",
            "finished_at",
        ]
    )
    _settle_avatar(build.avatar_id, build.organization)
    audit.record(
        actor, build.organization, action, build, before=before, after=audit.snapshot(build)
    )
    if build.workload_id is not None:
        workload_id = build.workload_id
        transaction.on_commit(lambda: _discard_outputs(build.organization, workload_id))


def _stop(actor: Actor, build: AvatarBuild, code: str, reason: str) -> AvatarBuild:
    """End a locked, active build as cancelled now and cancel its workload: its worker stops at
    its next heartbeat, and what it still reports or delivers is refused."""
    _end(actor, build, BuildStatus.CANCELLED, code, reason, "build.cancel", asked=True)
    workload = _workload_of(build)
    if workload is not None:
        inference.cancel(workload, f"Its avatar build was stopped ({code}).")
    return build


@transaction.atomic
def cancel_build(actor: Actor, build: AvatarBuild) -> AvatarBuild:
    locked = _lock(build.organization, build.pk) or build
    if locked.status not in ACTIVE:
        raise ConflictError(
            "build_finished",
            _("This build has already ended (%(status)s); there is nothing to cancel.")
            % {"status": str(BuildStatus(locked.status).label).lower()},
        )
    return _stop(actor, locked, "cancelled", _("Cancelled by %(who)s.") % {"who": actor.label})


def stop_builds_under_consent(actor: Actor, consent: Consent, code: str, reason: str) -> int:
    """Stop every queued or running build that relies on this consent (the caller's transaction)."""
    builds = (
        AvatarBuild.objects.for_organization(consent.organization)
        .select_for_update()
        .filter(consent=consent, status__in=ACTIVE)
        .order_by("created_at")
    )
    stopped = 0
    for build in builds:
        _stop(actor, build, code, reason)
        stopped += 1
    return stopped


# --- Following the workload -----------------------------------------------------------------------


def on_workload_changed(sender: Any, *, kind: str, **details: Any) -> None:
    """Receiver of `inference.signals.workload_changed` (connected in AvatarsConfig.ready)."""
    if kind == WorkloadKind.BUILD:
        follow_workload(details["organization_id"], details["workload_id"], details["message"])


def follow_workload(organization_id: Any, workload_id: Any, message: str = "") -> bool:
    """Bring the build of this workload up to date with it: running with its progress and the
    worker's stage, queued again after its worker was lost, or ended as it ended. Safe to repeat:
    a build that has ended is left alone. Returns whether it ended the build."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return False
    found = (
        AvatarBuild.objects.for_organization(organization)
        .filter(workload_id=workload_id, status__in=ACTIVE)
        .values_list("pk", "status")
        .first()
    )
    if found is None:
        return False  # not a build's workload, or the build has ended
    workload = Workload.objects.for_organization(organization).filter(pk=workload_id).first()
    if workload is None or (workload.state in _WAITING and found[1] == BuildStatus.QUEUED):
        return False  # admitted, placed: nothing to tell the build yet
    # Reasons are stored for the organization's people: in their language.
    with translation.override(organization.locale), transaction.atomic():
        build = _lock(organization, found[0])
        if build is None or build.status not in ACTIVE:
            return False
        workload.refresh_from_db()
        log = logger.bind(organization=organization.slug, build=str(build.pk))
        if workload.state == WorkloadState.SUCCEEDED:
            _publish(build, workload, log)
        elif workload.state == WorkloadState.FAILED:
            code, reason = _failure(workload, log)
            _end(SYSTEM, build, BuildStatus.FAILED, code, reason, "build.fail")
            log.info("build_failed", code=code)
        elif workload.state in FINAL_STATES:  # cancelled or preempted outside this package
            reason = _("Its GPU work was stopped: %(reason)s") % {"reason": workload.reason}
            _end(SYSTEM, build, BuildStatus.CANCELLED, "cancelled", reason, "build.cancel")
            log.info("build_cancelled", code=workload.reason_code)
        elif workload.state == WorkloadState.RUNNING:
            _advance(build, workload, message)
            return False
        elif build.status == BuildStatus.RUNNING:  # back in the queue: its worker was lost
            build.status, build.stage, build.progress = BuildStatus.QUEUED, "", 0
            build.save(update_fields=["status", "stage", "progress"])
            log.info("build_requeued", reason=workload.reason_code)
            return False
        return build.status not in ACTIVE


def _advance(build: AvatarBuild, workload: Workload, stage: str) -> None:
    """A running workload's progress on its build (and its stage, when the worker named one)."""
    now = timezone.now()
    if build.status == BuildStatus.QUEUED:
        build.status = BuildStatus.RUNNING
        build.started_at = build.started_at or now
        build.stage = "starting"
    if stage:
        build.stage = stage[:STAGE_MAX_LENGTH]
    build.progress = max(1, min(99, int(workload.progress * 100)))
    build.heartbeat_at = now
    build.save(update_fields=["status", "started_at", "stage", "progress", "heartbeat_at"])


def _workload_of(build: AvatarBuild) -> Workload | None:
    if build.workload_id is None:
        return None
    return (
        Workload.objects.for_organization(build.organization).filter(pk=build.workload_id).first()
    )


def _discard_outputs(organization: Organization, workload_id: Any) -> None:
    workload = Workload.objects.for_organization(organization).filter(pk=workload_id).first()
    if workload is not None and workload.state in FINAL_STATES:
        artifacts.discard_outputs(workload)


# Why a build pipeline failed, by the code its worker gave: the build's failure code and the
# reason in the reader's language (the same words as the worker's, which are English).
_PIPELINE_FAILURES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "no_video": ("no_video", lambda details: _("The footage has no pictures.")),
    "no_face": (
        "no_face",
        lambda details: _(
            "No frontal face was found in the footage; film the person facing the camera."
        ),
    ),
    "too_blurry": (
        "too_blurry",
        lambda details: (
            _(
                "The sharpest frame of the face is blurred (sharpness %(sharpness).0f, at least "
                "%(minimum).0f needed); film in focus, with more light and a steady camera."
            )
            % {
                "sharpness": float(details.get("sharpness", 0)),
                "minimum": float(details.get("minimum", 0)),
            }
        ),
    ),
    "no_audio": ("no_audio", lambda details: _("The footage has no sound.")),
    "voice_too_short": (
        "no_voice",
        lambda details: _("The footage's sound is too short to hear the voice."),
    ),
    "no_speech": (
        "no_voice",
        lambda details: _(
            "No speech was found in the footage's sound; film the person speaking clearly."
        ),
    ),
    "footage_unreadable": (
        "footage_unreadable",
        lambda details: (
            _("The footage cannot be decoded (%(detail)s); upload it again.")
            % {"detail": str(details.get("detail", ""))}
        ),
    ),
}


def _internal_error() -> str:
    return _(
        "The build stopped because of an error on our side; it has been logged. "
        "Start the build again."
    )


def _failure(workload: Workload, log: Any) -> tuple[str, str]:
    """The build's failure code and reason for a failed workload."""
    if workload.reason_code == "pipeline_failed":
        known = _PIPELINE_FAILURES.get(str(workload.result.get("code", "")))
        if known is not None:
            details = workload.result.get("details")
            code, reason = known
            return code, reason(details if isinstance(details, dict) else {})
    if workload.reason_code == "worker_lost":
        return "worker_lost", _(
            "The worker running this build was lost %(count)d times in a row and the build was "
            "given up. The avatar is as it was before the build; start the build again."
        ) % {"count": workload.failures}
    log.error("build_workload_failed", code=workload.reason_code, reason=workload.reason)
    return "internal_error", _internal_error()


class _Unpublishable(Exception):
    """The worker's result does not describe a bundle whose parts were delivered intact."""


def _workdir(build: AvatarBuild) -> Path:
    """Where a bundle is put together; beside the versions' folders, renamed to v{n} at the end."""
    avatar_folder = f"avatars/{build.organization_id}/{build.avatar_id}"
    return Path(settings.MEDIA_ROOT) / avatar_folder / f".build-{build.pk}"


def _publish(build: AvatarBuild, workload: Workload, log: Any) -> None:
    """A succeeded workload on its locked build: its parts become version n+1's bundle and the
    avatar's current version — unless the consent lapsed meanwhile, or the parts did not arrive
    intact (then the build fails and the avatar is as before)."""
    organization = build.organization
    consent = Consent.objects.for_organization(organization).get(pk=build.consent_id)
    problem = consent_problem(consent, build.avatar)
    if problem:
        code = "consent_revoked" if consent.revoked_at else "consent_expired"
        _end(SYSTEM, build, BuildStatus.CANCELLED, code, problem, "build.cancel", asked=True)
        log.info("build_cancelled", code=code)
        return
    avatar = (
        Avatar.objects.for_organization(organization).select_for_update().get(pk=build.avatar_id)
    )
    versions = AvatarVersion.objects.for_organization(organization).filter(avatar=avatar)
    number = (versions.aggregate(last=Max("number"))["last"] or 0) + 1
    relative = bundle_directory(avatar, number)
    workdir = _workdir(build)
    try:
        portrait, voice = _assemble(workload, workdir)
        build_pipeline.write_manifest(
            workdir,
            portrait,
            {
                "avatar": str(avatar.pk),
                "version": number,
                "build": str(build.pk),
                "consent": str(build.consent_id),
                "footage": {"upload": str(build.footage_id), "sha256": build.footage.sha256},
                "workload": str(workload.pk),
                "created_at": timezone.now().isoformat(),
            },
        )
        final = Path(settings.MEDIA_ROOT) / relative
        # Left by a publication whose transaction did not commit: no version row names it.
        shutil.rmtree(final, ignore_errors=True)
        workdir.rename(final)
    except _Unpublishable as error:
        log.error("build_unpublishable", workload=str(workload.pk), problem=str(error))
        _end(SYSTEM, build, BuildStatus.FAILED, "internal_error", _internal_error(), "build.fail")
        return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    version = AvatarVersion.objects.create(
        organization=organization,
        avatar=avatar,
        number=number,
        consent_id=build.consent_id,
        build=build,
        portrait=f"{relative}/portrait.png",
        bundle=relative,
        voice_profile=voice,
    )
    before_avatar = audit.snapshot(avatar)
    avatar.current_version = version
    if avatar.status != AvatarStatus.RETIRED:
        avatar.status = AvatarStatus.READY
    avatar.save(update_fields=["current_version", "status", "updated_at"])
    before_build = audit.snapshot(build)
    build.status = BuildStatus.SUCCEEDED
    build.stage, build.progress = "done", 100
    build.result_version = version
    build.started_at = build.started_at or workload.started_at
    build.finished_at = timezone.now()
    build.save(
        update_fields=["status", "stage", "progress", "result_version", "started_at", "finished_at"]
    )
    after_build = audit.snapshot(build)
    audit.record(
        SYSTEM, organization, "avatar_version.create", version, after=audit.snapshot(version)
    )
    audit.record_update(SYSTEM, organization, "avatar.update", avatar, before=before_avatar)
    audit.record(
        SYSTEM, organization, "build.succeed", build, before=before_build, after=after_build
    )
    workload_id = workload.pk
    transaction.on_commit(lambda: _discard_outputs(organization, workload_id))
    log.info("build_succeeded", version=number)


def _assemble(workload: Workload, workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copy the delivered parts into `workdir`, each checked against the result's SHA-256;
    returns the result's account of the portrait and the voice profile."""
    result = workload.result
    files, portrait, voice = result.get("files"), result.get("portrait"), result.get("voice")
    if not (isinstance(files, dict) and isinstance(portrait, dict) and isinstance(voice, dict)):
        raise _Unpublishable("the result lacks files, portrait or voice")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for name in build_pipeline.BUNDLE_PARTS:
        described = files.get(name)
        sha256 = described.get("sha256") if isinstance(described, dict) else None
        delivered = artifacts.output_file(workload, name, str(sha256 or ""))
        if delivered is None:
            raise _Unpublishable(f"{name} was not delivered intact")
        shutil.copyfile(delivered, workdir / name)
    return portrait, voice


# --- Sweeping -------------------------------------------------------------------------------------


def _lost_reason(last: dt.datetime, organization: Organization) -> str:
    local = timezone.localtime(last, zoneinfo.ZoneInfo(organization.time_zone))
    return _(
        "The worker running this build stopped reporting progress (last at %(time)s, more than "
        "%(minutes)d minutes before) and is taken to be lost. The avatar is as it was before the "
        "build; start the build again."
    ) % {
        "time": local.strftime("%Y-%m-%d %H:%M %Z"),
        "minutes": LOST_AFTER // dt.timedelta(minutes=1),
    }


def sweep_builds(now: dt.datetime | None = None) -> int:
    """Catch up and clean up: returns how many builds it ended.

    A build whose workload has ended while the build did not follow (its signal was missed: the
    process stopped between the commit and the signal, a receiver failed) is brought up to date
    from the workload, exactly as the signal would have. Lost workers are not this sweep's
    business: the orchestrator requeues their work and fails it after repeated losses, and the
    build follows. Only a build that no workload runs (started before builds ran on workers, or
    its workload deleted) and that has been silent for LOST_AFTER is failed here as lost (one
    asked to stop is cancelled instead); the avatar returns to its former state.

    Cross-tenant: active builds of every organization are looked at; each is ended in its own
    transaction, under its lock, after checking again that it is still active.
    """
    now = now or timezone.now()
    ended = 0
    behind = (
        AvatarBuild.objects.unscoped_dangerously()
        .filter(status__in=ACTIVE, workload__state__in=FINAL_STATES)
        .values_list("organization_id", "workload_id")
    )
    for organization_id, workload_id in list(behind):
        ended += follow_workload(organization_id, workload_id)
    cutoff = now - LOST_AFTER
    never = {"heartbeat_at__isnull": True, "started_at__isnull": True}
    silent = (
        Q(heartbeat_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        | Q(**never, created_at__lt=cutoff)
    )
    orphans = (
        AvatarBuild.objects.unscoped_dangerously()
        .filter(silent, status__in=ACTIVE, workload__isnull=True)
        .values_list("organization_id", "pk")
    )
    for organization_id, build_id in list(orphans):
        organization = Organization.objects.get(pk=organization_id)
        with transaction.atomic(), translation.override(organization.locale):
            build = _lock(organization, build_id)
            if build is None or build.status not in ACTIVE or build.workload_id is not None:
                continue
            last = build.heartbeat_at or build.started_at or build.created_at
            if last >= cutoff:
                continue  # it reported meanwhile
            if build.cancel_requested:  # asked to stop, and nobody is left to stop it: it ends
                code, reason = build.failure_code, build.failure_reason
                _end(SYSTEM, build, BuildStatus.CANCELLED, code, reason, "build.cancel")
            else:
                reason = _lost_reason(last, organization)
                _end(SYSTEM, build, BuildStatus.FAILED, "worker_lost", reason, "build.fail")
            transaction.on_commit(functools.partial(shutil.rmtree, _workdir(build), True))
            logger.warning("build_worker_lost", organization=organization.slug, build=str(build_id))
            ended += 1
    return ended
