"""Avatar builds: what a build needs, the real work of a build on a worker, versions, failures,
cancelling.

A build runs as a `build` workload: the real reconcile pass places it on a worker, the real build
pipeline fetches the footage and delivers the bundle's parts through the worker protocol's HTTP
endpoints, and the build follows the workload to a published version. The worker process itself
is simulated (tests/avatars/building.py: the pipeline runs in the test process and its reports go
through the test client); tests/inference/test_end_to_end.py runs a real worker process. Footage
is real video made by tests/avatars/media.py; where a test is not about the footage's length, a
4-second 360p clip stands in for the 2-minute footage (its upload row is made complete directly,
skipping the upload checks that test_uploads*.py cover).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from unittest import mock

import cv2
import pytest
from django.utils import timezone

from avatars import builds
from avatars.models import Avatar, AvatarBuild, AvatarVersion
from inference import contracts
from inference.models import Priority, WorkerPool, Workload
from inference.pipelines import build as build_pipeline
from tenants.audit import Actor
from tenants.models import AuditEntry
from tests.avatars import media
from tests.avatars.building import SimulatedWorker, committing, run_build
from tests.avatars.factories import (
    AvatarFactory,
    ConsentFactory,
    EmploymentFactory,
    UploadFactory,
)
from tests.avatars.media import media_root  # noqa: F401  (fixture)
from tests.avatars.test_uploads_footage import upload_file

pytestmark = pytest.mark.usefixtures("media_root", "build_pool")


def _builds_url(org, build_id=None, suffix=""):
    base = f"/api/v1/orgs/{org.slug}/builds/"
    return base if build_id is None else f"{base}{build_id}/{suffix}"


def _footage(org, clip=media.SHORT_FOOTAGE):
    return media.stored_upload(org, media.media_file(clip), purpose="footage")


def _start(client, org, avatar, footage, consent):
    body = {"avatar": str(avatar.pk)}
    if footage is not None:
        body["footage"] = str(footage.pk)
    if consent is not None:
        body["consent"] = str(consent.pk)
    return client.post(_builds_url(org), body, format="json")


def _run(org, build_id) -> AvatarBuild:
    return run_build(AvatarBuild.objects.for_organization(org).get(pk=build_id))


def _built(client, org, avatar, clip=media.SHORT_FOOTAGE, consent=None) -> AvatarBuild:
    consent = consent or ConsentFactory(avatar=avatar)
    started = _start(client, org, avatar, _footage(org, clip), consent)
    assert started.status_code == 201, started.content
    return _run(org, started.json()["id"])


def test_two_minutes_of_footage_become_version_one_with_portrait_and_voice(api_a, org_a, settings):
    avatar = AvatarFactory(organization=org_a)
    footage_path = media.media_file(media.VALID_FOOTAGE)
    uploaded = upload_file(api_a, org_a, footage_path)
    assert uploaded.status_code == 200, uploaded.content
    clip = upload_file(
        api_a, org_a, media.audio_only(), purpose="consent_clip", content_type="audio/mp4"
    )
    consent = api_a.post(
        f"/api/v1/orgs/{org_a.slug}/consents/",
        {
            "avatar": str(avatar.pk),
            "subject_name": "Li Na",
            "statement": "I agree that my face and voice make this digital human.",
            "clip": clip.json()["id"],
            "scope": "any",
            "expires_at": (timezone.now() + dt.timedelta(days=365)).isoformat(),
        },
        format="json",
    )
    assert consent.status_code == 201, consent.content

    started = api_a.post(
        _builds_url(org_a),
        {
            "avatar": str(avatar.pk),
            "footage": uploaded.json()["id"],
            "consent": consent.json()["id"],
        },
        format="json",
    )
    assert started.status_code == 201, started.content
    assert started.json()["status"] == "queued"
    assert Avatar.objects.for_organization(org_a).get(pk=avatar.pk).status == "building"
    _run(org_a, started.json()["id"])

    shown = api_a.get(_builds_url(org_a, started.json()["id"])).json()
    assert shown["status"] == "succeeded", shown
    assert (shown["progress"], shown["stage"], shown["failure_reason"]) == (100, "done", "")
    avatar.refresh_from_db()
    version = avatar.current_version
    assert (avatar.status, version.number, str(version.pk)) == (
        "ready",
        1,
        shown["result_version"],
    )
    assert str(version.consent_id) == consent.json()["id"]
    assert version.voice_profile["pitch_hz"] == pytest.approx(media.PITCH_HZ, abs=5)
    assert version.voice_profile["syllables_per_second"] == pytest.approx(
        media.SYLLABLES_PER_SECOND, abs=0.4
    )
    bundle = Path(settings.MEDIA_ROOT) / version.bundle
    assert bundle == Path(settings.MEDIA_ROOT) / f"avatars/{org_a.pk}/{avatar.pk}/v1"
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name, described in manifest["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == described["sha256"]
    assert manifest["version"] == 1
    assert manifest["footage"]["sha256"] == hashlib.sha256(footage_path.read_bytes()).hexdigest()
    portrait = cv2.imread(str(Path(settings.MEDIA_ROOT) / version.portrait))
    assert portrait.shape[:2] == (720, 1280)
    face = manifest["portrait"]["face"]
    assert 0.15 < face["height"] / 720 < 0.3  # the astronaut's face, found in the frame
    assert abs(face["x"] + face["width"] / 2 - 640) < 100
    assert json.loads((bundle / "voice.json").read_text()) == version.voice_profile
    assert manifest["workload"] == shown["workload"]
    workload = Workload.objects.for_organization(org_a).get(pk=shown["workload"])
    assert (workload.kind, workload.state, workload.priority) == ("build", "succeeded", 10)
    # The delivered parts were taken into the bundle; the workload's copies are gone.
    assert not (Path(settings.MEDIA_ROOT) / "inference" / str(org_a.pk)).exists() or not any(
        (Path(settings.MEDIA_ROOT) / "inference" / str(org_a.pk)).iterdir()
    )


def test_a_rebuild_makes_version_two_while_hires_keep_version_one(api_a, org_a, org_b):
    avatar = AvatarFactory(organization=org_a, visibility="public")
    first = _built(api_a, org_a, avatar)
    version_one = first.result_version
    hire = EmploymentFactory(
        organization=org_b, avatar=avatar, avatar_version=version_one, status="active"
    )

    second = _built(api_a, org_a, avatar)

    avatar.refresh_from_db()
    assert [first.status, second.status] == ["succeeded", "succeeded"]
    assert second.result_version.number == 2
    assert avatar.current_version == second.result_version
    hire.refresh_from_db()
    assert hire.avatar_version == version_one
    assert version_one.voice_profile["pitch_hz"] == pytest.approx(media.PITCH_HZ, abs=5)


def test_a_failed_build_leaves_the_previous_version_current(api_a, org_a, settings):
    avatar = AvatarFactory(organization=org_a)
    version_one = _built(api_a, org_a, avatar).result_version

    failed = _built(api_a, org_a, avatar, clip=media.NO_FACE)

    assert failed.status == "failed"
    assert failed.failure_code == "no_face"
    assert failed.failure_reason == (
        "No frontal face was found in the footage; film the person facing the camera."
    )
    assert failed.result_version is None
    avatar.refresh_from_db()
    assert (avatar.status, avatar.current_version) == ("ready", version_one)
    assert AvatarVersion.objects.for_organization(org_a).filter(avatar=avatar).count() == 1
    folder = Path(settings.MEDIA_ROOT) / f"avatars/{org_a.pk}/{avatar.pk}"
    assert sorted(p.name for p in folder.iterdir()) == ["v1"]


def test_a_first_build_that_fails_puts_the_avatar_back_to_draft(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)

    failed = _built(api_a, org_a, avatar, clip=media.NO_FACE)

    avatar.refresh_from_db()
    assert failed.status == "failed"
    assert (avatar.status, avatar.current_version) == ("draft", None)


def test_a_blurred_face_fails_with_what_to_change(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)

    failed = _built(api_a, org_a, avatar, clip=media.BLURRED)

    assert (failed.status, failed.failure_code) == ("failed", "too_blurry")
    assert failed.failure_reason.startswith("The sharpest frame of the face is blurred (sharpness")
    assert failed.failure_reason.endswith("film in focus, with more light and a steady camera.")


def test_progress_is_saved_as_the_stages_go(api_a, org_a):
    """The voice step is wrapped to read the build row (and its workload) while it runs: the
    worker's progress reports have reached the build by then."""
    avatar = AvatarFactory(organization=org_a)
    seen = []
    real_voice_profile = build_pipeline.voice_profile

    def observing(path, on_progress):
        row = AvatarBuild.objects.for_organization(org_a).get(avatar=avatar)
        workload = Workload.objects.for_organization(org_a).get(pk=row.workload_id)
        seen.append((row.status, row.stage, row.progress, workload.state, workload.progress))
        return real_voice_profile(path, on_progress)

    with mock.patch.object(build_pipeline, "voice_profile", observing):
        build = _built(api_a, org_a, avatar)

    assert build.status == "succeeded"
    assert seen == [("running", "voice", 60, "running", 0.6)]
    assert build.started_at <= build.heartbeat_at <= build.finished_at


