"""The beat's sweeps of the avatars domain: builds catch up with workloads that ended while
their signal was missed, builds that no workload runs fail once silent, and uploads that were
abandoned are given up with their bytes deleted.

Time is not waited for: each sweep is called with an explicit `now` ahead of the rows' times. A
build that no workload runs (one started before builds ran on GPU workers) is made by the
factory, left `running` with an old heartbeat; a missed signal is simulated by changing a
workload's state without running the transaction's commit hooks (the test's transaction never
commits), as a process that died between the commit and the signal leaves it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from avatars import builds, tasks, uploads
from avatars.models import AvatarBuild, AvatarStatus, Upload
from inference.lifecycle import transition
from inference.models import Workload
from ironbowl.celery import app
from tenants.audit import SYSTEM
from tenants.errors import ConflictError
from tenants.models import AuditEntry
from tests.avatars import factories as af
from tests.avatars import media
from tests.avatars.building import SimulatedWorker, run_build
from tests.avatars.media import media_root  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _english(org_a):
    """Reasons are stored in the organization's language: English here, to read them."""
    org_a.locale = "en"
    org_a.save()


def _running(avatar, *, heartbeat_minutes_ago=None, started_minutes_ago=45, **fields):
    """A build a worker claimed: the avatar is building meanwhile."""
    avatar.status = AvatarStatus.BUILDING
    avatar.save()
    heartbeat = None
    if heartbeat_minutes_ago is not None:
        heartbeat = NOW - dt.timedelta(minutes=heartbeat_minutes_ago)
    return af.AvatarBuildFactory(
        avatar=avatar,
        status="running",
        stage="portrait",
        progress=40,
        started_at=NOW - dt.timedelta(minutes=started_minutes_ago),
        heartbeat_at=heartbeat,
        **fields,
    )


def _build(build):
    return AvatarBuild.objects.for_organization(build.organization).get(pk=build.pk)


# --- Builds that no workload runs -----------------------------------------------------------------


def test_a_build_silent_for_over_half_an_hour_fails_and_the_avatar_is_as_before(
    org_a, settings, django_capture_on_commit_callbacks
):
    avatar = af.ready_avatar(organization=org_a)
    previous = avatar.current_version
    lost = _running(avatar, heartbeat_minutes_ago=31)
    workdir = Path(settings.MEDIA_ROOT) / f"avatars/{org_a.pk}/{avatar.pk}/.build-{lost.pk}"
    workdir.mkdir(parents=True)
    (workdir / "portrait.png").write_bytes(af.PORTRAIT_PNG)

    with django_capture_on_commit_callbacks(execute=True):
        ended = builds.sweep_builds(now=NOW)

    lost = _build(lost)
    avatar.refresh_from_db()
    assert ended == 1
    assert (lost.status, lost.failure_code) == ("failed", "worker_lost")
    assert lost.failure_reason.startswith(
        "The worker running this build stopped reporting progress (last at 2025-03-01 19:29 CST, "
        "more than 30 minutes before)"
    )
    assert "start the build again" in lost.failure_reason
    assert lost.finished_at is not None
    assert (avatar.status, avatar.current_version_id) == (AvatarStatus.READY, previous.pk)
    assert not workdir.exists()
    entry = AuditEntry.objects.for_organization(org_a).get(action="build.fail")
    assert entry.object_id == str(lost.pk)
    assert entry.after["failure_code"] == "worker_lost"


def test_a_build_that_reported_within_half_an_hour_or_is_queued_is_left_alone(org_a):
    working = _running(af.ready_avatar(organization=org_a), heartbeat_minutes_ago=29)
    queued = af.AvatarBuildFactory(avatar__organization=org_a, status="queued")
    finished = af.AvatarBuildFactory(
        avatar__organization=org_a, status="succeeded", started_at=NOW - dt.timedelta(days=1)
    )

    assert builds.sweep_builds(now=NOW) == 0

    assert _build(working).status == "running"
    assert _build(queued).status == "queued"
    assert _build(finished).status == "succeeded"
    assert not AuditEntry.objects.for_organization(org_a).filter(action="build.fail").exists()


