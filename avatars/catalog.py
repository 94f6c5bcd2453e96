"""An organization's own avatars: create, change, publish, retire and delete them.

Also the checks of what an avatar says about itself (skills, wardrobe, price; its language tags
follow `avatars.languages`), shared by the API's serializers and the services so that both give
the same message.
Builds (another module) move an avatar to building and ready; here its status is only read, except
for retiring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from avatars import languages, market
from avatars.models import (
    Avatar,
    AvatarBuild,
    AvatarStatus,
    AvatarVersion,
    BuildStatus,
    ConsentScope,
    Skill,
    Visibility,
)
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

AVATAR_FIELDS = (
    "name_zh",
    "name_en",
    "visibility",
    "languages",
    "skills",
    "persona",
    "wardrobe",
    "description",
    "list_price",
    "currency",
)
MAX_OUTFITS = 50

# --- Skills, wardrobe, price ------------------------------------------------------------------


def skills_error(values: Iterable[object]) -> str | None:
    unknown = [str(value) for value in values if value not in Skill.values]
    if not unknown:
        return None
    return _("Unknown skill: %(skills)s. Choose from %(choices)s.") % {
        "skills": ", ".join(f"“{skill}”" for skill in unknown),
        "choices": ", ".join(Skill.values),
    }


def clean_skills(values: Iterable[str]) -> list[str]:
    values = list(values)
    problem = skills_error(values)
    if problem is not None:
        raise DomainError("invalid_skill", problem, field="skills")
    return _unique(values)


def wardrobe_error(outfits: Iterable[object]) -> str | None:
    outfits = list(outfits)
    if len(outfits) > MAX_OUTFITS:
        return _("At most %(count)d outfits.") % {"count": MAX_OUTFITS}
    names: list[str] = []
    for outfit in outfits:
        name = outfit.get("name") if isinstance(outfit, dict) else None
        if not isinstance(name, str) or not name.strip():
            return _('Each outfit needs a name: {"name": "…", "description": "…"}.')
        names.append(name.strip().casefold())
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return _("Two outfits have the same name: %(names)s.") % {"names": ", ".join(repeated)}
    return None


def clean_wardrobe(outfits: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    outfits = list(outfits)
    problem = wardrobe_error(outfits)
    if problem is not None:
        raise DomainError("invalid_wardrobe", problem, field="wardrobe")
    return [
        {"name": outfit["name"].strip(), "description": str(outfit.get("description", "")).strip()}
        for outfit in outfits
    ]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned = dict(fields)
    if "languages" in cleaned:
        cleaned["languages"] = languages.clean_list(cleaned["languages"])
    if "skills" in cleaned:
        cleaned["skills"] = clean_skills(cleaned["skills"])
    if "wardrobe" in cleaned:
        cleaned["wardrobe"] = clean_wardrobe(cleaned["wardrobe"])
    if "list_price" in cleaned and Decimal(cleaned["list_price"]) < 0:
        raise DomainError(
            "invalid_price", _("The list price cannot be negative."), field="list_price"
        )
    if "currency" in cleaned:
        currency = str(cleaned["currency"]).upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise DomainError(
                "invalid_currency",
                _("Use a three-letter ISO 4217 currency code, such as CNY or USD."),
                field="currency",
            )
        cleaned["currency"] = currency
    return cleaned


# --- Publishing -------------------------------------------------------------------------------


def publishing_problem(avatar: Avatar) -> str | None:
    """Why the avatar cannot be shown in the talent market yet; None when it can."""
    if avatar.status == AvatarStatus.DRAFT:
        return _("Only a ready avatar can be published: this one is a draft. Build it first.")
    if avatar.status == AvatarStatus.BUILDING:
        return _("This avatar is still being built; publish it when the build has finished.")
    if avatar.status == AvatarStatus.RETIRED:
        return _("A retired avatar cannot be published.")
    version = avatar.current_version
    if version is None:
        return _("This avatar has no built version yet. Build it first.")
    consent = version.consent
    if consent.scope != ConsentScope.ANY:
        return _(
            "The consent behind version %(number)d lets only %(whom)s use this likeness. "
            "Publishing needs a consent for any organization: record one and rebuild the avatar."
        ) % {
            "number": version.number,
            "whom": _("your organization")
            if consent.scope == ConsentScope.OWNER
            else _("the organizations it lists"),
        }
    if consent.revoked_at is not None:
        return _(
            "The consent behind version %(number)d was revoked. Record a new consent and rebuild."
        ) % {"number": version.number}
    if not consent.is_valid():
        return _(
            "The consent behind version %(number)d has expired. Record a new consent and rebuild."
        ) % {"number": version.number}
    return None


# --- Portraits -------------------------------------------------------------------------------


def version_of(avatar: Avatar, number: int | None = None) -> AvatarVersion | None:
    """Version `number` of the avatar, or its current version when `number` is None."""
    if number is None:
        return avatar.current_version
    versions = AvatarVersion.objects.for_organization(avatar.organization)
    return versions.filter(avatar=avatar, number=number).first()


def portrait_file(version: AvatarVersion | None) -> Path | None:
    """The portrait PNG a build stored for the version, if it has one on disk.

    The stored path is relative to MEDIA_ROOT; one that would lead out of it is treated as
    missing, never served."""
    if version is None or not version.portrait:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / version.portrait).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


# --- Services ---------------------------------------------------------------------------------


@transaction.atomic
def create_avatar(actor: Actor, organization: Organization, **fields: Any) -> Avatar:
    """A new draft avatar. It can be published once a build has made it ready."""
    for field in fields:
        if field not in AVATAR_FIELDS:
            raise DomainError("read_only", _("This field cannot be set."), field=field)
    fields = _clean(fields)
    if fields.get("visibility") == Visibility.PUBLIC:
        raise DomainError(
            "cannot_publish",
            _("A new avatar is a draft and cannot be public yet; publish it once it is ready."),
            field="visibility",
        )
    avatar = Avatar(organization=organization, status=AvatarStatus.DRAFT, **fields)
    avatar.save(force_insert=True)
    audit.record(actor, organization, "avatar.create", avatar, after=audit.snapshot(avatar))
    return avatar


def _locked(avatar: Avatar) -> Avatar:
    """The avatar's row again, locked until the transaction ends: builds change its status, and a
    hire (`employments.hire_avatar`) locks it too, so a hire and a retire at once cannot both
    succeed. Only this row: a hire holds its organization's row before the avatar's."""
    return (
        Avatar.objects.for_organization(avatar.organization)
        .select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=avatar.pk)
    )


@transaction.atomic
def update_avatar(actor: Actor, avatar: Avatar, **changes: Any) -> Avatar:
    """Change what the avatar says about itself; making it public publishes it (see the rules in
    `publishing_problem`), making it private takes it off the market (hires keep it)."""
    for field in changes:
        if field not in AVATAR_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=field)
    changes = _clean(changes)
    avatar = _locked(avatar)
    if avatar.status == AvatarStatus.RETIRED:
        raise ConflictError("avatar_retired", _("This avatar is retired and cannot change."))
    before = audit.snapshot(avatar)
    publishing = (
        changes.get("visibility") == Visibility.PUBLIC and avatar.visibility != Visibility.PUBLIC
    )
    if publishing:
        current = _current_version(avatar)
        avatar.current_version = current
        problem = publishing_problem(avatar)
        if problem is not None:
            raise DomainError("cannot_publish", problem, field="visibility")
    for field, value in changes.items():
        setattr(avatar, field, value)
    avatar.save()
    action = "avatar.update"
    if before["visibility"] != avatar.visibility:
        action = "avatar.publish" if publishing else "avatar.unpublish"
    audit.record_update(actor, avatar.organization, action, avatar, before=before)
    return avatar


def _current_version(avatar: Avatar) -> AvatarVersion | None:
    if avatar.current_version_id is None:
        return None
    return (
        AvatarVersion.objects.for_organization(avatar.organization)
        .select_related("consent")
        .get(pk=avatar.current_version_id)
    )


@transaction.atomic
def retire_avatar(actor: Actor, avatar: Avatar, reason: str) -> Avatar:
    """Retire the avatar for good: it leaves the market and can no longer be hired or changed.

    Refused while any organization's hire of it has not ended (a vendor must not pull an avatar
    from under an institution that pays for it): the vendor makes it private to stop new hires,
    and retires it once those hires are terminated. Also refused while a build runs. The avatar's
    row is locked first, so a hire at the same time is either seen here or sees the retirement.
    """
    reason = reason.strip()
    if not reason:
        raise DomainError("reason_required", _("Say why the avatar is retired."), field="reason")
    avatar = _locked(avatar)
    if avatar.status == AvatarStatus.RETIRED:
        raise ConflictError("already_retired", _("This avatar is already retired."))
    if _build_in_progress(avatar):
        raise ConflictError(
            "build_in_progress",
            _("A build of this avatar is in progress; cancel it or let it finish first."),
        )
    hires = market.hire_statistics(avatar)
    if hires.hires_not_ended:
        raise ConflictError(
            "avatar_hired",
            _(
                "%(count)d hires of this avatar have not ended (%(breakdown)s). Retire it once "
                "they are terminated; make it private meanwhile to stop new hires."
            )
            % {"count": hires.hires_not_ended, "breakdown": hires.describe_not_ended()},
        )
    before = audit.snapshot(avatar)
    avatar.status = AvatarStatus.RETIRED
    avatar.status_reason = reason[:300]
    avatar.visibility = Visibility.PRIVATE
    avatar.save()
    audit.record(
        actor,
        avatar.organization,
        "avatar.retire",
        avatar,
        before=before,
        after={**audit.snapshot(avatar), "reason": avatar.status_reason},
    )
    return avatar


def _build_in_progress(avatar: Avatar) -> bool:
    return (
        AvatarBuild.objects.for_organization(avatar.organization)
        .filter(avatar=avatar, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING])
        .exists()
    )


@transaction.atomic
def delete_avatar(actor: Actor, avatar: Avatar) -> None:
    """Delete a draft that was never built. Anything built is retired instead: hires and the
    audit trail refer to its versions."""
    avatar = _locked(avatar)
    has_versions = (
        AvatarVersion.objects.for_organization(avatar.organization).filter(avatar=avatar).exists()
    )
    if avatar.status != AvatarStatus.DRAFT or has_versions:
        raise ConflictError(
            "retire_instead",
            _("Only a draft that was never built can be deleted; retire this avatar instead."),
        )
    if _build_in_progress(avatar):
        raise ConflictError(
            "build_in_progress",
            _("A build of this avatar is in progress; cancel it or let it finish first."),
        )
    audit.record(actor, avatar.organization, "avatar.delete", avatar, before=audit.snapshot(avatar))
    avatar.delete()