def test_a_build_needs_consent_and_says_so(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)

    response = _start(api_a, org_a, avatar, _footage(org_a), None)

    assert response.status_code == 400
    assert response.json()["code"] == "consent_required"
    assert "consent" in response.json()["fields"]
    assert "record it with their statement and consent clip" in response.json()["detail"]
    avatar.refresh_from_db()
    assert avatar.status == "draft"
    assert not AvatarBuild.objects.for_organization(org_a).exists()


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("no footage", "footage", "A build needs footage"),
        ("unfinished footage", "footage", "has not finished uploading (10 of 1024 bytes)"),
        ("failed footage", "footage", "This footage failed its checks: The footage is 95 s long"),
        ("consent clip as footage", "footage", "is a recorded consent, not footage"),
        ("expired consent", "consent", "This consent expired on"),
        ("revoked consent", "consent", "revoked this consent"),
        ("another avatar's consent", "consent", "This consent was given for another avatar"),
    ],
)
def test_a_build_without_what_it_needs_is_refused_with_what_is_missing(
    api_a, org_a, case, field, message
):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    footage = UploadFactory(organization=org_a, purpose="footage")
    if case == "no footage":
        footage = None
    elif case == "unfinished footage":
        footage = UploadFactory(
            organization=org_a, purpose="footage", status="receiving", received=10
        )
    elif case == "failed footage":
        footage = UploadFactory(
            organization=org_a,
            purpose="footage",
            status="failed",
            failure_reason="The footage is 95 s long; it needs 2 to 3 minutes.",
        )
    elif case == "consent clip as footage":
        footage = UploadFactory(organization=org_a, purpose="consent_clip")
    elif case == "expired consent":
        consent = ConsentFactory(avatar=avatar, expires_at=timezone.now() - dt.timedelta(days=1))
    elif case == "revoked consent":
        consent = ConsentFactory(avatar=avatar, revoked_at=timezone.now())
    elif case == "another avatar's consent":
        consent = ConsentFactory(avatar=AvatarFactory(organization=org_a))

    response = _start(api_a, org_a, avatar, footage, consent)

    assert response.status_code == 400, response.content
    assert message in response.json()["fields"][field][0]["message"]
    assert not AvatarBuild.objects.for_organization(org_a).exists()