def test_a_build_lost_before_its_first_heartbeat_is_judged_by_its_start(org_a):
    never_reported = _running(
        af.AvatarFactory(organization=org_a), heartbeat_minutes_ago=None, started_minutes_ago=31
    )
    just_started = _running(
        af.AvatarFactory(organization=org_a), heartbeat_minutes_ago=None, started_minutes_ago=5
    )

    assert builds.sweep_builds(now=NOW) == 1

    assert _build(never_reported).failure_code == "worker_lost"
    assert _build(just_started).status == "running"
    never_reported.avatar.refresh_from_db()
    assert never_reported.avatar.status == AvatarStatus.DRAFT  # it never had a version


def test_a_lost_build_that_was_asked_to_stop_ends_cancelled_with_its_reason(org_a):
    lost = _running(
        af.ready_avatar(organization=org_a),
        heartbeat_minutes_ago=40,
        cancel_requested=True,
        failure_code="consent_revoked",
        failure_reason="The person filmed revoked their consent.",
    )

    builds.sweep_builds(now=NOW)

    lost = _build(lost)
    assert (lost.status, lost.failure_code) == ("cancelled", "consent_revoked")
    assert lost.failure_reason == "The person filmed revoked their consent."


def test_once_the_lost_build_failed_the_avatar_can_be_built_again(org_a, build_pool):
    avatar = af.ready_avatar(organization=org_a)
    _running(avatar, heartbeat_minutes_ago=31)
    footage = af.UploadFactory(organization=org_a, purpose="footage")
    with pytest.raises(ConflictError, match="being built already"):
        builds.start_build(
            SYSTEM,
            org_a,
            avatar=avatar,
            footage=footage,
            consent=avatar.current_version.consent,
        )

    builds.sweep_builds(now=NOW)
    again = builds.start_build(
        SYSTEM, org_a, avatar=avatar, footage=footage, consent=avatar.current_version.consent
    )

    assert again.status == "queued"


def test_a_working_build_writes_its_heartbeat_with_its_progress(org_a, build_pool):
    avatar = af.AvatarFactory(organization=org_a)
    footage = media.stored_upload(org_a, media.media_file(media.SHORT_FOOTAGE), purpose="footage")
    build = builds.start_build(
        SYSTEM, org_a, avatar=avatar, footage=footage, consent=af.ConsentFactory(avatar=avatar)
    )
    assert build.heartbeat_at is None

    build = run_build(build)

    assert build.status == "succeeded"
    # Started with the first progress report; later reports moved the heartbeat on from there.
    assert build.started_at < build.heartbeat_at <= build.finished_at
    # Finished builds are not the sweep's business, however old.
    assert builds.sweep_builds(now=build.finished_at + dt.timedelta(days=1)) == 0


# --- Builds whose workload ended unnoticed --------------------------------------------------------


def _queued_build(org, avatar=None):
    avatar = avatar or af.AvatarFactory(organization=org)
    footage = af.UploadFactory(organization=org, purpose="footage")
    build = builds.start_build(
        SYSTEM, org, avatar=avatar, footage=footage, consent=af.ConsentFactory(avatar=avatar)
    )
    return build, Workload.objects.for_organization(org).get(pk=build.workload_id)


def test_a_build_whose_workload_failed_unnoticed_is_failed_by_the_sweep(org_a, build_pool):
    build, workload = _queued_build(org_a)
    transition(
        workload,
        "failed",
        "pipeline_failed",
        "The footage has no sound.",
        result={"code": "no_audio", "details": {}},
    )
    assert _build(build).status == "queued"  # its signal never came

    assert builds.sweep_builds(now=NOW) == 1

    build = _build(build)
    assert (build.status, build.failure_code, build.failure_reason) == (
        "failed",
        "no_audio",
        "The footage has no sound.",
    )
    build.avatar.refresh_from_db()
    assert build.avatar.status == AvatarStatus.DRAFT
    assert builds.sweep_builds(now=NOW) == 0  # done once


def test_a_build_whose_workload_gave_up_on_lost_workers_says_so(org_a, build_pool):
    build, workload = _queued_build(org_a)
    transition(
        workload,
        "failed",
        "worker_lost",
        "Its worker was lost (OOMKilled). Gave up after 3 failed attempts.",
        failures=3,
    )

    builds.sweep_builds(now=NOW)

    build = _build(build)
    assert (build.status, build.failure_code) == ("failed", "worker_lost")
    assert build.failure_reason.startswith("The worker running this build was lost 3 times")


