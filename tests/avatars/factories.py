"""Factories for the avatars domain. Each builds a consistent row inside one organization."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import factory
from django.conf import settings
from django.utils import timezone

from avatars.models import (
    Avatar,
    AvatarBuild,
    AvatarVersion,
    Consent,
    Employment,
    KnowledgeDocument,
    KnowledgeEntry,
    PerformanceReview,
    Position,
    Upload,
)
from tests.factories import OrganizationFactory


class AvatarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Avatar

    organization = factory.SubFactory(OrganizationFactory, kind="vendor")
    name_zh = factory.Sequence(lambda n: f"数字人{n}")
    name_en = factory.Sequence(lambda n: f"Avatar {n}")
    visibility = "private"
    status = "draft"
    languages = factory.LazyFunction(lambda: ["zh-CN"])
    skills = factory.LazyFunction(lambda: ["service_desk"])
    list_price = Decimal("1999.00")


class UploadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Upload

    organization = factory.SubFactory(OrganizationFactory)
    purpose = "consent_clip"
    filename = factory.Sequence(lambda n: f"clip-{n}.mp4")
    content_type = "video/mp4"
    size = 1024
    received = 1024
    status = "complete"


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    avatar = factory.SubFactory(AvatarFactory)
    organization = factory.SelfAttribute("avatar.organization")
    subject_name = factory.Faker("name")
    statement = "I agree that my likeness is used to build this digital human."
    clip = factory.SubFactory(UploadFactory, organization=factory.SelfAttribute("..organization"))
    scope = "any"
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=365))


class AvatarVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AvatarVersion

    avatar = factory.SubFactory(AvatarFactory)
    organization = factory.SelfAttribute("avatar.organization")
    number = factory.Sequence(lambda n: n + 1)
    consent = factory.SubFactory(
        ConsentFactory,
        avatar=factory.SelfAttribute("..avatar"),
        organization=factory.SelfAttribute("..organization"),
    )
    voice_profile = factory.LazyFunction(lambda: {"pitch_hz": 180.0, "syllables_per_second": 4.1})


def ready_avatar(**kwargs: object) -> Avatar:
    """An avatar with a built version under valid consent: hireable."""
    avatar = AvatarFactory(status="ready", **kwargs)
    version = AvatarVersionFactory(avatar=avatar, number=1)
    avatar.current_version = version
    avatar.save(update_fields=["current_version"])
    return avatar


class AvatarBuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AvatarBuild

    avatar = factory.SubFactory(AvatarFactory)
    organization = factory.SelfAttribute("avatar.organization")
    footage = factory.SubFactory(
        UploadFactory, organization=factory.SelfAttribute("..organization"), purpose="footage"
    )
    consent = factory.SubFactory(
        ConsentFactory,
        avatar=factory.SelfAttribute("..avatar"),
        organization=factory.SelfAttribute("..organization"),
    )


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Position

    organization = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Service desk agent {n}")
    department = "Public service"
    required_languages = factory.LazyFunction(lambda: ["zh-CN"])
    required_skills = factory.LazyFunction(lambda: ["service_desk"])


class EmploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Employment

    organization = factory.SubFactory(OrganizationFactory)
    avatar = factory.LazyAttribute(lambda o: ready_avatar(visibility="public"))
    avatar_version = factory.LazyAttribute(lambda o: o.avatar.current_version)
    position = factory.SubFactory(
        PositionFactory, organization=factory.SelfAttribute("..organization")
    )
    seats = 1
    rate = Decimal("1999.00")
    starts_on = factory.LazyFunction(lambda: timezone.localdate())


class KnowledgeEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KnowledgeEntry

    organization = factory.SubFactory(OrganizationFactory)
    questions = factory.LazyFunction(lambda: ["营业执照怎么办理？", "如何申请营业执照"])
    answer = "可在政务服务网在线申请，或到办事大厅窗口办理。"
    language = "zh-CN"
    tags = factory.LazyFunction(lambda: ["licensing"])


class KnowledgeDocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KnowledgeDocument

    organization = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Guide {n}")
    format = "markdown"
    content = "# Opening hours\n\nMonday to Friday, 9:00–17:00."
    language = "en-US"


class PerformanceReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PerformanceReview

    employment = factory.SubFactory(EmploymentFactory)
    organization = factory.SelfAttribute("employment.organization")
    period = factory.LazyFunction(lambda: timezone.localdate().replace(day=1))


def attach_entry(employment: Employment) -> KnowledgeEntry:
    """Attach a new knowledge entry of the employment's organization to it."""
    entry = KnowledgeEntryFactory(organization=employment.organization)
    Employment.knowledge_entries.through.objects.create(
        employment_id=employment.pk, knowledgeentry_id=entry.pk
    )
    return entry


def onboarded_employment(**kwargs: object) -> Employment:
    """A hire whose onboarding checklist is done: persona reviewed, voice chosen, knowledge
    attached. Onboarding unless `status` says otherwise."""
    fields: dict[str, object] = {
        "status": "onboarding",
        "persona": "Warm and precise.",
        "persona_reviewed": True,
        "voice": {"voice_id": "warm-1"},
        **kwargs,
    }
    employment = EmploymentFactory(**fields)
    attach_entry(employment)
    return employment


# A 1×1 PNG: what a build stores as a version's portrait, only smaller.
PORTRAIT_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63381160030003380155932a2f2d0000000049454e44ae426082"
)


def with_portrait(avatar: Avatar, version: AvatarVersion | None = None) -> Avatar:
    """Store a portrait for the version (by default the avatar's current one) under MEDIA_ROOT,
    where a build puts it."""
    version = version or avatar.current_version
    assert version is not None
    relative = f"avatars/{avatar.organization_id}/{avatar.pk}/v{version.number}/portrait.png"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PORTRAIT_PNG)
    version.portrait = relative
    version.save(update_fields=["portrait"])
    return avatar
