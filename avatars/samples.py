"""The sample render of an avatar version for an organization: a few seconds of the avatar saying
hello in its first language, so that people can see and hear it before they hire it.

A sample is a `render` workload of the viewing organization (its quota, its bill), queued through
inference like any other; the spec's `sample` names the avatar and version it shows. At most one
is queued or running per organization and version: asking again returns it, and two requests at
once share one idempotency key (the previous sample's id), so only one is queued.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from avatars import employments, portraits
from avatars.models import Avatar
from inference import artifacts
from inference import services as inference
from inference.contracts import PORTRAIT_INPUT
from inference.models import FINAL_STATES, Workload, WorkloadKind, WorkloadState
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)

KEY_PREFIX = "avatar-sample"
SIZE = 256  # as the avatar goes on air (live streams and conversations)
FPS = 25
# Market avatars' portraits copied into a hiring organization's media, as `scheduling.sessions`
# does: a workload's inputs are served from its own organization's media only.
# Where local workers write their videos (`inference.backends`: IRONBOWL_OUTPUT_DIR).
RENDERS_FOLDER = "renders"
# The render pipeline's languages, by the primary subtag of an avatar's language tags.
_PIPELINE_LANGUAGES = {"zh": "zh", "cmn": "zh", "yue": "yue", "en": "en"}


# --- Selectors ------------------------------------------------------------------------------------


def samples_of(organization: Organization, avatar: Avatar) -> QuerySet[Workload]:
    """The organization's sample renders of the avatar (any version), newest first."""
    return (
        Workload.objects.for_organization(organization)
        .filter(kind=WorkloadKind.RENDER, spec__sample__avatar=str(avatar.pk))
        .order_by("-created_at", "-id")
    )


def sample_to_show(organization: Organization, avatar: Avatar) -> Workload | None:
    """The sample of the avatar's current version the organization sees: the newest one whose
    video is there, else the newest (queued, running, failed…), else None."""
    version = avatar.current_version
    if version is None:
        return None
    rows = samples_of(organization, avatar).filter(spec__sample__version=str(version.pk))
    for workload in rows.filter(state=WorkloadState.SUCCEEDED)[:3]:
        if sample_video(workload) is not None:
            return workload
    return rows.first()


def sample_video(workload: Workload) -> Path | None:
    """The MP4 a succeeded sample render made, if it is stored here: delivered as the workload's
    output (checked against the SHA-256 its result gives), or written by a local worker into
    MEDIA_ROOT/renders/. Only the file named after this workload is ever read."""
    name = workload.result.get("video")
    if workload.state != WorkloadState.SUCCEEDED or name != f"{workload.pk}.mp4":
        return None
    sha256 = workload.result.get("sha256")
    if isinstance(sha256, str):
        delivered = artifacts.output_file(workload, name, sha256)
        if delivered is not None:
            return delivered
    local = Path(settings.MEDIA_ROOT) / RENDERS_FOLDER / name
    return local if local.is_file() else None


def pipeline_language(avatar: Avatar) -> str | None:
    """The render pipeline's language for the avatar's first language it can speak (zh when the
    avatar lists none); None when it speaks only languages the pipeline cannot."""
    tags = list(avatar.languages) or ["zh-CN"]
    for tag in tags:
        primary = str(tag).split("-", 1)[0].lower()
        if primary in _PIPELINE_LANGUAGES:
            return _PIPELINE_LANGUAGES[primary]
    return None


def greeting(avatar: Avatar, language: str) -> str:
    """One sentence of hello in the avatar's language (what it says, not the console's words)."""
    if language == "en":
        return f"Hello, I am {avatar.name_en or avatar.name_zh}. It is a pleasure to serve you."
    if language == "yue":
        return f"你好，我係{avatar.name_zh}，好高興為你服務。"
    return f"您好，我是{avatar.name_zh}，很高兴为您服务。"


# --- Services -------------------------------------------------------------------------------------


def render_sample(
    actor: Actor, organization: Organization, avatar: Avatar
) -> tuple[Workload, bool]:
    """Queue a sample render of the avatar's current version for the organization; returns the
    workload and whether it is new. A sample that is queued or running, or one whose video is
    there, is returned instead of queueing another."""
    version = avatar.current_version
    if version is None:
        raise ConflictError(
            "no_version", _("This avatar has no built version yet, so there is nothing to render.")
        )
    rows = samples_of(organization, avatar).filter(spec__sample__version=str(version.pk))
    unfinished = rows.exclude(state__in=FINAL_STATES).first()
    if unfinished is not None:
        return unfinished, False
    shown = sample_to_show(organization, avatar)
    if shown is not None and sample_video(shown) is not None:
        return shown, False
    consent = version.consent
    if not (consent.is_valid() and employments.consent_covers(consent, organization)):
        raise ConflictError(
            "consent_not_valid",
            _(
                "The consent of the person behind %(avatar)s does not allow your organization to "
                "render this likeness now."
            )
            % {"avatar": str(avatar)},
        )
    language = pipeline_language(avatar)
    if language is None:
        raise DomainError(
            "no_speakable_language",
            _(
                "%(avatar)s speaks none of the languages samples are rendered in (Mandarin, "
                "Cantonese, English)."
            )
            % {"avatar": str(avatar)},
        )
    portrait = portraits.portrait_input(organization, version)
    if portrait is None:
        raise ConflictError(
            "no_portrait",
            _("%(avatar)s has no portrait to animate yet, so no sample can be rendered.")
            % {"avatar": str(avatar)},
        )
    spec = {
        "text": greeting(avatar, language),
        "language": language,
        "inputs": {PORTRAIT_INPUT: portrait},
        "size": SIZE,
        "fps": FPS,
        "ai_label": True,
        "sample": {"avatar": str(avatar.pk), "version": str(version.pk), "number": version.number},
    }
    previous = rows.first()
    key = f"{KEY_PREFIX}:{version.pk}:{previous.pk if previous is not None else 'first'}"
    try:
        with transaction.atomic():
            workload, created = inference.submit(
                organization, kind=WorkloadKind.RENDER, spec=spec, idempotency_key=key
            )
            if created:
                audit.record(
                    actor, organization, "workload.submit", workload, after=audit.snapshot(workload)
                )
    except inference.InferenceError as error:
        logger.error("sample_not_submitted", organization=organization.slug, error=str(error))
        raise ConflictError(
            "render_capacity_unavailable",
            _(
                "No GPU pool renders videos at the moment, so the sample cannot be queued; ask "
                "the platform's operators."
            ),
        ) from error
    return workload, created
