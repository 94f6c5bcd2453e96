"""Actions on stations: create, change, delete, and per-station operator grants."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm

from scheduling import selectors
from scheduling.models import Station, StationUserObjectPermission
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Membership, Organization
from tenants.roles import Role

STATION_FIELDS = ("name", "kind", "description", "is_active")


def _name_taken() -> ConflictError:
    return ConflictError(
        "station_name_taken", _("Another station already has this name."), field="name"
    )


@transaction.atomic
def create_station(actor: Actor, organization: Organization, **fields: Any) -> Station:
    try:
        with transaction.atomic():
            station = Station.objects.create(organization=organization, **fields)
    except IntegrityError:
        raise _name_taken() from None
    audit.record(actor, organization, "station.create", station, after=audit.snapshot(station))
    return station


@transaction.atomic
def update_station(actor: Actor, station: Station, **changes: Any) -> Station:
    before = audit.snapshot(station)
    for field, value in changes.items():
        if field not in STATION_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=field)
        setattr(station, field, value)
    try:
        with transaction.atomic():
            station.save()
    except IntegrityError:
        raise _name_taken() from None
    audit.record_update(actor, station.organization, "station.update", station, before=before)
    return station


@transaction.atomic
def delete_station(actor: Actor, station: Station) -> None:
    audit.record(
        actor, station.organization, "station.delete", station, before=audit.snapshot(station)
    )
    station.delete()


@transaction.atomic
def grant_station_operator(actor: Actor, station: Station, membership: Membership) -> Membership:
    if membership.organization_id != station.organization_id:
        raise DomainError("not_found", _("No such member."), field="member")
    if membership.role != Role.OPERATOR:
        raise DomainError(
            "not_an_operator",
            _(
                "Only members with the operator role get per-station grants; "
                "owners and administrators already operate every station."
            ),
            field="member",
        )
    if membership.user_id in set(selectors.operator_user_ids(station)):
        raise ConflictError("already_granted", _("This member already operates this station."))
    assign_perm(f"scheduling.{selectors.OPERATE}", membership.user, station)
    audit.record(
        actor,
        station.organization,
        "station.grant_operator",
        station,
        after={"member": str(membership.pk)},
    )
    return membership


@transaction.atomic
def revoke_station_operator(actor: Actor, station: Station, membership: Membership) -> None:
    if membership.user_id not in set(selectors.operator_user_ids(station)):
        raise DomainError("not_found", _("This member does not operate this station."))
    remove_perm(f"scheduling.{selectors.OPERATE}", membership.user, station)
    audit.record(
        actor,
        station.organization,
        "station.revoke_operator",
        station,
        before={"member": str(membership.pk)},
    )


def drop_grants_of_member(membership: Membership) -> int:
    """Remove a departing member's station grants in that organization (not elsewhere)."""
    stations = Station.objects.for_organization(membership.organization).values("id")
    deleted, _by_model = StationUserObjectPermission.objects.filter(
        user_id=membership.user_id, content_object_id__in=stations
    ).delete()
    return deleted
