"""Positions: the jobs an organization hires digital employees into, and what they require."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus, Position
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

POSITION_FIELDS = (
    "title",
    "department",
    "duties",
    "required_languages",
    "required_skills",
    "headcount",
)

# A BCP-47 language tag without extensions: language, script, region, variants (zh-Hans-CN, yue-HK).
_LANGUAGE_TAG = re.compile(
    r"^[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)


def is_language_tag(value: str) -> bool:
    return bool(_LANGUAGE_TAG.match(value))


def normalise_language_tag(value: str) -> str:
    """The conventional spelling of a tag: `zh-hans-cn` → `zh-Hans-CN`."""
    language, *rest = value.split("-")
    parts = [language.lower()]
    for subtag in rest:
        if len(subtag) == 4 and subtag.isalpha():
            parts.append(subtag.title())
        elif (len(subtag) == 2 and subtag.isalpha()) or (len(subtag) == 3 and subtag.isdigit()):
            parts.append(subtag.upper())
        else:
            parts.append(subtag.lower())
    return "-".join(parts)


def speaks(languages: Iterable[str], required: str) -> bool:
    """Whether one of `languages` falls within the `required` range (RFC 4647 basic filtering):
    `yue-HK` satisfies `yue`, but `zh` does not satisfy `zh-CN`."""
    wanted = required.lower()
    return any(tag.lower() == wanted or tag.lower().startswith(wanted + "-") for tag in languages)


def missing_requirements(
    position: Position, languages: Iterable[str], skills: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(languages, skills) the position requires that the candidate lacks."""
    languages = list(languages)
    skills = set(skills)
    missing_languages = [tag for tag in position.required_languages if not speaks(languages, tag)]
    missing_skills = [skill for skill in position.required_skills if skill not in skills]
    return missing_languages, missing_skills


def filled_seats_of_position(position: Position) -> int:
    """How many hires (not let go) the position has; its headcount caps this."""
    return (
        Employment.objects.for_organization(position.organization)
        .filter(position=position)
        .exclude(status=EmploymentStatus.TERMINATED)
        .count()
    )


def _deduplicated(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    for name in fields:
        if name not in POSITION_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=name)
    if "required_languages" in fields:
        fields["required_languages"] = _deduplicated(
            [normalise_language_tag(tag) for tag in fields["required_languages"]]
        )
    if "required_skills" in fields:
        fields["required_skills"] = _deduplicated(list(fields["required_skills"]))
    return fields


@transaction.atomic
def create_position(actor: Actor, organization: Organization, **fields: Any) -> Position:
    position = Position.objects.create(organization=organization, **_clean(fields))
    audit.record(actor, organization, "position.create", position, after=audit.snapshot(position))
    return position


@transaction.atomic
def update_position(actor: Actor, position: Position, **changes: Any) -> Position:
    changes = _clean(changes)
    position = (
        Position.objects.for_organization(position.organization)
        .select_for_update()
        .get(pk=position.pk)
    )
    before = audit.snapshot(position)
    if "headcount" in changes:
        filled = filled_seats_of_position(position)
        if changes["headcount"] < filled:
            raise ConflictError(
                "headcount_below_hires",
                _(
                    "This position has %(filled)d hires; the headcount cannot be lower. "
                    "Let a hire go first."
                )
                % {"filled": filled},
                field="headcount",
            )
    for field, value in changes.items():
        setattr(position, field, value)
    position.save()
    audit.record_update(actor, position.organization, "position.update", position, before=before)
    return position


@transaction.atomic
def delete_position(actor: Actor, position: Position) -> None:
    hires = Employment.objects.for_organization(position.organization).filter(position=position)
    if hires.exists():
        raise ConflictError(
            "position_has_employments",
            _(
                "This position has employments (%(count)d, terminated ones included) and their "
                "history refers to it; it cannot be deleted."
            )
            % {"count": hires.count()},
        )
    audit.record(
        actor, position.organization, "position.delete", position, before=audit.snapshot(position)
    )
    position.delete()
