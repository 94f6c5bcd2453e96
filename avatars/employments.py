"""Hiring digital employees: the offer, the lifecycle table, onboarding, newer versions, letting go.

Every change of an employment's status goes through `transition_employment` and the one table
`TRANSITIONS`; an illegal change raises and writes nothing. Seats are counted across the
organization's hires under a lock on the organization row, so two hires at once cannot both take
the last seat.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars import market, signals
from avatars.models import (
    Avatar,
    AvatarStatus,
    AvatarVersion,
    Consent,
    ConsentScope,
    Employment,
    EmploymentStatus,
    EmploymentTransition,
    KnowledgeDocument,
    KnowledgeEntry,
    Position,
    RateSource,
)
from avatars.positions import filled_seats_of_position, missing_requirements
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization
from tenants.plans import limits_of

S = EmploymentStatus

# The lifecycle, in one place: (from, to) → the verb that names the change (and its audit action).
TRANSITIONS: dict[tuple[str, str], str] = {
    (S.OFFERED, S.ONBOARDING): "accept",
    (S.ONBOARDING, S.ACTIVE): "activate",
    (S.ACTIVE, S.SUSPENDED): "suspend",
    (S.SUSPENDED, S.ACTIVE): "resume",
    (S.OFFERED, S.TERMINATED): "terminate",
    (S.ONBOARDING, S.TERMINATED): "terminate",
    (S.ACTIVE, S.TERMINATED): "terminate",
    (S.SUSPENDED, S.TERMINATED): "terminate",
}

# Hires that hold their seats; a terminated one has given them back.
SEAT_HOLDING = (S.OFFERED, S.ONBOARDING, S.ACTIVE, S.SUSPENDED)

EDITABLE_FIELDS = ("seats", "rate", "starts_on", "ends_on", "persona", "persona_reviewed", "voice")

REASON_MAX_LENGTH = 300

# "An employment that is offered cannot be <…>": what reaching each status is called.
_BECOMING: dict[str, Promise] = {
    S.OFFERED: gettext_lazy("offered"),
    S.ONBOARDING: gettext_lazy("moved to onboarding"),
    S.ACTIVE: gettext_lazy("activated"),
    S.SUSPENDED: gettext_lazy("suspended"),
    S.TERMINATED: gettext_lazy("terminated"),
}


# --- Selectors ------------------------------------------------------------------------------------


def hireable_avatars(organization: Organization, at: dt.datetime | None = None) -> QuerySet[Avatar]:
    """Avatars the organization may hire: its own, and those of the talent market.

    Another organization's avatar counts only while the market shows it (`market.on_the_market`:
    public, ready, its vendor active, a consent that covers any organization), so naming one that
    is not there answers exactly as naming an id that does not exist. The hire's own checks then
    say why an own avatar that is not ready cannot be hired.
    """
    # Crossing tenants only as far as the market does: what its owners published for everyone.
    return Avatar.objects.unscoped_dangerously().filter(
        Q(organization=organization) | market.on_the_market(at)
    )


def avatars_employed_or_hireable(organization: Organization) -> QuerySet[Avatar]:
    """What an employments filter may name: hireable avatars, and those already hired (a market
    avatar may have been withdrawn since)."""
    employed = Employment.objects.for_organization(organization).values("avatar_id")
    return Avatar.objects.unscoped_dangerously().filter(
        Q(organization=organization) | market.on_the_market() | Q(pk__in=employed)
    )


def versions_of_avatar(avatar: Avatar) -> QuerySet[AvatarVersion]:
    return AvatarVersion.objects.for_organization(avatar.organization).filter(avatar=avatar)


def seats_in_use(organization: Organization, *, besides: Employment | None = None) -> int:
    """Seats held by the organization's hires that have not been let go."""
    hires = Employment.objects.for_organization(organization).filter(status__in=SEAT_HOLDING)
    if besides is not None:
        hires = hires.exclude(pk=besides.pk)
    total: int | None = hires.aggregate(total=Sum("seats"))["total"]
    return total or 0


def allowed_next(status: str) -> list[str]:
    return [to for (from_, to) in TRANSITIONS if from_ == status]


def _through_entries() -> Any:
    return Employment.knowledge_entries.through


def _through_documents() -> Any:
    return Employment.knowledge_documents.through


def attached_knowledge(employment: Employment) -> tuple[list[Any], list[Any]]:
    """(entry ids, document ids) attached to the employment."""
    entries = _through_entries().objects.filter(employment_id=employment.pk)
    documents = _through_documents().objects.filter(employment_id=employment.pk)
    return (
        sorted(entries.values_list("knowledgeentry_id", flat=True), key=str),
        sorted(documents.values_list("knowledgedocument_id", flat=True), key=str),
    )


