"""Avatar builds: what a build needs, the real work of a build, versions, failures, cancelling.

The build's Celery task is called in-process (`tasks.run_build(...)` runs its body), as a worker
would run it; one test checks that starting a build hands it to Celery once the transaction
commits. Footage is real video made by tests/avatars/media.py; where a test is not about the
footage's length, a 4-second 360p clip stands in for the 2-minute footage (its upload row is made
complete directly, skipping the upload checks that test_uploads*.py cover).
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

from avatars import builder, builds, tasks
from avatars.models import Avatar, AvatarBuild, AvatarVersion
from tenants.audit import Actor
from tenants.models import AuditEntry
from tests.avatars import media
from tests.avatars.factories import (
    AvatarFactory,
    ConsentFactory,
    EmploymentFactory,
    UploadFactory,
)
from tests.avatars.media import media_root  # noqa: F401  (fixture)
from tests.avatars.test_uploads_footage import upload_file

pytestmark = pytest.mark.usefixtures("media_root")


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
    tasks.run_build(str(org.pk), str(build_id))
    return AvatarBuild.objects.for_organization(org).get(pk=build_id)


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
    """The voice step is wrapped to read the build row while it runs."""
    avatar = AvatarFactory(organization=org_a)
    seen = []
    real_voice_profile = builder.voice_profile

    def observing(path, on_progress):
        row = AvatarBuild.objects.for_organization(org_a).get(avatar=avatar)
        seen.append((row.status, row.stage, row.progress))
        return real_voice_profile(path, on_progress)

    with mock.patch.object(builder, "voice_profile", observing):
        build = _built(api_a, org_a, avatar)

    assert build.status == "succeeded"
    assert seen == [("running", "voice", 60)]


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


def test_starting_a_build_hands_it_to_celery_once_committed(
    api_a, org_a, django_capture_on_commit_callbacks
):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    footage = UploadFactory(organization=org_a, purpose="footage")

    with mock.patch.object(tasks.run_build, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = _start(api_a, org_a, avatar, footage, consent)
        assert delay.call_count == 0  # not before the commit: the worker would not see the row
        for callback in callbacks:
            callback()

    assert response.status_code == 201
    delay.assert_called_once_with(str(org_a.pk), response.json()["id"])
    assert AuditEntry.objects.for_organization(org_a).filter(action="build.start").exists()


def test_cancelling_a_queued_build_ends_it_and_the_task_then_does_nothing(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    started = _start(api_a, org_a, avatar, _footage(org_a), ConsentFactory(avatar=avatar))
    build_id = started.json()["id"]

    cancelled = api_a.post(_builds_url(org_a, build_id, "cancel/"))
    build = _run(org_a, build_id)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert build.status == "cancelled"
    assert build.failure_code == "cancelled"
    avatar.refresh_from_db()
    assert (avatar.status, avatar.current_version) == ("draft", None)


def test_cancelling_a_running_build_stops_it_at_the_next_step(api_a, org_a, owner_a):
    """A person cancels while the portrait is being picked (the portrait step is wrapped to send
    the cancel, as the API would, then carry on); the build stops before the voice step."""
    avatar = AvatarFactory(organization=org_a)
    started = _start(api_a, org_a, avatar, _footage(org_a), ConsentFactory(avatar=avatar))
    build_id = started.json()["id"]
    real_pick_portrait = builder.pick_portrait
    answers = []

    def cancelled_meanwhile(path, on_progress):
        answers.append(api_a.post(_builds_url(org_a, build_id, "cancel/")).json())
        return real_pick_portrait(path, on_progress)

    with (
        mock.patch.object(builder, "pick_portrait", cancelled_meanwhile),
        mock.patch.object(builder, "voice_profile") as voice_profile,
    ):
        build = _run(org_a, build_id)

    assert answers[0]["status"] == "running"
    assert answers[0]["cancel_requested"] is True
    voice_profile.assert_not_called()
    assert build.status == "cancelled"
    assert build.failure_reason == f"Cancelled by {owner_a.user.email}."
    assert build.result_version is None
    avatar.refresh_from_db()
    assert avatar.status == "draft"


def test_a_finished_build_cannot_be_cancelled_and_running_it_again_changes_nothing(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    build = _built(api_a, org_a, avatar)
    audit_count = AuditEntry.objects.for_organization(org_a).count()

    again = _run(org_a, build.pk)
    cancel = api_a.post(_builds_url(org_a, build.pk, "cancel/"))

    assert again.status == "succeeded"
    assert AvatarVersion.objects.for_organization(org_a).filter(avatar=avatar).count() == 1
    assert AuditEntry.objects.for_organization(org_a).count() == audit_count
    assert cancel.status_code == 409
    assert cancel.json()["code"] == "build_finished"


def test_a_crash_in_the_work_fails_the_build_with_a_reason_and_keeps_the_avatar(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    version_one = _built(api_a, org_a, avatar).result_version

    with mock.patch.object(builder, "voice_profile", side_effect=MemoryError):
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
    """The consent is revoked (directly in the database, as another request would) while the
    portrait is being picked; the build stops at its next step, naming the consent."""
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    build = builds.start_build(
        Actor(user=owner_a.user), org_a, avatar=avatar, footage=_footage(org_a), consent=consent
    )
    real_pick_portrait = builder.pick_portrait

    def revoked_meanwhile(path, on_progress):
        type(consent).objects.for_organization(org_a).filter(pk=consent.pk).update(
            expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        return real_pick_portrait(path, on_progress)

    with mock.patch.object(builder, "pick_portrait", revoked_meanwhile):
        build = _run(org_a, build.pk)

    assert (build.status, build.failure_code) == ("cancelled", "consent_expired")
    assert "This consent expired on" in build.failure_reason
    assert Avatar.objects.for_organization(org_a).get(pk=avatar.pk).status == "draft"
