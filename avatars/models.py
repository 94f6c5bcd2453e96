"""Digital employees: avatars, their builds and consent, positions, hires, knowledge, reviews."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from avatars.languages import MAX_TAG_CHARS
from tenants.models import Organization
from tenants.scoping import TenantOwned


def _uuid() -> models.UUIDField[uuid.UUID, uuid.UUID]:
    return models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)


class Skill(models.TextChoices):
    LIVE_ANCHOR = "live_anchor", _("Live-stream anchor")
    SERVICE_DESK = "service_desk", _("Service desk")
    PRESENTER = "presenter", _("Presenter")
    LIVE_COMMERCE = "live_commerce", _("Live commerce")
    GUIDE = "guide", _("Guide and reception")
    TEACHER = "teacher", _("Teacher")


class Visibility(models.TextChoices):
    PUBLIC = "public", _("Public in the talent market")
    PRIVATE = "private", _("Private to its organization")


class AvatarStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    BUILDING = "building", _("Building")
    READY = "ready", _("Ready")
    RETIRED = "retired", _("Retired")


class Avatar(TenantOwned):
    """A digital human. `organization` owns it: a vendor, or an institution's own avatar."""

    id = _uuid()
    name_zh = models.CharField(_("Chinese name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default="private")
    status = models.CharField(max_length=10, choices=AvatarStatus.choices, default="draft")
    languages = models.JSONField(_("languages (BCP-47)"), default=list)
    skills = models.JSONField(_("skills"), default=list)
    persona = models.TextField(_("persona"), blank=True)
    wardrobe = models.JSONField(_("wardrobe"), default=list)
    description = models.TextField(_("description"), blank=True)
    list_price = models.DecimalField(
        _("list price per seat-month"), max_digits=10, decimal_places=2, default=Decimal("0")
    )
    currency = models.CharField(max_length=3, default="CNY")
    current_version = models.ForeignKey(
        "AvatarVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status_reason = models.CharField(_("why it has this status"), max_length=300, blank=True)
    # Derived on save, for the talent market's filters: one text form that LIKE reads the same way
    # on SQLite and PostgreSQL (JSON lookups differ between them, and SQLite escapes non-ASCII).
    search_text = models.TextField(editable=False, default="")
    language_index = models.TextField(editable=False, default="")
    skill_index = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("avatar")
        verbose_name_plural = _("avatars")
        indexes = [
            models.Index(fields=["organization", "created_at"]),
            models.Index(fields=["visibility", "status", "list_price"]),
            # The talent market's default order, newest first: its first page stops after a page.
            models.Index(fields=["visibility", "status", "created_at", "id"]),
        ]

    def __str__(self) -> str:
        return self.name_en or self.name_zh

    def derive_search_fields(self) -> None:
        """Fill the derived search columns (save() does it; call it before bulk_create)."""
        self.search_text = "\n".join([self.name_zh, self.name_en, self.description]).casefold()
        self.language_index = index_of_tags(self.languages)
        self.skill_index = index_of_tags(self.skills)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.derive_search_fields()
        kwargs["update_fields"] = _with_derived(
            kwargs.get("update_fields"), "search_text", "language_index", "skill_index"
        )
        super().save(*args, **kwargs)


class ConsentScope(models.TextChoices):
    OWNER = "owner", _("Only the owning organization")
    LISTED = "listed", _("The listed organizations")
    ANY = "any", _("Any organization that hires the avatar")


class Consent(TenantOwned):
    """A filmed person's consent to have their likeness built and used."""

    id = _uuid()
    avatar = models.ForeignKey(Avatar, on_delete=models.CASCADE, related_name="+")
    subject_name = models.CharField(_("person filmed"), max_length=200)
    statement = models.TextField(_("consent statement"))
    clip = models.ForeignKey(
        "Upload", on_delete=models.PROTECT, related_name="+", verbose_name=_("consent clip")
    )
    scope = models.CharField(max_length=8, choices=ConsentScope.choices, default="owner")
    scope_organizations = models.ManyToManyField(Organization, blank=True, related_name="+")
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=300, blank=True)
    # Set once the consequences of expiry or revocation (builds stopped, hires suspended) ran.
    enforced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.subject_name} → {self.avatar_id}"

    def is_valid(self, at: dt.datetime | None = None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and self.expires_at > at


class UploadPurpose(models.TextChoices):
    FOOTAGE = "footage", _("Footage for a custom avatar")
    CONSENT_CLIP = "consent_clip", _("Recorded consent")
    PORTRAIT = "portrait", _("Portrait or reference image")
    DOCUMENT = "document", _("Knowledge document")


class UploadStatus(models.TextChoices):
    RECEIVING = "receiving", _("Receiving")
    COMPLETE = "complete", _("Complete")
    FAILED = "failed", _("Failed")


class Upload(TenantOwned):
    """A file sent in chunks; survives dropped connections and resumes at `received`."""

    id = _uuid()
    purpose = models.CharField(max_length=16, choices=UploadPurpose.choices)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField(_("total size in bytes"))
    received = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=UploadStatus.choices, default="receiving")
    failure_reason = models.CharField(max_length=300, blank=True)
    media_info = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("upload")
        verbose_name_plural = _("uploads")
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return self.filename

    @property
    def relative_path(self) -> str:
        return f"uploads/{self.organization_id}/{self.id}"


class BuildStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class AvatarBuild(TenantOwned):
    """Building a new avatar version from uploaded footage, under a consent."""

    id = _uuid()
    avatar = models.ForeignKey(Avatar, on_delete=models.CASCADE, related_name="+")
    footage = models.ForeignKey(Upload, on_delete=models.PROTECT, related_name="+")
    consent = models.ForeignKey(Consent, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=BuildStatus.choices, default="queued")
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=64, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    # Someone asked for the stop (a person, a lapsed consent); it ends the build at once.
    cancel_requested = models.BooleanField(default=False)
    # The GPU work that builds it (inference); the build follows its progress and its end.
    workload = models.ForeignKey(
        "inference.Workload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    result_version = models.ForeignKey(
        "AvatarVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with each progress report of its worker (see `builds.follow_workload`).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("avatar build")
        verbose_name_plural = _("avatar builds")
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"build {self.id} ({self.status})"


class AvatarVersion(TenantOwned):
    """One built state of an avatar. Rebuilding makes a new version; hires pin one."""

    id = _uuid()
    avatar = models.ForeignKey(Avatar, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    consent = models.ForeignKey(Consent, on_delete=models.PROTECT, related_name="+")
    build = models.ForeignKey(
        AvatarBuild, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    portrait = models.CharField(_("portrait path in media"), max_length=300, blank=True)
    bundle = models.CharField(_("bundle path in media"), max_length=300, blank=True)
    voice_profile = models.JSONField(default=dict)
    notes = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("avatar version")
        verbose_name_plural = _("avatar versions")
        constraints = [
            models.UniqueConstraint(fields=["avatar", "number"], name="avatar_version_number")
        ]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.avatar_id} v{self.number}"


class Position(TenantOwned):
    id = _uuid()
    title = models.CharField(_("title"), max_length=200)
    department = models.CharField(_("department"), max_length=200, blank=True)
    duties = models.TextField(_("duties"), blank=True)
    required_languages = models.JSONField(default=list)
    required_skills = models.JSONField(default=list)
    headcount = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("position")
        verbose_name_plural = _("positions")
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return self.title


class EmploymentStatus(models.TextChoices):
    OFFERED = "offered", _("Offered")
    ONBOARDING = "onboarding", _("Onboarding")
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    TERMINATED = "terminated", _("Terminated")


class RateSource(models.TextChoices):
    LIST = "list", _("Vendor's list price")
    NEGOTIATED = "negotiated", _("Negotiated")


class Employment(TenantOwned):
    """A hire: an avatar (maybe another organization's public one) in one of our positions."""

    id = _uuid()
    avatar = models.ForeignKey(Avatar, on_delete=models.PROTECT, related_name="+")
    avatar_version = models.ForeignKey(AvatarVersion, on_delete=models.PROTECT, related_name="+")
    position = models.ForeignKey(Position, on_delete=models.PROTECT, related_name="+")
    seats = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    rate = models.DecimalField(_("rate per seat-month"), max_digits=10, decimal_places=2)
    rate_source = models.CharField(max_length=10, choices=RateSource.choices, default="list")
    currency = models.CharField(max_length=3, default="CNY")
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=EmploymentStatus.choices, default="offered")
    status_reason = models.CharField(max_length=300, blank=True)
    # Onboarding checklist: the institution's own persona, voice and knowledge.
    persona = models.TextField(_("persona instructions"), blank=True)
    persona_reviewed = models.BooleanField(default=False)
    voice = models.JSONField(default=dict, blank=True)
    knowledge_entries: models.ManyToManyField[KnowledgeEntry, Any] = models.ManyToManyField(
        "KnowledgeEntry", blank=True, related_name="+"
    )
    knowledge_documents: models.ManyToManyField[KnowledgeDocument, Any] = models.ManyToManyField(
        "KnowledgeDocument", blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("employment")
        verbose_name_plural = _("employments")
        indexes = [
            models.Index(fields=["organization", "created_at"]),
            models.Index(fields=["avatar", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.avatar_id} as {self.position_id} ({self.status})"


class EmploymentTransition(TenantOwned):
    """The history of an employment's lifecycle, one row per transition."""

    id = models.BigAutoField(primary_key=True)
    employment = models.ForeignKey(Employment, on_delete=models.CASCADE, related_name="+")
    from_status = models.CharField(max_length=12, choices=EmploymentStatus.choices)
    to_status = models.CharField(max_length=12, choices=EmploymentStatus.choices)
    reason = models.CharField(max_length=300)
    actor_label = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("employment transition")
        verbose_name_plural = _("employment transitions")
        indexes = [models.Index(fields=["organization", "employment", "created_at"])]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


def index_of_tags(tags: list[str] | None) -> str:
    """Tags case-folded as `|a|b|`: a row has a tag when `|tag|` is a substring."""
    return "|" + "|".join(str(tag).casefold() for tag in tags) + "|" if tags else ""


def _with_derived(update_fields: Any, *derived: str) -> Any:
    """Saving some fields saves what is derived from them too."""
    return None if update_fields is None else {*update_fields, *derived}


class KnowledgeEntry(TenantOwned):
    """A question-and-answer pair; `questions` holds the ways people ask it."""

    id = _uuid()
    questions = models.JSONField(_("question variants"))
    answer = models.TextField(_("answer"))
    language = models.CharField(_("language (BCP-47)"), max_length=MAX_TAG_CHARS)
    tags = models.JSONField(default=list, blank=True)
    # Derived on save, for search and the tag filter: SQLite keeps JSON text with non-ASCII
    # escaped and PostgreSQL does not, so JSON lookups would find Chinese on one and not the other.
    search_text = models.TextField(editable=False, default="")
    tag_index = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("knowledge entry")
        verbose_name_plural = _("knowledge entries")
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return str(self.questions[0]) if self.questions else str(self.id)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.search_text = "\n".join([*map(str, self.questions or []), self.answer]).casefold()
        self.tag_index = index_of_tags(self.tags)
        kwargs["update_fields"] = _with_derived(
            kwargs.get("update_fields"), "search_text", "tag_index"
        )
        super().save(*args, **kwargs)


class DocumentFormat(models.TextChoices):
    TEXT = "text", _("Plain text")
    MARKDOWN = "markdown", _("Markdown")
    PDF = "pdf", _("PDF (text extracted)")


class KnowledgeDocument(TenantOwned):
    id = _uuid()
    title = models.CharField(_("title"), max_length=300)
    format = models.CharField(max_length=10, choices=DocumentFormat.choices)
    content = models.TextField(_("text"))
    language = models.CharField(_("language (BCP-47)"), max_length=MAX_TAG_CHARS)
    tags = models.JSONField(default=list, blank=True)
    source = models.ForeignKey(
        Upload, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    tag_index = models.TextField(editable=False, default="")  # derived on save, as for entries
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("knowledge document")
        verbose_name_plural = _("knowledge documents")
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.tag_index = index_of_tags(self.tags)
        kwargs["update_fields"] = _with_derived(kwargs.get("update_fields"), "tag_index")
        super().save(*args, **kwargs)


class ReviewStatus(models.TextChoices):
    OPEN = "open", _("Open")
    COMPLETED = "completed", _("Completed")


class PerformanceReview(TenantOwned):
    """One per employment per month; analytics fills `kpis`, a person rates and comments."""

    id = _uuid()
    employment = models.ForeignKey(Employment, on_delete=models.CASCADE, related_name="+")
    period = models.DateField(_("month (its first day)"))
    kpis = models.JSONField(_("KPI snapshot"), default=dict, blank=True)
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comments = models.TextField(blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default="open")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("performance review")
        verbose_name_plural = _("performance reviews")
        constraints = [
            models.UniqueConstraint(fields=["employment", "period"], name="one_review_per_month")
        ]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"{self.employment_id} {self.period:%Y-%m}"