@dataclasses.dataclass(frozen=True)
class Checklist:
    """Onboarding: what the hiring organization makes its own before the employee starts."""

    persona_reviewed: bool
    voice_chosen: bool
    knowledge_attached: bool

    @property
    def complete(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        items = [
            (self.persona_reviewed, _("review the persona")),
            (self.voice_chosen, _("choose a voice")),
            (self.knowledge_attached, _("attach knowledge (an entry or a document)")),
        ]
        return [str(label) for done, label in items if not done]


def checklist_of(employment: Employment, *, knowledge_attached: bool | None = None) -> Checklist:
    if knowledge_attached is None:
        entries, documents = attached_knowledge(employment)
        knowledge_attached = bool(entries or documents)
    return Checklist(
        persona_reviewed=employment.persona_reviewed,
        voice_chosen=bool(employment.voice),
        knowledge_attached=knowledge_attached,
    )


def consent_covers(consent: Consent, organization: Organization) -> bool:
    """Whether the filmed person's consent extends to this organization's use of the likeness."""
    if consent.scope == ConsentScope.ANY:
        return True
    if consent.scope == ConsentScope.OWNER:
        return consent.organization_id == organization.pk
    return consent.scope_organizations.filter(pk=organization.pk).exists()


def local_today(organization: Organization) -> dt.date:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(organization.time_zone))


# --- Guards ---------------------------------------------------------------------------------------


def _lock_organization(organization: Organization) -> Organization:
    return Organization.objects.select_for_update().get(pk=organization.pk)


def _lock_hireable(organization: Organization, avatar: Avatar) -> Avatar:
    """The avatar's row, read again and locked until the hire commits, if the organization may
    hire it; else `not_found`, as for an id that does not exist.

    Retiring locks the row too (`catalog.retire_avatar`): a retire that comes first makes this
    wait and then find the avatar retired (or off the market); one that comes second waits for
    the hire and then sees it, and refuses.
    """
    locked = (
        hireable_avatars(organization)
        .select_for_update(of=("self",))
        .select_related("current_version")
        .filter(pk=avatar.pk)
        .first()
    )
    if locked is None:
        raise DomainError("not_found", _("No such object: %(pk)s.") % {"pk": avatar.pk}, "avatar")
    return locked


def _lock(employment: Employment) -> Employment:
    return (
        Employment.objects.for_organization(employment.organization)
        .select_for_update()
        .select_related("avatar", "avatar_version", "organization")
        .get(pk=employment.pk)
    )


def _check_seats(organization: Organization, seats: int, employment: Employment | None) -> None:
    """Refuse `seats` for this hire if they would take the organization past its plan's limit.

    The caller holds the lock on the organization row (`_lock_organization`)."""
    limit = limits_of(organization).seats
    used = seats_in_use(organization, besides=employment)
    if used + seats > limit:
        raise ConflictError(
            "seats_over_plan",
            _(
                "Your plan allows %(limit)d seats and other hires hold %(used)d, so this hire can "
                "have at most %(free)d, not %(seats)d. Lower the seats, let a hire go, or move to "
                "a larger plan."
            )
            % {"limit": limit, "used": used, "free": max(limit - used, 0), "seats": seats},
            field="seats",
        )


def _check_dates(starts_on: dt.date, ends_on: dt.date | None) -> None:
    if ends_on is not None and ends_on < starts_on:
        raise DomainError(
            "ends_before_start",
            _("The end date (%(ends)s) is before the start date (%(starts)s).")
            % {"ends": ends_on.isoformat(), "starts": starts_on.isoformat()},
            field="ends_on",
        )


def _check_consent(consent: Consent, avatar: Avatar, organization: Organization) -> None:
    names = {"avatar": str(avatar), "organization": organization.name}
    if consent.revoked_at is not None:
        raise ConflictError(
            "consent_revoked",
            _("The person behind %(avatar)s withdrew their consent; the avatar cannot work.")
            % names,
        )
    if not consent.is_valid():
        raise ConflictError(
            "consent_expired",
            _(
                "The consent of the person behind %(avatar)s expired on %(date)s; the avatar "
                "cannot work until its owner records a new consent."
            )
            % {**names, "date": timezone.localdate(consent.expires_at).isoformat()},
        )
    if not consent_covers(consent, organization):
        raise ConflictError(
            "consent_not_covering",
            _(
                "The consent of the person behind %(avatar)s does not cover %(organization)s; "
                "ask the avatar's owner to extend its scope."
            )
            % names,
        )


