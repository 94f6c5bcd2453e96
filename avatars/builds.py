"""Avatar builds: start one from footage under a consent, follow it, cancel it, and run it.

A build is queued → running → succeeded, failed or cancelled. Running it (`run_build`, from the
Celery task `avatars.run_build`) picks the portrait, derives the voice profile and writes the
bundle (see `avatars.builder`), saving progress between steps; between steps it also stops when
cancelled or when the consent has lapsed. Success makes version n+1 the avatar's current version.
A failure or a cancel leaves the avatar as it was: its previous version stays current, its status
goes back to ready (or draft when it never had a version). Running a finished build again does
nothing, so a redelivered task is harmless. A build whose worker died is failed by a watchdog
(`fail_lost_builds`, the beat task `avatars.requeue_stale_builds`) once its heartbeat stops.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import zoneinfo
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars import builder, tasks, uploads
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
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)

ACTIVE = (BuildStatus.QUEUED, BuildStatus.RUNNING)
REASON_MAX_LENGTH = 500
HEARTBEAT_EVERY = dt.timedelta(minutes=1)
# A running build whose heartbeat is older than this lost its worker (a build reports progress
# every few seconds; its longest step, reading the footage, reports as it reads).
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
    build = AvatarBuild.objects.create(
        organization=organization,
        avatar=avatar,
        footage=footage,
        consent=consent,
        created_by=actor.user,
    )
    before = audit.snapshot(avatar)
    avatar.status = AvatarStatus.BUILDING
    avatar.save(update_fields=["status", "updated_at"])
    audit.record(actor, organization, "build.start", build, after=audit.snapshot(build))
    audit.record_update(actor, organization, "avatar.update", avatar, before=before)
    organization_id, build_id = str(organization.pk), str(build.pk)
    transaction.on_commit(lambda: tasks.run_build.delay(organization_id, build_id))
    return build


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
    actor: Actor, build: AvatarBuild, status: str, code: str, reason: str, action: str
) -> None:
    """Mark a locked, active build failed or cancelled; the avatar returns to its former state."""
    before = audit.snapshot(build)
    build.status = status
    build.failure_code = code
    build.failure_reason = reason[:REASON_MAX_LENGTH]
    build.finished_at = timezone.now()
    build.save(update_fields=["status", "failure_code", "failure_reason", "finished_at"])
    _settle_avatar(build.avatar_id, build.organization)
    audit.record(
        actor, build.organization, action, build, before=before, after=audit.snapshot(build)
    )


def _request_stop(actor: Actor, build: AvatarBuild, code: str, reason: str) -> AvatarBuild:
    """A queued build ends now; a running one is told to stop at its next step."""
    if build.status == BuildStatus.QUEUED:
        _end(actor, build, BuildStatus.CANCELLED, code, reason, "build.cancel")
        return build
    before = audit.snapshot(build)
    build.cancel_requested = True
    build.failure_code = code
    build.failure_reason = reason[:REASON_MAX_LENGTH]
    build.save(update_fields=["cancel_requested", "failure_code", "failure_reason"])
    audit.record(
        actor,
        build.organization,
        "build.request_cancel",
        build,
        before=before,
        after=audit.snapshot(build),
    )
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
    if locked.cancel_requested:
        return locked
    return _request_stop(
        actor, locked, "cancelled", _("Cancelled by %(who)s.") % {"who": actor.label}
    )


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
        if not build.cancel_requested:
            _request_stop(actor, build, code, reason)
            stopped += 1
    return stopped


# --- Running --------------------------------------------------------------------------------------


class _Stopped(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Progress:
    """Saves progress as the steps go, with a heartbeat (at least every HEARTBEAT_EVERY while the
    work reports, even when the percentage stands still); between saves, stops the build if it
    must stop."""

    def __init__(self, build: AvatarBuild) -> None:
        self.build = build
        self.saved = (build.stage, build.progress)
        self.beat = build.heartbeat_at or timezone.now()

    def check(self) -> None:
        build = (
            AvatarBuild.objects.for_organization(self.build.organization)
            .filter(pk=self.build.pk)
            .values("status", "cancel_requested", "failure_code", "failure_reason")
            .first()
        )
        if build is None or build["status"] != BuildStatus.RUNNING:
            raise _Stopped("cancelled", _("The build was stopped."))
        if build["cancel_requested"]:
            raise _Stopped(build["failure_code"] or "cancelled", build["failure_reason"])
        consent = Consent.objects.for_organization(self.build.organization).get(
            pk=self.build.consent_id
        )
        problem = consent_problem(consent, self.build.avatar)
        if problem:
            code = "consent_revoked" if consent.revoked_at else "consent_expired"
            raise _Stopped(code, problem)

    def report(self, stage: str, progress: int) -> None:
        now = timezone.now()
        if (stage, progress) == self.saved and now - self.beat < HEARTBEAT_EVERY:
            return
        self.check()
        AvatarBuild.objects.for_organization(self.build.organization).filter(
            pk=self.build.pk, status=BuildStatus.RUNNING
        ).update(stage=stage, progress=progress, heartbeat_at=now)
        self.saved, self.beat = (stage, progress), now

    def span(self, stage: str, start: int, end: int) -> builder.Progress:
        """A callback for one step, mapping its fraction done onto [start, end] percent."""
        return lambda fraction: self.report(stage, start + int((end - start) * fraction))


def _workdir(build: AvatarBuild) -> Path:
    """Where a running build writes; beside the versions' folders, renamed to v{n} on success."""
    avatar_folder = f"avatars/{build.organization_id}/{build.avatar_id}"
    return Path(settings.MEDIA_ROOT) / avatar_folder / f".build-{build.pk}"


