"""The console's custom avatars: avatars and builds listed, an avatar created, footage uploaded
with the resumable protocol, consent recorded, a build started and followed.

Real: the Django stack (sessions, CSRF where a test turns it on, middleware, templates), the
avatars services and the API's serializers behind the forms, the API's resumable uploads called
with the console's session and CSRF token, footage probed by PyAV (a real 2-minute video made by
tests/avatars/media.py), builds submitted to inference as real workloads. Simulated: the
browser (the Django test client sends what upload.js sends; the Chromium journey is in
tests/e2e), a dropped connection (a chunk whose body arrived cut short), and a build's progress
and failure (written on the build as its workload would, instead of running the pipeline; the
real pipeline is tests/avatars/test_builds.py's).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from avatars.models import Avatar, AvatarBuild, Consent, Upload
from tenants.roles import Role
from tests.avatars import media
from tests.avatars.building import build_pool  # noqa: F401  (fixture)
from tests.avatars.factories import (
    AvatarBuildFactory,
    AvatarFactory,
    ConsentFactory,
    UploadFactory,
)
from tests.avatars.media import media_root  # noqa: F401  (fixture)
from tests.console.conftest import submit_token, without_tokens

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


def url(name: str, org: Any, *args: Any) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


def html(response: Any) -> str:
    return str(response.content.decode())


def field_errors(page: str, name: str) -> str:
    """The errors shown next to one field (its error list), or "" when it has none."""
    match = re.search(rf'<ul class="errors" id="field-{name}-errors"[^>]*>(.*?)</ul>', page, re.S)
    return match.group(1) if match else ""


def clip_of(org: Any, **fields: Any) -> Upload:
    return UploadFactory(organization=org, purpose="consent_clip", **fields)


def footage_of(org: Any, **fields: Any) -> Upload:
    return UploadFactory(
        organization=org, **{"purpose": "footage", "filename": "anchor.mp4", **fields}
    )


def consent_post(page: str, avatar: Avatar, upload: Upload, /, **changes: str) -> dict[str, str]:
    return {
        "submit_token": submit_token(page),
        "subject_name": "Li Na",
        "statement": "I agree that my face and voice make this digital human.",
        "clip": str(upload.pk),
        "scope": "owner",
        "scope_organizations": "",
        "expires_at": "2031-05-01T09:30",
        **changes,
    }


# --- Lists and the avatar form -------------------------------------------------------------------


def test_the_section_lists_the_organizations_own_avatars_and_builds_only(console_a, org_a, org_b):
    mine = AvatarFactory(organization=org_a, name_zh="健康主播", name_en="Health anchor")
    build = AvatarBuildFactory(avatar=mine, status="running", progress=40)
    theirs = AvatarFactory(organization=org_b, name_zh="市场监管助手", name_en="Bureau helper")
    AvatarBuildFactory(avatar=theirs)

    page = html(console_a.get(url("avatars", org_a)))

    assert "健康主播" in page and "Health anchor" in page
    assert url("build-detail", org_a, build.pk) in page
    assert "市场监管助手" not in page and "Bureau helper" not in page
    assert str(theirs.pk) not in page


def test_an_avatar_is_created_as_a_draft_and_shown(console_a, org_a):
    form = html(console_a.get(url("avatar-create", org_a)))
    response = console_a.post(
        url("avatar-create", org_a),
        {
            "submit_token": submit_token(form),
            "name_zh": "科普讲解员",
            "name_en": "Science presenter",
            "languages": "zh-cn, yue-HK",
            "skills": ["presenter", "guide"],
            "persona": "Calm and clear.",
            "description": "",
        },
    )

    avatar = Avatar.objects.for_organization(org_a).get()
    assert response.status_code == 302
    assert response["Location"] == url("avatar-detail", org_a, avatar.pk)
    assert avatar.status == "draft" and avatar.visibility == "private"
    assert avatar.languages == ["zh-CN", "yue-HK"]
    assert avatar.skills == ["presenter", "guide"]
    detail = html(console_a.get(response["Location"]))
    assert "科普讲解员" in detail and "zh-CN, yue-HK" in detail


def test_a_bad_avatar_form_says_why_next_to_each_field_and_creates_nothing(console_a, org_a):
    form = html(console_a.get(url("avatar-create", org_a)))
    response = console_a.post(
        url("avatar-create", org_a),
        {
            "submit_token": submit_token(form),
            "name_zh": "",
            "name_en": "Kept as typed",
            "languages": "zh-CN, not a tag!",
            "skills": ["juggling"],
        },
    )

    page = html(response)
    assert response.status_code == 400
    assert "This field may not be blank." in field_errors(page, "name_zh")
    assert field_errors(page, "languages")
    assert "juggling" in field_errors(page, "skills")
    assert 'value="Kept as typed"' in page
    assert not Avatar.objects.for_organization(org_a).exists()


# --- Consent --------------------------------------------------------------------------------------


def test_consent_is_recorded_with_its_expiry_in_the_organizations_time_zone(console_a, org_a):
    org_a.time_zone = "Asia/Shanghai"
    org_a.save()
    avatar = AvatarFactory(organization=org_a)
    clip = clip_of(org_a, filename="li-na-consent.m4a")
    form = html(console_a.get(url("consent-create", org_a, avatar.pk)))
    assert "li-na-consent.m4a" in form and "Asia/Shanghai" in form

    response = console_a.post(
        url("consent-create", org_a, avatar.pk), consent_post(form, avatar, clip)
    )

    assert response.status_code == 302
    assert response["Location"] == url("avatar-detail", org_a, avatar.pk)
    consent = Consent.objects.for_organization(org_a).get()
    assert (consent.avatar_id, consent.clip_id, consent.scope) == (avatar.pk, clip.pk, "owner")
    assert consent.expires_at == dt.datetime(2031, 5, 1, 1, 30, tzinfo=dt.UTC)
    detail = html(console_a.get(response["Location"]))
    assert "Li Na" in detail and "2031-05-01 09:30" in detail


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"subject_name": ""}, "subject_name", "This field may not be blank."),
        ({"clip": ""}, "clip", "This field is required."),
        ({"expires_at": ""}, "expires_at", "This field is required."),
        ({"expires_at": "2001-01-01T00:00"}, "expires_at", "The expiry must be in the future."),
        ({"scope": "listed"}, "scope_organizations", "name at least one organization"),
        (
            {"scope": "listed", "scope_organizations": "no-such-org"},
            "scope_organizations",
            "no-such-org",
        ),
        ({"scope": "everyone"}, "scope", "is not a valid choice."),
    ],
)
def test_a_bad_consent_says_why_next_to_the_field_and_records_nothing(
    console_a, org_a, changes, field, message
):
    avatar = AvatarFactory(organization=org_a)
    clip = clip_of(org_a)
    form = html(console_a.get(url("consent-create", org_a, avatar.pk)))

    response = console_a.post(
        url("consent-create", org_a, avatar.pk), consent_post(form, avatar, clip, **changes)
    )

    page = html(response)
    assert response.status_code == 400
    assert message in field_errors(page, field)
    assert 'value="Li Na"' in page or changes.get("subject_name") == ""
    assert not Consent.objects.for_organization(org_a).exists()


def test_a_consent_clip_that_has_not_arrived_or_is_another_organizations_is_refused(
    console_a, org_a, org_b
):
    avatar = AvatarFactory(organization=org_a)
    form = html(console_a.get(url("consent-create", org_a, avatar.pk)))
    unfinished = clip_of(org_a, status="receiving", received=10)
    foreign = clip_of(org_b)

    half = console_a.post(
        url("consent-create", org_a, avatar.pk), consent_post(form, avatar, unfinished)
    )
    theirs = console_a.post(
        url("consent-create", org_a, avatar.pk), consent_post(form, avatar, foreign)
    )
    missing_id = uuid.uuid4()
    missing = console_a.post(
        url("consent-create", org_a, avatar.pk),
        consent_post(form, avatar, foreign, clip=str(missing_id)),
    )

    assert "has not finished uploading (10 of 1024 bytes)" in field_errors(html(half), "clip")
    assert field_errors(html(theirs), "clip") == f"<li>No such object: {foreign.pk}.</li>"
    assert field_errors(html(missing), "clip") == f"<li>No such object: {missing_id}.</li>"
    assert not Consent.objects.for_organization(org_a).exists()


def test_sending_the_consent_form_twice_records_it_once(console_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    clip = clip_of(org_a)
    form = html(console_a.get(url("consent-create", org_a, avatar.pk)))
    body = consent_post(form, avatar, clip)

    first = console_a.post(url("consent-create", org_a, avatar.pk), body)
    second = console_a.post(url("consent-create", org_a, avatar.pk), body)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Consent.objects.for_organization(org_a).count() == 1


# --- Builds ---------------------------------------------------------------------------------------


def build_post(page: str, footage: Any, consent: Any) -> dict[str, str]:
    return {"submit_token": submit_token(page), "footage": str(footage), "consent": str(consent)}


@pytest.mark.usefixtures("build_pool")
def test_a_build_is_started_once_even_when_the_form_is_sent_twice(console_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    footage = footage_of(org_a)
    consent = ConsentFactory(avatar=avatar)
    form = html(console_a.get(url("build-start", org_a, avatar.pk)))
    assert "anchor.mp4" in form and consent.subject_name in form

    first = console_a.post(
        url("build-start", org_a, avatar.pk), build_post(form, footage.pk, consent.pk)
    )
    second = console_a.post(
        url("build-start", org_a, avatar.pk), build_post(form, footage.pk, consent.pk)
    )

    build = AvatarBuild.objects.for_organization(org_a).get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == url("build-detail", org_a, build.pk)
    assert (build.footage_id, build.consent_id, build.status) == (footage.pk, consent.pk, "queued")
    assert build.workload_id is not None
    assert Avatar.objects.for_organization(org_a).get(pk=avatar.pk).status == "building"
    page = html(console_a.get(first["Location"]))
    assert 'hx-trigger="every 2s"' in page and "Waiting for a GPU worker" in page


@pytest.mark.usefixtures("build_pool")
def test_another_organizations_footage_is_refused_like_missing_footage(console_a, org_a, org_b):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    foreign = footage_of(org_b)
    form = html(console_a.get(url("build-start", org_a, avatar.pk)))
    assert str(foreign.pk) not in form

    theirs = console_a.post(
        url("build-start", org_a, avatar.pk), build_post(form, foreign.pk, consent.pk)
    )
    missing_id = uuid.uuid4()
    missing = console_a.post(
        url("build-start", org_a, avatar.pk), build_post(form, missing_id, consent.pk)
    )

    assert theirs.status_code == missing.status_code == 400
    assert field_errors(html(theirs), "footage") == f"<li>No such object: {foreign.pk}.</li>"
    assert field_errors(html(missing), "footage") == f"<li>No such object: {missing_id}.</li>"
    assert not AvatarBuild.objects.for_organization(org_a).exists()
    assert Avatar.objects.for_organization(org_a).get(pk=avatar.pk).status == "draft"


@pytest.mark.usefixtures("build_pool")
def test_a_build_refused_by_the_domain_says_why_next_to_the_field(console_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    unfinished = footage_of(org_a, status="receiving", received=100)
    expired = ConsentFactory(avatar=avatar)
    form = html(console_a.get(url("build-start", org_a, avatar.pk)))

    half = console_a.post(
        url("build-start", org_a, avatar.pk), build_post(form, unfinished.pk, expired.pk)
    )
    assert "has not finished uploading (100 of 1024 bytes)" in field_errors(html(half), "footage")

    Consent.objects.for_organization(org_a).filter(pk=expired.pk).update(
        expires_at=timezone.now() - dt.timedelta(days=1)
    )
    complete = footage_of(org_a)
    lapsed = console_a.post(
        url("build-start", org_a, avatar.pk), build_post(form, complete.pk, expired.pk)
    )
    assert "This consent expired on" in field_errors(html(lapsed), "consent")
    assert not AvatarBuild.objects.for_organization(org_a).exists()


def test_build_progress_polls_while_the_build_runs_and_stops_when_it_ends(console_a, org_a):
    build = AvatarBuildFactory(
        avatar=AvatarFactory(organization=org_a), status="running", progress=40, stage="portrait"
    )
    progress_url = url("build-progress", org_a, build.pk)

    running = html(console_a.get(progress_url, headers={"HX-Request": "true"}))
    assert 'hx-trigger="every 2s"' in running and f'hx-get="{progress_url}"' in running
    assert 'value="40"' in running and "40%" in running and "Choosing the portrait" in running
    assert "<html" not in running  # only the part that htmx swaps

    AvatarBuild.objects.for_organization(org_a).filter(pk=build.pk).update(
        status="succeeded", progress=100, stage="done"
    )
    done = html(console_a.get(progress_url, headers={"HX-Request": "true"}))
    assert "hx-trigger" not in done and 'data-status="succeeded"' in done


def test_a_failed_build_says_what_went_wrong_in_plain_words(console_a, org_a):
    reason = "No frontal face was found in the footage; film the person facing the camera."
    build = AvatarBuildFactory(
        avatar=AvatarFactory(organization=org_a),
        status="failed",
        progress=30,
        stage="portrait",
        failure_code="no_face",
        failure_reason=reason,
    )

    page = html(console_a.get(url("build-detail", org_a, build.pk)))

    assert "No face was found in the footage" in page
    assert reason in page
    assert "The avatar is as it was before the build." in page
    assert "hx-trigger" not in page


@pytest.mark.usefixtures("build_pool")
def test_a_running_build_is_cancelled_once(console_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    form = html(console_a.get(url("build-start", org_a, avatar.pk)))
    started = console_a.post(
        url("build-start", org_a, avatar.pk),
        build_post(form, footage_of(org_a).pk, ConsentFactory(avatar=avatar).pk),
    )
    page = html(console_a.get(started["Location"]))
    build = AvatarBuild.objects.for_organization(org_a).get()
    body = {"submit_token": submit_token(page)}

    first = console_a.post(url("build-cancel", org_a, build.pk), body)
    second = console_a.post(url("build-cancel", org_a, build.pk), body)

    assert first.status_code == second.status_code == 302
    build.refresh_from_db()
    assert build.status == "cancelled" and build.cancel_requested
    shown = html(console_a.get(first["Location"]))
    assert "The build was cancelled." in shown
    assert "This build has already ended" not in shown  # the second send did not act again


# --- Tenancy and roles ----------------------------------------------------------------------------


def test_another_organizations_avatar_build_and_upload_answer_like_missing_ones(
    console_b, org_a, org_b, owner_b
):
    avatar = AvatarFactory(organization=org_a)
    build = AvatarBuildFactory(avatar=avatar, status="running")
    upload = footage_of(org_a)
    missing = uuid.uuid4()
    pages = [
        ("avatar-detail", avatar.pk),
        ("consent-create", avatar.pk),
        ("build-start", avatar.pk),
        ("build-detail", build.pk),
        ("build-progress", build.pk),
        ("upload-detail", upload.pk),
    ]
    for name, pk in pages:
        foreign = console_b.get(url(name, org_b, pk))
        absent = console_b.get(url(name, org_b, missing))
        assert foreign.status_code == absent.status_code == 404, name
        assert without_tokens(foreign.content) == without_tokens(absent.content), name
        # And org_a's URL itself is another organization's: 404 before anything else.
        assert console_b.get(url(name, org_a, pk)).status_code == 404, name

    cancel = console_b.post(url("build-cancel", org_b, build.pk), {"submit_token": "t"})
    assert cancel.status_code == 404
    build.refresh_from_db()
    assert build.status == "running"
    api = console_b.get(f"/api/v1/orgs/{org_b.slug}/uploads/{upload.pk}/")
    assert api.status_code == 404


def test_another_organizations_uploads_are_neither_listed_nor_offered(console_a, org_a, org_b):
    avatar = AvatarFactory(organization=org_a)
    their_footage = footage_of(org_b, filename="bureau-footage.mp4")
    their_clip = clip_of(org_b, filename="bureau-consent.m4a")

    pages = [
        html(console_a.get(url("upload-list", org_a))),
        html(console_a.get(url("consent-create", org_a, avatar.pk))),
        html(console_a.get(url("build-start", org_a, avatar.pk))),
        html(console_a.get(url("avatar-detail", org_a, avatar.pk))),
    ]

    for page in pages:
        assert "bureau-footage.mp4" not in page and str(their_footage.pk) not in page
        assert "bureau-consent.m4a" not in page and str(their_clip.pk) not in page
        assert org_b.slug not in page


def test_an_analyst_sees_avatars_and_builds_but_cannot_upload_build_or_record_consent(
    org_a, member_factory, console_for
):
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    avatar = AvatarFactory(organization=org_a, name_zh="导诊员")
    build = AvatarBuildFactory(avatar=avatar, status="running", progress=10)
    consent = build.consent

    index = html(analyst.get(url("avatars", org_a)))
    assert "导诊员" in index
    assert url("avatar-create", org_a) not in index and url("upload-list", org_a) not in index
    detail = html(analyst.get(url("avatar-detail", org_a, avatar.pk)))
    assert url("build-start", org_a, avatar.pk) not in detail
    assert url("consent-create", org_a, avatar.pk) not in detail
    progress = html(analyst.get(url("build-detail", org_a, build.pk)))
    assert "10%" in progress and url("build-cancel", org_a, build.pk) not in progress

    for name, args in [
        ("upload-list", ()),
        ("avatar-create", ()),
        ("consent-create", (avatar.pk,)),
        ("build-start", (avatar.pk,)),
    ]:
        assert analyst.get(url(name, org_a, *args)).status_code == 403, name
    refused = analyst.post(
        url("build-start", org_a, avatar.pk),
        {"footage": str(build.footage_id), "consent": str(consent.pk)},
    )
    assert refused.status_code == 403
    assert analyst.post(url("build-cancel", org_a, build.pk)).status_code == 403
    assert AvatarBuild.objects.for_organization(org_a).count() == 1
    started = analyst.post(
        f"/api/v1/orgs/{org_a.slug}/uploads/",
        {"purpose": "footage", "filename": "a.mp4", "content_type": "video/mp4", "size": 10},
        content_type="application/json",
    )
    assert started.status_code == 403


def test_an_operator_uploads_footage_but_does_not_build(org_a, member_factory, console_for):
    operator = console_for(member_factory(org_a, Role.OPERATOR))
    avatar = AvatarFactory(organization=org_a)

    assert operator.get(url("upload-list", org_a)).status_code == 200
    assert operator.get(url("build-start", org_a, avatar.pk)).status_code == 403
    assert url("build-start", org_a, avatar.pk) not in html(
        operator.get(url("avatar-detail", org_a, avatar.pk))
    )


# --- Uploads: the resumable protocol as the upload page drives it ---------------------------------


def upload_page_config(client: Client, org: Any) -> dict[str, Any]:
    """What upload.js reads from the upload page: the widget's ids and its JSON configuration."""
    page = html(client.get(url("upload-list", org)))
    for element in ("upload-file", "upload-progress", "upload-status", "upload-start"):
        assert f'id="{element}"' in page, element
    assert "console/upload.js" in page
    found = re.search(
        r'<script id="upload-config" type="application/json">(.*?)</script>', page, re.S
    )
    assert found
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def put_chunk(
    client: Client,
    config: dict[str, Any],
    upload_id: str,
    data: bytes,
    start: int,
    total: int,
    csrf: str,
    announce: int | None = None,
) -> Any:
    end = start + (announce if announce is not None else len(data)) - 1
    return client.generic(
        "PUT",
        f"{config['api']}{upload_id}/",
        data,
        content_type="application/octet-stream",
        headers={"Content-Range": f"bytes {start}-{end}/{total}", "X-CSRFToken": csrf},
    )