def _check_may_work(employment: Employment) -> None:
    """Guards for becoming active: a ready avatar, a consent that covers us, onboarding done."""
    avatar = employment.avatar
    if avatar.status != AvatarStatus.READY:
        raise ConflictError(
            "avatar_not_ready",
            _("%(avatar)s is %(status)s, not ready; it cannot start work.")
            % {"avatar": str(avatar), "status": str(AvatarStatus(avatar.status).label).lower()},
        )
    _check_consent(employment.avatar_version.consent, avatar, employment.organization)
    missing = checklist_of(employment).missing()
    if missing:
        raise ConflictError(
            "onboarding_incomplete",
            _("Onboarding is not finished: %(missing)s.") % {"missing": "; ".join(missing)},
        )


def clean_reason(reason: str | None, missing: str | None = None) -> str:
    """The reason given for a change, trimmed; refused when empty (`missing` says what to write)
    or longer than REASON_MAX_LENGTH."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(
            "reason_required",
            missing or _("Give a reason for this change; it is kept in the employment's history."),
            field="reason",
        )
    if len(reason) > REASON_MAX_LENGTH:
        raise DomainError(
            "reason_too_long",
            _("Keep the reason to %(max)d characters.") % {"max": REASON_MAX_LENGTH},
            field="reason",
        )
    return reason


def _refuse_if_terminated(employment: Employment) -> None:
    if employment.status == S.TERMINATED:
        raise ConflictError(
            "employment_terminated",
            _("This employment has ended; it can no longer be changed."),
        )


# --- Services -------------------------------------------------------------------------------------


@transaction.atomic
def hire_avatar(
    actor: Actor,
    organization: Organization,
    *,
    avatar: Avatar,
    position: Position,
    starts_on: dt.date,
    seats: int = 1,
    rate: Decimal | None = None,
    ends_on: dt.date | None = None,
) -> Employment:
    """Offer the avatar's current version a position: a new employment, offered.

    Locks, in this order: the organization (seats), the avatar (against a retire at the same
    time), the position (headcount).
    """
    organization = _lock_organization(organization)
    if position.organization_id != organization.pk:
        raise DomainError(
            "not_found", _("No such object: %(pk)s.") % {"pk": position.pk}, "position"
        )
    avatar = _lock_hireable(organization, avatar)
    if avatar.status == AvatarStatus.RETIRED:
        raise ConflictError(
            "avatar_retired",
            _("%(avatar)s is retired and can no longer be hired.") % {"avatar": str(avatar)},
            field="avatar",
        )
    version = avatar.current_version
    if version is None:
        raise ConflictError(
            "avatar_not_built",
            _("%(avatar)s has no built version yet; build it before hiring.")
            % {"avatar": str(avatar)},
            field="avatar",
        )
    if seats < 1:
        raise DomainError("invalid_seats", _("A hire needs at least one seat."), field="seats")
    _check_dates(starts_on, ends_on)
    missing_languages, missing_skills = missing_requirements(
        position, avatar.languages, avatar.skills
    )
    if missing_languages or missing_skills:
        lacks = []
        if missing_languages:
            lacks.append(_("languages %(tags)s") % {"tags": ", ".join(missing_languages)})
        if missing_skills:
            lacks.append(_("skills %(skills)s") % {"skills": ", ".join(missing_skills)})
        raise DomainError(
            "requirements_not_met",
            _("%(avatar)s does not meet the requirements of %(position)s: it lacks %(lacks)s.")
            % {"avatar": str(avatar), "position": position.title, "lacks": "; ".join(lacks)},
            field="avatar",
        )
    position = (
        Position.objects.for_organization(organization).select_for_update().get(pk=position.pk)
    )
    filled = filled_seats_of_position(position)
    if filled >= position.headcount:
        raise ConflictError(
            "headcount_filled",
            _(
                "%(position)s has a headcount of %(headcount)d and %(filled)d hires already; "
                "raise the headcount or let a hire go."
            )
            % {"position": position.title, "headcount": position.headcount, "filled": filled},
            field="position",
        )
    _check_seats(organization, seats, None)
    if rate is None or rate == avatar.list_price:
        rate, rate_source = avatar.list_price, RateSource.LIST
    else:
        rate_source = RateSource.NEGOTIATED
    employment = Employment.objects.create(
        organization=organization,
        avatar=avatar,
        avatar_version=version,
        position=position,
        seats=seats,
        rate=rate,
        rate_source=rate_source,
        currency=avatar.currency,
        starts_on=starts_on,
        ends_on=ends_on,
        status=S.OFFERED,
        persona=avatar.persona,
    )
    audit.record(
        actor, organization, "employment.hire", employment, after=audit.snapshot(employment)
    )
    return employment


@transaction.atomic
def update_employment(actor: Actor, employment: Employment, **changes: Any) -> Employment:
    """Change terms (seats, rate, dates) or onboarding (persona, voice) of a hire."""
    for name in changes:
        if name not in EDITABLE_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=name)
    organization = employment.organization
    if "seats" in changes:
        organization = _lock_organization(organization)  # before the employment: one lock order
    employment = _lock(employment)
    _refuse_if_terminated(employment)
    before = audit.snapshot(employment)
    if "seats" in changes:
        if changes["seats"] < 1:
            raise DomainError("invalid_seats", _("A hire needs at least one seat."), field="seats")
        if changes["seats"] > employment.seats:
            _check_seats(organization, changes["seats"], employment)
    if "rate" in changes:
        rate = changes.pop("rate")
        list_price = employment.avatar.list_price
        employment.rate = list_price if rate is None else rate
        employment.rate_source = (
            RateSource.LIST if employment.rate == list_price else RateSource.NEGOTIATED
        )
    _check_dates(
        changes.get("starts_on", employment.starts_on), changes.get("ends_on", employment.ends_on)
    )
    if (
        "persona" in changes
        and changes["persona"] != employment.persona
        and "persona_reviewed" not in changes
    ):
        # A persona that changed has not been reviewed, whoever reviewed the old one.
        changes["persona_reviewed"] = False
    if "voice" in changes and changes["voice"] is None:
        changes["voice"] = {}
    for field, value in changes.items():
        setattr(employment, field, value)
    employment.save()
    audit.record_update(actor, organization, "employment.update", employment, before=before)
    return employment


def _belong(organization: Organization, rows: list[Any], field: str) -> None:
    # The API looks ids up among the organization's rows; a direct caller gets the same answer.
    for row in rows:
        if row.organization_id != organization.pk:
            raise DomainError("not_found", _("No such object: %(pk)s.") % {"pk": row.pk}, field)


def _lock_for_knowledge(
    employment: Employment,
    entries: list[KnowledgeEntry] | tuple[()],
    documents: list[KnowledgeDocument] | tuple[()],
    nothing_named: str,
) -> Employment:
    """The employment locked, once it may take this change of knowledge."""
    employment = _lock(employment)
    _refuse_if_terminated(employment)
    if not entries and not documents:
        raise DomainError("nothing_named", nothing_named)
    _belong(employment.organization, list(entries), "entries")
    _belong(employment.organization, list(documents), "documents")
    return employment


@transaction.atomic
def attach_knowledge(
    actor: Actor,
    employment: Employment,
    *,
    entries: list[KnowledgeEntry] | tuple[()] = (),
    documents: list[KnowledgeDocument] | tuple[()] = (),
) -> Employment:
    """Give the employee knowledge to answer from; attaching what is attached changes nothing."""
    nothing = _("Name at least one knowledge entry or document to attach.")
    employment = _lock_for_knowledge(employment, entries, documents, nothing)
    before = attached_knowledge(employment)
    _through_entries().objects.bulk_create(
        [_through_entries()(employment_id=employment.pk, knowledgeentry_id=e.pk) for e in entries],
        ignore_conflicts=True,
    )
    _through_documents().objects.bulk_create(
        [
            _through_documents()(employment_id=employment.pk, knowledgedocument_id=d.pk)
            for d in documents
        ],
        ignore_conflicts=True,
    )
    _record_knowledge(actor, employment, "employment.attach_knowledge", before)
    return employment


@transaction.atomic
def detach_knowledge(
    actor: Actor,
    employment: Employment,
    *,
    entries: list[KnowledgeEntry] | tuple[()] = (),
    documents: list[KnowledgeDocument] | tuple[()] = (),
) -> Employment:
    """Take knowledge away from the employee; detaching what is not attached changes nothing."""
    nothing = _("Name at least one knowledge entry or document to detach.")
    employment = _lock_for_knowledge(employment, entries, documents, nothing)
    before = attached_knowledge(employment)
    _through_entries().objects.filter(
        employment_id=employment.pk, knowledgeentry_id__in=[e.pk for e in entries]
    ).delete()
    _through_documents().objects.filter(
        employment_id=employment.pk, knowledgedocument_id__in=[d.pk for d in documents]
    ).delete()
    _record_knowledge(actor, employment, "employment.detach_knowledge", before)
    return employment


def _record_knowledge(
    actor: Actor, employment: Employment, action: str, before: tuple[list[Any], list[Any]]
) -> None:
    after = attached_knowledge(employment)
    if after == before:
        return

    def picture(ids: tuple[list[Any], list[Any]]) -> dict[str, Any]:
        return {"entries": [str(i) for i in ids[0]], "documents": [str(i) for i in ids[1]]}

    audit.record(
        actor,
        employment.organization,
        action,
        employment,
        before=picture(before),
        after=picture(after),
    )


@transaction.atomic
def move_to_version(
    actor: Actor, employment: Employment, version: AvatarVersion | None = None
) -> Employment:
    """Move a hire to a newer version of its avatar (by default the avatar's current one)."""
    employment = _lock(employment)
    _refuse_if_terminated(employment)
    avatar = employment.avatar
    if version is None:
        version = avatar.current_version
        if version is None:  # pragma: no cover - a hired avatar always has a version
            raise ConflictError("avatar_not_built", _("This avatar has no built version."))
    if version.avatar_id != avatar.pk:
        raise DomainError("not_found", _("No such object: %(pk)s.") % {"pk": version.pk}, "version")
    current = employment.avatar_version
    if version.pk == current.pk:
        raise ConflictError(
            "already_on_version",
            _("This employment already works with version %(number)d.")
            % {"number": current.number},
            field="version",
        )
    if version.number < current.number:
        raise ConflictError(
            "version_not_newer",
            _(
                "Version %(new)d is older than version %(current)d that this employment works "
                "with; an employment only moves forward."
            )
            % {"new": version.number, "current": current.number},
            field="version",
        )
    _check_consent(version.consent, avatar, employment.organization)
    before = {"avatar_version": str(current.pk), "version_number": current.number}
    employment.avatar_version = version
    employment.save(update_fields=["avatar_version", "updated_at"])
    audit.record(
        actor,
        employment.organization,
        "employment.upgrade",
        employment,
        before=before,
        after={"avatar_version": str(version.pk), "version_number": version.number},
    )
    return employment


def illegal_transition_message(current: str, to: str) -> str:
    following = allowed_next(current)
    return _("An employment that is %(status)s cannot be %(becoming)s; allowed next: %(next)s.") % {
        "status": str(S(current).label).lower(),
        "becoming": _BECOMING[to],
        # Labels, not codes, so the list reads in the person's language.
        "next": ", ".join(str(S(s).label).lower() for s in following) if following else _("none"),
    }


@transaction.atomic
def transition_employment(
    actor: Actor, employment: Employment, to: str, reason: str | None
) -> Employment:
    """Move the employment along the lifecycle table, with a reason; audited and kept in history."""
    reason = clean_reason(reason)
    if to not in S.values:
        raise DomainError("invalid_status", _("No such status: %(to)s.") % {"to": to}, "to")
    employment = _lock(employment)
    current = employment.status
    verb = TRANSITIONS.get((current, to))
    if verb is None:
        raise ConflictError("illegal_transition", illegal_transition_message(current, to))
    if to == S.ACTIVE:
        _check_may_work(employment)
    before = audit.snapshot(employment)
    employment.status = to
    employment.status_reason = reason
    if to == S.TERMINATED:
        # The seats are free from today; the end date says so (never before the start date).
        today = max(local_today(employment.organization), employment.starts_on)
        if employment.ends_on is None or employment.ends_on > today:
            employment.ends_on = today
    employment.save()
    EmploymentTransition.objects.create(
        organization=employment.organization,
        employment=employment,
        from_status=current,
        to_status=to,
        reason=reason,
        actor_label=actor.label[:254],
    )
    audit.record(
        actor,
        employment.organization,
        f"employment.{verb}",
        employment,
        before=before,
        after=audit.snapshot(employment),
    )
    signals.announce_status_change(employment, current, reason)
    return employment


def suspend_employment(actor: Actor, employment: Employment, reason: str) -> bool:
    """Suspend an active hire (e.g. its avatar's consent expired or was revoked).

    Returns whether it was suspended: a hire that is not active has nothing to suspend, so running
    the enforcement again is harmless. Offered and onboarding hires cannot become active without a
    valid consent anyway (see `_check_may_work`).
    """
    with transaction.atomic():
        locked = _lock(employment)
        if locked.status != S.ACTIVE:
            return False
        transition_employment(actor, locked, S.SUSPENDED, reason)
    employment.refresh_from_db()
    return True
