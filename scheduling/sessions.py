"""Opening a conversation at a station: a `session` workload for one visitor, and its token.

The organization's widget or kiosk backend asks (with an API key) for a session at a station,
naming the digital employee who answers; a visitor's browser asks the public widget endpoint
with the station's widget key, and whoever is on duty there answers. At a station with a roster
only an employment on duty there takes conversations. A session is GPU work like any other: it
waits for a slot within the organization's quota, and the visitor's socket says so while it waits.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars import employments, portraits
from avatars.models import Employment, EmploymentStatus, KnowledgeEntry
from inference import services as inference
from inference import sessions
from inference.contracts import PORTRAIT_INPUT
from inference.models import Workload, WorkloadKind
from scheduling import selectors
from scheduling.models import Station
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError
from tenants.models import Organization

LANGUAGES = ("zh", "yue", "en")
IDLE_TIMEOUT_S = 120
MAX_MINUTES = 30
VIDEO_SIZE = 256


def pipeline_language(tag: str) -> str | None:
    """The pipeline's language for a BCP-47 tag (zh-CN → zh, yue-HK → yue, en-US → en)."""
    primary = tag.split("-", 1)[0].lower()
    if primary in ("zh", "cmn"):
        return "zh"
    return primary if primary in ("yue", "en") else None


def portrait_of(employment: Employment) -> dict[str, Any] | None:
    """The portrait of the employment's avatar version as a workload input, or None."""
    return portraits.portrait_input(employment.organization, employment.avatar_version)


@transaction.atomic
def open_session(
    actor: Actor,
    station: Station,
    employment: Employment,
    *,
    language: str = "zh",
    video: bool = True,
    idempotency_key: str = "",
) -> tuple[Workload, sessions.Ticket, bool]:
    """Queue a conversation with `employment` at `station`; returns the workload, the visitor's
    token and whether the workload is new (an idempotency key seen before returns the first)."""
    organization = station.organization
    if not station.is_active:
        raise ConflictError(
            "station_inactive", _("This station is switched off; switch it on first.")
        )
    if employment.status != EmploymentStatus.ACTIVE:
        raise ConflictError(
            "employment_not_active",
            _("This digital employee is not active, so it cannot take conversations."),
            field="employment",
        )
    if selectors.is_rostered(station) and not selectors.is_on_duty(
        station, employment, timezone.now()
    ):
        raise ConflictError(
            "not_on_duty",
            _(
                "This digital employee is not on duty at this station now; its roster says "
                "when it is."
            ),
            field="employment",
        )
    entry_ids, _documents = employments.attached_knowledge(employment)
    if not entry_ids:
        raise ConflictError(
            "no_knowledge",
            _("Attach knowledge entries to this digital employee before opening conversations."),
            field="employment",
        )
    portrait = portrait_of(employment) if video else None
    spec: dict[str, Any] = {
        "station": str(station.pk),
        "employment": str(employment.pk),
        "language": language,
        "video": bool(video and portrait),
        "size": VIDEO_SIZE,
        "fps": 25,
        "ai_label": True,
        "persona": employment.persona[:2000],
        "idle_timeout_s": IDLE_TIMEOUT_S,
        "max_minutes": MAX_MINUTES,
    }
    if portrait:
        spec["inputs"] = {PORTRAIT_INPUT: portrait}
    workload, created = inference.submit(
        organization,
        kind=WorkloadKind.SESSION,
        spec=spec,
        idempotency_key=idempotency_key,
        platform=True,  # the platform writes the spec (the budget's 24/7 exemption trusts it)
    )
    if created:
        audit.record(
            actor, organization, "workload.submit", workload, after=audit.snapshot(workload)
        )
    return workload, sessions.issue_token(workload), created


def knowledge_for_session(organization: Organization, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries attached to the session's digital employee, in the pipeline's languages
    (entries in other languages cannot be spoken, so they are left out)."""
    try:
        employment_id = uuid.UUID(str(spec.get("employment")))
    except ValueError:
        return []
    employment = Employment.objects.for_organization(organization).filter(pk=employment_id).first()
    if employment is None:
        return []
    entry_ids, _documents = employments.attached_knowledge(employment)
    entries = KnowledgeEntry.objects.for_organization(organization).filter(pk__in=entry_ids)
    knowledge = []
    for entry in entries.order_by("created_at", "id"):
        language = pipeline_language(entry.language)
        if language is not None:
            knowledge.append(
                {
                    "id": str(entry.pk),
                    "questions": list(entry.questions),
                    "answer": entry.answer,
                    "language": language,
                }
            )
    return knowledge