@transaction.atomic
def _claim(organization: Organization, build_id: str) -> AvatarBuild | None:
    build = _lock(organization, build_id)
    if build is None or build.status not in ACTIVE:
        return None  # finished already: a retried or duplicated task does nothing
    if build.cancel_requested:
        code, reason = build.failure_code, build.failure_reason
        _end(SYSTEM, build, BuildStatus.CANCELLED, code, reason, "build.cancel")
        return None
    build.status = BuildStatus.RUNNING
    now = timezone.now()
    build.started_at = build.started_at or now
    build.heartbeat_at = now
    build.stage, build.progress = "starting", 1
    build.save(update_fields=["status", "started_at", "heartbeat_at", "stage", "progress"])
    return (
        AvatarBuild.objects.for_organization(organization)
        .select_related("avatar", "footage", "consent", "organization")
        .get(pk=build.pk)
    )


@transaction.atomic
def _publish(
    build: AvatarBuild, workdir: Path, portrait: builder.Portrait, voice: dict[str, Any]
) -> AvatarVersion | None:
    organization = build.organization
    avatar = (
        Avatar.objects.for_organization(organization).select_for_update().get(pk=build.avatar_id)
    )
    locked = _lock(organization, build.pk)
    if locked is None or locked.status != BuildStatus.RUNNING:
        return None
    if locked.cancel_requested:
        raise _Stopped(locked.failure_code or "cancelled", locked.failure_reason)
    versions = AvatarVersion.objects.for_organization(organization).filter(avatar=avatar)
    number = (versions.aggregate(last=Max("number"))["last"] or 0) + 1
    relative = bundle_directory(avatar, number)
    builder.write_manifest(
        workdir,
        portrait,
        {
            "avatar": str(avatar.pk),
            "version": number,
            "build": str(build.pk),
            "consent": str(build.consent_id),
            "footage": {"upload": str(build.footage_id), "sha256": build.footage.sha256},
            "created_at": timezone.now().isoformat(),
        },
    )
    final = Path(settings.MEDIA_ROOT) / relative
    # Left by a build whose transaction did not commit: no version row names it.
    shutil.rmtree(final, ignore_errors=True)
    workdir.rename(final)
    version = AvatarVersion.objects.create(
        organization=organization,
        avatar=avatar,
        number=number,
        consent_id=build.consent_id,
        build=locked,
        portrait=f"{relative}/portrait.png",
        bundle=relative,
        voice_profile=voice,
    )
    before_avatar = audit.snapshot(avatar)
    avatar.current_version = version
    if avatar.status != AvatarStatus.RETIRED:
        avatar.status = AvatarStatus.READY
    avatar.save(update_fields=["current_version", "status", "updated_at"])
    before_build = audit.snapshot(locked)
    locked.status = BuildStatus.SUCCEEDED
    locked.stage, locked.progress = "done", 100
    locked.result_version = version
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "stage", "progress", "result_version", "finished_at"])
    after_build = audit.snapshot(locked)
    audit.record(
        SYSTEM, organization, "avatar_version.create", version, after=audit.snapshot(version)
    )
    audit.record_update(SYSTEM, organization, "avatar.update", avatar, before=before_avatar)
    audit.record(
        SYSTEM, organization, "build.succeed", locked, before=before_build, after=after_build
    )
    return version