def test_one_build_at_a_time_per_avatar(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    footage = UploadFactory(organization=org_a, purpose="footage")
    assert _start(api_a, org_a, avatar, footage, consent).status_code == 201

    second = _start(api_a, org_a, avatar, footage, consent)

    assert second.status_code == 409
    assert second.json()["code"] == "build_in_progress"


def test_starting_a_build_submits_one_build_workload_at_the_builds_priority(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    footage = UploadFactory(organization=org_a, purpose="footage", sha256="ab" * 32)

    response = _start(api_a, org_a, avatar, footage, consent)

    assert response.status_code == 201, response.content
    build = AvatarBuild.objects.for_organization(org_a).get(pk=response.json()["id"])
    workload = Workload.objects.for_organization(org_a).get()
    assert response.json()["workload"] == str(workload.pk) == str(build.workload_id)
    assert (workload.kind, workload.state, workload.pool.name) == ("build", "queued", "build-cpu")
    assert workload.priority == Priority.BUILD  # below every other kind of work
    assert workload.spec["inputs"]["footage"] == {
        "media": f"uploads/{org_a.pk}/{footage.pk}",
        "sha256": "ab" * 32,
        "bytes": footage.size,
    }
    # Submitting again for the same build (a retried start) is the same workload.
    assert builds._submit(org_a, build) == workload
    assert Workload.objects.for_organization(org_a).count() == 1
    assert AuditEntry.objects.for_organization(org_a).filter(action="build.start").exists()


def test_without_a_build_pool_a_build_is_refused_and_nothing_changes(api_a, org_a):
    WorkerPool.objects.filter(pipeline="build").update(is_active=False)
    avatar = AvatarFactory(organization=org_a)
    footage = UploadFactory(organization=org_a, purpose="footage")

    response = _start(api_a, org_a, avatar, footage, ConsentFactory(avatar=avatar))

    assert response.status_code == 409
    assert response.json()["code"] == "build_capacity_unavailable"
    assert "ask the platform's operators" in response.json()["detail"]
    avatar.refresh_from_db()
    assert avatar.status == "draft"
    assert not AvatarBuild.objects.for_organization(org_a).exists()
    assert not Workload.objects.for_organization(org_a).exists()


def test_cancelling_a_queued_build_ends_it_and_its_workload_never_runs(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    started = _start(api_a, org_a, avatar, _footage(org_a), ConsentFactory(avatar=avatar))
    build_id = started.json()["id"]

    cancelled = api_a.post(_builds_url(org_a, build_id, "cancel/"))
    SimulatedWorker().pass_once()

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    build = AvatarBuild.objects.for_organization(org_a).get(pk=build_id)
    assert (build.status, build.failure_code, build.started_at) == ("cancelled", "cancelled", None)
    workload = Workload.objects.for_organization(org_a).get(pk=build.workload_id)
    assert (workload.state, workload.attempts, workload.worker) == ("cancelled", 0, None)
    avatar.refresh_from_db()
    assert (avatar.status, avatar.current_version) == ("draft", None)


def test_cancelling_a_running_build_ends_it_and_stops_its_worker(api_a, org_a, owner_a, settings):
    """A person cancels while the portrait is being picked (the portrait step is wrapped to send
    the cancel, as the API would, and the worker's next heartbeat); the build ends at once, the
    worker is told to stop, and the parts it still tries to deliver are refused."""
    avatar = AvatarFactory(organization=org_a)
    started = _start(api_a, org_a, avatar, _footage(org_a), ConsentFactory(avatar=avatar))
    build_id = started.json()["id"]
    build = AvatarBuild.objects.for_organization(org_a).get(pk=build_id)
    worker = SimulatedWorker()
    assignment = worker.place(Workload.objects.for_organization(org_a).get(pk=build.workload_id))
    real_pick_portrait = build_pipeline.pick_portrait
    answers, heartbeats = [], []

    def cancelled_meanwhile(path, on_progress):
        with committing():
            answers.append(api_a.post(_builds_url(org_a, build_id, "cancel/")).json())
        beat = {"slots_used": 1, "running": [assignment.workload_id]}
        heartbeats.append(worker.control.post(contracts.HEARTBEAT_PATH, beat))
        return real_pick_portrait(path, on_progress)

    with mock.patch.object(build_pipeline, "pick_portrait", cancelled_meanwhile):
        worker.run(assignment)  # it carries on until its delivery is refused, then stops

    assert answers[0]["status"] == "cancelled"
    assert answers[0]["cancel_requested"] is True
    assert heartbeats[0]["cancel"] == [assignment.workload_id]
    build.refresh_from_db()
    assert build.status == "cancelled"
    assert build.failure_reason == f"Cancelled by {owner_a.user.email}."
    assert build.result_version is None
    assert Workload.objects.for_organization(org_a).get(pk=build.workload_id).state == "cancelled"
    assert not (
        Path(settings.MEDIA_ROOT) / "inference" / str(org_a.pk) / str(build.workload_id)
    ).exists()
    avatar.refresh_from_db()
    assert avatar.status == "draft"


def test_a_finished_build_cannot_be_cancelled_and_following_it_again_changes_nothing(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    build = _built(api_a, org_a, avatar)
    audit_count = AuditEntry.objects.for_organization(org_a).count()

    assert builds.follow_workload(org_a.pk, build.workload_id) is False
    assert builds.sweep_builds() == 0
    cancel = api_a.post(_builds_url(org_a, build.pk, "cancel/"))

    build.refresh_from_db()
    assert build.status == "succeeded"
    assert AvatarVersion.objects.for_organization(org_a).filter(avatar=avatar).count() == 1
    assert AuditEntry.objects.for_organization(org_a).count() == audit_count
    assert cancel.status_code == 409
    assert cancel.json()["code"] == "build_finished"


def test_a_crash_in_the_work_fails_the_build_with_a_reason_and_keeps_the_avatar(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    version_one = _built(api_a, org_a, avatar).result_version

    with mock.patch.object(build_pipeline, "voice_profile", side_effect=MemoryError):
        failed = _built(api_a, org_a, avatar)

    assert (failed.status, failed.failure_code) == ("failed", "internal_error")
    assert "Start the build again" in failed.failure_reason
    avatar.refresh_from_db()
    assert (avatar.status, avatar.current_version) == ("ready", version_one)


def test_builds_are_listed_and_filtered_by_avatar(api_a, org_a):
    mine, other = AvatarFactory(organization=org_a), AvatarFactory(organization=org_a)
    footage = UploadFactory(organization=org_a, purpose="footage")
    build = _start(api_a, org_a, mine, footage, ConsentFactory(avatar=mine)).json()
    _start(api_a, org_a, other, footage, ConsentFactory(avatar=other))

    listed = api_a.get(_builds_url(org_a), {"avatar": str(mine.pk)}).json()["results"]

    assert [row["id"] for row in listed] == [build["id"]]


def test_an_actor_without_avatar_rights_may_follow_but_not_start_builds(
    org_a, member_factory, client_for
):
    analyst = client_for(member_factory(org_a, "analyst"))
    avatar = AvatarFactory(organization=org_a)
    footage = UploadFactory(organization=org_a, purpose="footage")

    refused = _start(analyst, org_a, avatar, footage, ConsentFactory(avatar=avatar))
    listed = analyst.get(_builds_url(org_a))

    assert refused.status_code == 403
    assert listed.status_code == 200


def test_a_consent_that_lapses_during_a_build_stops_it(org_a, owner_a):
    """The consent expires (directly in the database, before the hourly sweep notices) while
    the portrait is being picked; the build is not published, naming the consent."""
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    build = builds.start_build(
        Actor(user=owner_a.user), org_a, avatar=avatar, footage=_footage(org_a), consent=consent
    )
    real_pick_portrait = build_pipeline.pick_portrait

    def revoked_meanwhile(path, on_progress):
        type(consent).objects.for_organization(org_a).filter(pk=consent.pk).update(
            expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        return real_pick_portrait(path, on_progress)

    with mock.patch.object(build_pipeline, "pick_portrait", revoked_meanwhile):
        build = _run(org_a, build.pk)

    assert (build.status, build.failure_code) == ("cancelled", "consent_expired")
    assert "This consent expired on" in build.failure_reason
    assert build.result_version is None
    assert Avatar.objects.for_organization(org_a).get(pk=avatar.pk).status == "draft"
    assert not AvatarVersion.objects.for_organization(org_a).exists()


def test_a_failure_reason_is_in_the_organizations_language(api_a, org_a):
    """The worker says why in English with a code; the build says it in the reader's language."""
    org_a.locale = "zh-hans"
    org_a.save()
    avatar = AvatarFactory(organization=org_a)

    failed = _built(api_a, org_a, avatar, clip=media.NO_FACE)

    assert (failed.status, failed.failure_code) == ("failed", "no_face")
    assert failed.failure_reason == "素材视频中未检测到正脸；请拍摄人物正对镜头的画面。"
    workload = Workload.objects.for_organization(org_a).get(pk=failed.workload_id)
    assert workload.reason.startswith("No frontal face was found")
    assert workload.result == {"code": "no_face", "details": {}}


def test_a_lost_worker_puts_the_build_back_in_the_queue_and_a_new_worker_finishes_it(api_a, org_a):
    """The first worker dies after its first progress report (its pod OOMKilled); the
    orchestrator queues the workload again and places it on a new worker, which builds."""
    avatar = AvatarFactory(organization=org_a)
    started = _start(api_a, org_a, avatar, _footage(org_a), ConsentFactory(avatar=avatar))
    build = AvatarBuild.objects.for_organization(org_a).get(pk=started.json()["id"])
    workload = Workload.objects.for_organization(org_a).get(pk=build.workload_id)
    worker = SimulatedWorker()
    first = worker.place(workload)
    worker.report(first, "progress", {"progress": 0.3, "message": "portrait"})
    build.refresh_from_db()
    assert (build.status, build.stage, build.progress) == ("running", "portrait", 30)

    worker.lose(workload)

    build.refresh_from_db()
    assert (build.status, build.progress) == ("queued", 0)
    second = worker.place(workload)
    assert second.attempt == first.attempt + 1
    worker.run(second)
    build.refresh_from_db()
    assert build.status == "succeeded", build.failure_reason
    assert build.result_version.number == 1
