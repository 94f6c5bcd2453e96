"""Queries about stations: who operates them, who is on duty there, and the web widget that a
public key names."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from avatars.models import Employment
from scheduling.models import (
    Schedule,
    Shift,
    ShiftState,
    Station,
    StationKind,
    StationUserObjectPermission,
)
from tenants.models import Membership, Organization, User
from tenants.roles import Permission, Role, role_allows

OPERATE = "operate_station"


def operator_user_ids(station: Station) -> QuerySet[StationUserObjectPermission, int]:
    return StationUserObjectPermission.objects.filter(
        content_object=station, permission__codename=OPERATE
    ).values_list("user_id", flat=True)


def operators_of_station(station: Station) -> QuerySet[Membership]:
    return (
        Membership.objects.for_organization(station.organization)
        .filter(user_id__in=operator_user_ids(station))
        .select_related("user")
        .order_by("created_at")
    )


def stations_operated_by(organization: Organization, user: User) -> QuerySet[Station]:
    granted = StationUserObjectPermission.objects.filter(
        user=user, permission__codename=OPERATE
    ).values("content_object_id")
    return Station.objects.for_organization(organization).filter(id__in=granted)


def operator_grants(organization: Organization) -> QuerySet[StationUserObjectPermission]:
    """Who was granted which of the organization's stations, the station joined: one query for
    the whole organization (`stations_operated_by` asks for one person)."""
    stations = Station.objects.for_organization(organization)
    return StationUserObjectPermission.objects.filter(
        content_object__in=stations, permission__codename=OPERATE
    ).select_related("content_object")


def may_operate(user: object, station: Station) -> bool:
    has_perm = getattr(user, "has_perm", None)
    return bool(has_perm and has_perm(f"scheduling.{OPERATE}", station))


def stations_operable_by(organization: Organization, user: User, role: str) -> QuerySet[Station]:
    """The stations a member (`user` with `role` in `organization`) may operate — act on their
    shifts, change them and their schedules: all of the organization's for a role that operates
    every station, those granted to an operator, none for the other roles (a grant does not
    help them). The API's rule; one query, however many stations are asked about."""
    stations = Station.objects.for_organization(organization)
    if role_allows(role, Permission.STATIONS_OPERATE):
        return stations
    if role == Role.OPERATOR:
        return stations_operated_by(organization, user)
    return stations.none()


def on_duty_shifts(station: Station, at: dt.datetime) -> QuerySet[Shift]:
    """The station's shifts that are on duty and cover the instant `at`, earliest first."""
    return (
        Shift.objects.for_organization(station.organization)
        .filter(station=station, state=ShiftState.ON_DUTY, starts_at__lte=at, ends_at__gt=at)
        .order_by("starts_at", "id")
    )


def on_duty_employment(station: Station, at: dt.datetime) -> Employment | None:
    """Who answers at the station at `at`: the employment of its earliest on-duty shift
    covering that instant (a station with room for several on air takes the first), or None."""
    shift = on_duty_shifts(station, at).select_related("employment").first()
    return None if shift is None else shift.employment


def is_rostered(station: Station) -> bool:
    """Whether the station works by a roster (any active schedule): then only the employments
    on duty there take its visitors."""
    schedules = Schedule.objects.for_organization(station.organization)
    return schedules.filter(station=station, is_active=True).exists()


def is_on_duty(station: Station, employment: Employment, at: dt.datetime) -> bool:
    return on_duty_shifts(station, at).filter(employment=employment).exists()


def widget_station(widget_key: str) -> Station | None:
    """The active web widget station whose public key this is, in whichever (active)
    organization; None for an unknown key, a station or organization switched off, or a
    station that is no longer a widget."""
    if not widget_key:
        return None
    # The one cross-organization read here: the key itself names the organization.
    return (
        Station.objects.unscoped_dangerously()
        .filter(
            widget_key=widget_key,
            kind=StationKind.WEB_WIDGET,
            is_active=True,
            organization__is_active=True,
        )
        .select_related("organization")
        .first()
    )
