"""Footage and consent clips are checked with PyAV when their upload completes; each problem gets
its own message with what was measured. The files are real, made by tests/avatars/media.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from avatars import footage
from avatars.models import Upload
from tests.avatars import media
from tests.avatars.media import media_root  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("media_root")

CHUNK = 4 * 1024 * 1024


def upload_file(
    client, org, path: Path, *, purpose="footage", content_type="video/mp4", filename=None
):
    """Start, send in chunks and complete an upload of `path`; the completion's response."""
    content = path.read_bytes()
    base = f"/api/v1/orgs/{org.slug}/uploads/"
    created = client.post(
        base,
        {
            "purpose": purpose,
            "filename": filename or path.name,
            "content_type": content_type,
            "size": len(content),
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    upload_id = created.json()["id"]
    for offset in range(0, len(content), CHUNK):
        piece = content[offset : offset + CHUNK]
        sent = client.generic(
            "PUT",
            f"{base}{upload_id}/",
            piece,
            content_type="application/octet-stream",
            HTTP_CONTENT_RANGE=f"bytes {offset}-{offset + len(piece) - 1}/{len(content)}",
        )
        assert sent.status_code == 200, sent.content
    return client.post(
        f"{base}{upload_id}/complete/",
        {"sha256": hashlib.sha256(content).hexdigest()},
        format="json",
    )


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        (media.Clip(seconds=10), "The footage is 10 s long; it needs 2 to 3 minutes."),
        (
            media.Clip(width=320, height=180, fps=15, seconds=190),
            "The footage is 190 s long; it needs 2 to 3 minutes.",
        ),
        (
            media.Clip(width=640, height=360, seconds=10),
            "The footage is 640×360 pixels; it needs at least 720p (720 pixels on the short side).",
        ),
        (
            media.Clip(seconds=10, audio=False),
            "The footage has no audio track; film the person speaking, with the sound on.",
        ),
        (
            media.Clip(seconds=10, fps=10),
            "The footage runs at 10 frames per second; it needs 15 to 60.",
        ),
    ],
    ids=["too-short", "too-long", "too-small", "no-audio", "frame-rate"],
)
def test_footage_that_is_not_usable_says_what_was_measured(api_a, org_a, clip, message):
    response = upload_file(api_a, org_a, media.media_file(clip))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_footage"
    assert message in response.json()["detail"]
    upload = Upload.objects.for_organization(org_a).get()
    assert upload.status == "failed"
    assert message in upload.media_info["problems"]
    assert upload.media_info["width"] == clip.width


def test_a_file_that_is_not_a_video_is_refused_clearly(api_a, org_a, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"This is a text file with a video's name.\n" * 100)

    response = upload_file(api_a, org_a, fake)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("This file is not a video we can read (")
    assert Upload.objects.for_organization(org_a).get().status == "failed"


@pytest.mark.parametrize(
    ("duration", "problems"),
    [(114.4, 1), (115.0, 0), (150.0, 0), (185.0, 0), (185.6, 1)],
)
def test_two_to_three_minutes_with_five_seconds_of_tolerance(duration, problems):
    info = footage.MediaInfo(
        format="mp4",
        duration_s=duration,
        has_video=True,
        has_audio=True,
        width=1920,
        height=1080,
        fps=29.97,
    )

    assert len(footage.footage_problems(info)) == problems


def test_portrait_orientation_counts_its_short_side():
    info = footage.MediaInfo(
        format="mp4",
        duration_s=150,
        has_video=True,
        has_audio=True,
        width=720,
        height=1280,
        fps=30,
    )

    assert footage.footage_problems(info) == []


def test_a_consent_clip_may_be_sound_only_but_must_have_sound(api_a, org_a):
    spoken = upload_file(
        api_a, org_a, media.audio_only(), purpose="consent_clip", content_type="audio/mp4"
    )
    silent = upload_file(
        api_a,
        org_a,
        media.media_file(media.Clip(seconds=3, audio=False)),
        purpose="consent_clip",
    )

    assert spoken.status_code == 200, spoken.content
    assert spoken.json()["media_info"]["has_audio"] is True
    assert spoken.json()["media_info"]["has_video"] is False
    assert silent.status_code == 400
    assert silent.json()["detail"] == (
        "The consent clip has no sound; record the person saying their consent."
    )
