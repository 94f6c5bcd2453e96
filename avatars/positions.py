"""Positions: the jobs an organization hires digital employees into, and what they require."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from avatars import languages
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


def missing_requirements(
    position: Position, spoken_languages: Iterable[str], skills: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(languages, skills) the position requires that the candidate lacks; a required language is
    met by any more specific tag of it (`yue` by yue-HK, see `avatars.languages.speaks`)."""
    spoken = list(spoken_languages)
    skills = set(skills)
    missing_languages = [
        tag for tag in position.required_languages if not languages.speaks(spoken, tag)
    ]
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
        fields["required_languages"] = languages.clean_list(
            fields["required_languages"], field="required_languages"
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
