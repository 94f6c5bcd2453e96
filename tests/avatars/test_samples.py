"""The sample render service (`avatars.samples`): which language it speaks, which portrait it
animates, when it refuses, and which file is its video.

Real: the database, inference's submit, files under a MEDIA_ROOT of the test's own. The console's
side (rendering, following, watching, tenancy) is in tests/console/test_samples.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from avatars import portraits, samples
from inference.models import WorkloadState
from inference.pipelines import render
from inference.pools import EMBEDDED_POOLS, sync_pools
from tenants.audit import Actor
from tenants.errors import ConflictError
from tests.avatars import factories as af

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    sync_pools(EMBEDDED_POOLS)
    return Path(settings.MEDIA_ROOT)


@pytest.mark.parametrize(
    ("tags", "language"),
    [
        (["fr-FR", "en-US", "zh-CN"], "en"),  # the first it can speak
        (["yue-HK"], "yue"),
        (["cmn-Hans-CN"], "zh"),
        ([], "zh"),  # says nothing: as a shift's greeting, Mandarin
        (["fr-FR", "ja-JP"], None),
    ],
)
def test_a_sample_speaks_the_avatars_first_language_the_renderer_can(tags, language):
    assert samples.pipeline_language(af.AvatarFactory.build(languages=tags)) == language


def test_an_own_avatars_portrait_is_its_input_as_stored_and_no_copy_is_made(org_a, owner_a, media):
    avatar = af.with_portrait(af.ready_avatar(organization=org_a, languages=["en-GB"]))

    workload, created = samples.render_sample(Actor(user=owner_a.user), org_a, avatar)

    assert created
    # The render pipeline takes the spec as it is: a greeting in English, the portrait input.
    parsed = render.parse_spec(workload.spec)
    assert parsed["language"] == "en" and parsed["text"].startswith("Hello, I am ")
    assert parsed["size"] == samples.SIZE and parsed["ai_label"] is True
    portrait = workload.spec["inputs"]["portrait"]
    assert portrait["media"] == avatar.current_version.portrait
    assert not (media / portraits.PORTRAITS_FOLDER).exists()


def test_no_sample_of_a_likeness_whose_consent_was_revoked(org_a, owner_a):
    avatar = af.with_portrait(af.ready_avatar(organization=org_a))
    consent = avatar.current_version.consent
    consent.revoked_at = timezone.now()
    consent.save(update_fields=["revoked_at"])

    with pytest.raises(ConflictError) as refused:
        samples.render_sample(Actor(user=owner_a.user), org_a, avatar)

    assert refused.value.code == "consent_not_valid"
    assert not samples.samples_of(org_a, avatar).exists()


def test_only_the_file_named_after_the_workload_is_its_video(org_a, owner_a, media):
    avatar = af.with_portrait(af.ready_avatar(organization=org_a))
    workload, _ = samples.render_sample(Actor(user=owner_a.user), org_a, avatar)
    renders = media / samples.RENDERS_FOLDER
    renders.mkdir(parents=True)
    (renders / "other.mp4").write_bytes(b"another workload's video")
    (renders / f"{workload.pk}.mp4").write_bytes(b"this one's")
    workload.state = WorkloadState.SUCCEEDED

    workload.result = {"video": "other.mp4"}
    named_otherwise = samples.sample_video(workload)
    workload.result = {"video": f"../{samples.RENDERS_FOLDER}/{workload.pk}.mp4"}
    with_a_path = samples.sample_video(workload)
    workload.result = {"video": f"{workload.pk}.mp4"}

    assert named_otherwise is None and with_a_path is None
    assert samples.sample_video(workload) == renders / f"{workload.pk}.mp4"
