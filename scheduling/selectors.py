"""Queries about stations and who operates them."""

from __future__ import annotations

from django.db.models import QuerySet

from scheduling.models import Station, StationUserObjectPermission
from tenants.models import Membership, Organization, User

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


def may_operate(user: object, station: Station) -> bool:
    has_perm = getattr(user, "has_perm", None)
    return bool(has_perm and has_perm(f"scheduling.{OPERATE}", station))