def test_a_long_running_build_is_left_to_its_workload_however_silent(org_a, build_pool):
    """Lost workers are the orchestrator's to notice: a build whose workload still runs is never
    failed by the sweep, even hours after its last progress."""
    build, workload = _queued_build(org_a)
    worker = SimulatedWorker()
    assignment = worker.place(workload)
    worker.report(assignment, "progress", {"progress": 0.2, "message": "portrait"})
    assert _build(build).status == "running"

    assert builds.sweep_builds(now=timezone.now() + dt.timedelta(hours=6)) == 0

    assert _build(build).status == "running"


def test_the_task_fails_builds_lost_by_now(org_a):
    lost = _running(af.ready_avatar(organization=org_a), heartbeat_minutes_ago=31)

    assert tasks.requeue_stale_builds() == 1  # NOW is long past: that heartbeat is years old

    assert _build(lost).failure_code == "worker_lost"


# --- Abandoned uploads ---------------------------------------------------------------------------


def _partial_upload(organization) -> Upload:
    upload = uploads.start_upload(
        SYSTEM,
        organization,
        purpose="document",
        filename="faq.txt",
        content_type="text/plain",
        size=10,
    )
    return uploads.receive_chunk(upload, uploads.ContentRange(0, 3, 10), b"abcd")


def test_an_upload_still_receiving_after_seven_days_is_failed_and_its_bytes_deleted(
    org_a, api_a, django_capture_on_commit_callbacks
):
    upload = _partial_upload(org_a)
    path = uploads.path_of(upload)
    started = upload.created_at

    with django_capture_on_commit_callbacks(execute=True):
        early = uploads.purge_abandoned_uploads(now=started + dt.timedelta(days=6, hours=23))
    assert early == 0
    assert path.read_bytes() == b"abcd"

    with django_capture_on_commit_callbacks(execute=True):
        purged = uploads.purge_abandoned_uploads(now=started + dt.timedelta(days=7, minutes=1))

    upload.refresh_from_db()
    assert purged == 1
    assert upload.status == "failed"
    assert upload.failure_reason == (
        "Abandoned: 4 of 10 bytes had arrived 7 days after the upload started, so its bytes were "
        "deleted. Start a new upload."
    )
    assert not path.exists()
    entry = AuditEntry.objects.for_organization(org_a).get(action="upload.purge")
    assert (entry.before["status"], entry.after["status"]) == ("receiving", "failed")
    # The client that comes back at last is told why, and what to do.
    resumed = api_a.generic(
        "PUT",
        f"/api/v1/orgs/{org_a.slug}/uploads/{upload.pk}/",
        b"efghij",
        content_type="application/octet-stream",
        headers={"Content-Range": "bytes 4-9/10"},
    )
    assert resumed.status_code == 409
    assert resumed.json()["code"] == "upload_failed"
    assert "Start a new upload" in resumed.json()["detail"]


def test_complete_and_failed_uploads_are_not_purged(org_a, tmp_path):
    source = tmp_path / "faq.txt"
    source.write_bytes(b"Opening hours: 9 to 5.")
    complete = media.stored_upload(
        org_a, source, purpose="document", content_type="text/plain", status="complete"
    )
    failed = af.UploadFactory(organization=org_a, status="failed", failure_reason="Bad checksum.")

    purged = uploads.purge_abandoned_uploads(now=timezone.now() + dt.timedelta(days=365))

    assert purged == 0
    assert uploads.path_of(complete).read_bytes() == b"Opening hours: 9 to 5."
    failed.refresh_from_db()
    assert failed.failure_reason == "Bad checksum."


def test_the_task_purges_uploads_abandoned_by_now(org_a):
    upload = _partial_upload(org_a)
    Upload.objects.for_organization(org_a).filter(pk=upload.pk).update(
        created_at=timezone.now() - dt.timedelta(days=8)
    )

    assert tasks.purge_abandoned_uploads() == 1


# --- Beat ----------------------------------------------------------------------------------------


def test_beat_runs_the_build_watchdog_every_ten_minutes_and_the_upload_purge_daily():
    watchdog = app.conf.beat_schedule["avatars.requeue_stale_builds"]
    purge = app.conf.beat_schedule["avatars.purge_abandoned_uploads"]

    assert watchdog["task"] == tasks.requeue_stale_builds.name == "avatars.requeue_stale_builds"
    assert watchdog["schedule"].minute == {0, 10, 20, 30, 40, 50}
    assert len(watchdog["schedule"].hour) == 24
    assert purge["task"] == tasks.purge_abandoned_uploads.name == "avatars.purge_abandoned_uploads"
    assert len(purge["schedule"].hour) == len(purge["schedule"].minute) == 1
