"""Filters of the stations API. Related-object filters are scoped to the request's organization."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from scheduling import selectors
from scheduling.models import Station, StationKind
from tenants.models import Membership


def _organization_members(request: Any) -> QuerySet[Membership]:
    if request is None or not hasattr(request, "organization"):
        return Membership.objects.unscoped_dangerously().none()
    return Membership.objects.for_organization(request.organization)


@extend_schema_field(OpenApiTypes.UUID)
class MemberChoiceFilter(django_filters.ModelChoiceFilter):
    """A member id, looked up only among the request organization's members."""


class StationFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=StationKind.choices)
    is_active = django_filters.BooleanFilter()
    operator = MemberChoiceFilter(
        queryset=_organization_members, method="filter_operator", label="Operated by member"
    )

    class Meta:
        model = Station
        fields = ["kind", "is_active", "operator"]

    def filter_operator(
        self, queryset: QuerySet[Station], name: str, member: Membership
    ) -> QuerySet[Station]:
        operated = selectors.stations_operated_by(member.organization, member.user)
        return queryset.filter(id__in=operated.values("id"))