def test_footage_uploaded_from_the_console_resumes_after_a_dropped_connection(owner_a, org_a):
    """What upload.js does, step by step, with the console's session and CSRF token: start, send
    chunks, lose one halfway, ask the offset, resume from it, complete with the SHA-256."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner_a.user)
    config = upload_page_config(client, org_a)
    csrf = client.cookies[config["csrfCookie"]].value
    content = media.media_file(media.VALID_FOOTAGE).read_bytes()
    total, chunk = len(content), 1024 * 1024
    assert config["api"] == f"/api/v1/orgs/{org_a.slug}/uploads/"
    assert config["types"]["footage"]["video/mp4"] == [".mp4", ".m4v"]
    assert 0 < config["chunkBytes"] <= 8 * 1024 * 1024

    without_token = client.post(
        config["api"],
        {
            "purpose": "footage",
            "filename": "anchor.mp4",
            "content_type": "video/mp4",
            "size": total,
        },
        content_type="application/json",
    )
    assert without_token.status_code == 403  # the session alone is not enough: CSRF is checked
    started = client.post(
        config["api"],
        {
            "purpose": "footage",
            "filename": "anchor.mp4",
            "content_type": "video/mp4",
            "size": total,
        },
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert started.status_code == 201, started.content
    upload_id = started.json()["id"]

    assert (
        put_chunk(client, config, upload_id, content[:chunk], 0, total, csrf).json()["received"]
        == chunk
    )
    cut = put_chunk(
        client, config, upload_id, content[chunk : chunk + 1000], chunk, total, csrf, announce=chunk
    )
    assert cut.status_code == 400  # the connection dropped: part of the chunk's body arrived

    # The page shows how far it got, and the API tells the script where to resume.
    detail = html(client.get(url("upload-detail", org_a, upload_id)))
    assert "receiving" in detail and "This upload has not finished" in detail
    offset = client.get(f"{config['api']}{upload_id}/").json()["received"]
    assert offset == chunk
    early = client.post(
        f"{config['api']}{upload_id}/complete/",
        {"sha256": hashlib.sha256(content).hexdigest()},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert early.status_code == 409 and early.json()["code"] == "upload_incomplete"
    while offset < total:
        sent = put_chunk(
            client, config, upload_id, content[offset : offset + chunk], offset, total, csrf
        )
        assert sent.status_code == 200, sent.content
        offset = sent.json()["received"]

    done = client.post(
        f"{config['api']}{upload_id}/complete/",
        {"sha256": hashlib.sha256(content).hexdigest()},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "complete"
    detail = html(client.get(url("upload-detail", org_a, upload_id)))
    assert 'data-status="complete"' in detail and "1280×720" in detail
    listed = html(client.get(url("upload-list", org_a)))
    assert url("upload-detail", org_a, upload_id) in listed
    avatar = AvatarFactory(organization=org_a)
    build_form = html(client.get(url("build-start", org_a, avatar.pk)))
    assert f'<option value="{upload_id}"' in build_form  # ready to build from


def test_footage_that_fails_its_checks_shows_what_was_measured(owner_a, org_a, console_a):
    content = media.media_file(media.SHORT_FOOTAGE).read_bytes()
    config = upload_page_config(console_a, org_a)
    upload_id = console_a.post(
        config["api"],
        {
            "purpose": "footage",
            "filename": "short.mp4",
            "content_type": "video/mp4",
            "size": len(content),
        },
        content_type="application/json",
    ).json()["id"]
    assert put_chunk(console_a, config, upload_id, content, 0, len(content), "").status_code == 200

    refused = console_a.post(
        f"{config['api']}{upload_id}/complete/",
        {"sha256": hashlib.sha256(content).hexdigest()},
        content_type="application/json",
    )

    assert refused.status_code == 400 and refused.json()["code"] == "invalid_footage"
    detail = html(console_a.get(url("upload-detail", org_a, upload_id)))
    assert 'data-status="failed"' in detail
    assert "2 to 3 minutes" in detail or "seconds" in detail


def test_the_consent_page_offers_to_upload_the_recorded_consent(console_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    page = html(console_a.get(url("consent-create", org_a, avatar.pk)))
    found = re.search(
        r'<script id="upload-config" type="application/json">(.*?)</script>', page, re.S
    )
    assert found
    config = json.loads(found.group(1))
    assert config["purpose"] == "consent_clip" and config["select"] == "field-clip"
    assert 'id="field-clip"' in page and 'id="upload-file"' in page