@transaction.atomic
def _stop(organization: Organization, build_id: Any, status: str, code: str, reason: str) -> None:
    build = _lock(organization, build_id)
    if build is not None and build.status in ACTIVE:
        action = "build.cancel" if status == BuildStatus.CANCELLED else "build.fail"
        _end(SYSTEM, build, status, code, reason, action)


def run_build(organization_id: str, build_id: str) -> None:
    """Do the work of a queued build (the Celery task's body). Safe to run again."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return
    build = _claim(organization, build_id)
    if build is None:
        return
    log = logger.bind(organization=organization.slug, build=build_id)
    footage_path = uploads.path_of(build.footage)
    workdir = _workdir(build)
    progress = _Progress(build)
    # Reasons are stored for the organization's people: in their language.
    with translation.override(organization.locale):
        try:
            progress.report("portrait", 2)
            portrait = builder.pick_portrait(footage_path, progress.span("portrait", 2, 60))
            progress.report("voice", 60)
            voice = builder.voice_profile(footage_path, progress.span("voice", 60, 90))
            progress.report("bundle", 90)
            builder.write_parts(workdir, portrait, voice)
            progress.report("bundle", 95)
            version = _publish(build, workdir, portrait, voice)
            if version is not None:
                log.info("build_succeeded", version=version.number)
        except _Stopped as stopped:
            _stop(organization, build.pk, BuildStatus.CANCELLED, stopped.code, stopped.reason)
            log.info("build_cancelled", code=stopped.code)
        except builder.BuildProblem as problem:
            _stop(organization, build.pk, BuildStatus.FAILED, problem.code, problem.message)
            log.info("build_failed", code=problem.code)
        except Exception:
            log.exception("build_crashed")
            _stop(
                organization,
                build.pk,
                BuildStatus.FAILED,
                "internal_error",
                _(
                    "The build stopped because of an error on our side; it has been logged. "
                    "Start the build again."
                ),
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


# --- Watchdog -------------------------------------------------------------------------------------


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


def fail_lost_builds(now: dt.datetime | None = None) -> int:
    """Fail every running build whose worker stopped reporting (no heartbeat for LOST_AFTER).

    A worker that died mid-build (killed, out of memory, its machine gone) never ends its build;
    without this the avatar would stay `building` for good and no new build could start. The
    build fails with code `worker_lost` and a reason saying so (one asked to stop is cancelled
    instead); the avatar returns to its former state, as after any failed build, and its previous
    version stays current. Should the worker still be alive after all, its late result is dropped
    (`_publish` finds the build ended). Returns how many builds it ended.

    Cross-tenant: running builds of every organization are looked at; each is ended in its own
    transaction, under its lock, after checking again that it is still running and silent.
    """
    now = now or timezone.now()
    cutoff = now - LOST_AFTER
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    lost = (
        AvatarBuild.objects.unscoped_dangerously()
        .filter(silent, status=BuildStatus.RUNNING)
        .values_list("organization_id", "pk")
    )
    ended = 0
    for organization_id, build_id in list(lost):
        organization = Organization.objects.get(pk=organization_id)
        with transaction.atomic(), translation.override(organization.locale):
            build = _lock(organization, build_id)
            if build is None or build.status != BuildStatus.RUNNING:
                continue
            last = build.heartbeat_at or build.started_at
            if last is None or last >= cutoff:
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
