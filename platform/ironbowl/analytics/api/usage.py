"""Usage records: GET /api/v1/orgs/{org}/analytics/usage/ (the records of a range, newest
first, in pages) and .../analytics/usage/summary/ (net totals by type and by employment).

Both read `from`/`to` (a date or an ISO 8601 time; without an offset, in the organization's
time zone; default: this local month) and filter by `usage_type`, `employment` and `station`.
Reversals are records too: totals are net of them. Reading needs analytics.view.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any, ClassVar

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from avatars.models import Employment
from ironbowl.analytics import kpis, usage
from ironbowl.analytics.api.serializers import RangeQuerySerializer
from ironbowl.analytics.models import UsageRecord, UsageType
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.pagination import KeysetCursorPagination
from scheduling.models import Station
from tenants.errors import DomainError
from tenants.roles import Permission as P

MAX_SPAN = dt.timedelta(days=400)


class QuantityField(serializers.DecimalField):
    """A quantity as a string, exactly (six decimal places)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=30, decimal_places=6, coerce_to_string=True, **kwargs)


class UsageRecordSerializer(serializers.ModelSerializer[UsageRecord]):
    quantity = QuantityField(help_text="Negative for a reversal.")
    employment = serializers.UUIDField(source="employment_id", allow_null=True)
    station = serializers.UUIDField(source="station_id", allow_null=True)
    workload = serializers.UUIDField(source="workload_id", allow_null=True)
    reverses = serializers.IntegerField(
        source="reverses_id", allow_null=True, help_text="The record this one reverses."
    )

    class Meta:
        model = UsageRecord
        fields = [
            "id",
            "source_id",
            "usage_type",
            "quantity",
            "gpu_class",
            "employment",
            "station",
            "workload",
            "occurred_at",
            "recorded_at",
            "reverses",
        ]
        read_only_fields = fields


class TotalSerializer(serializers.Serializer[Any]):
    usage_type = serializers.ChoiceField(choices=UsageType.choices)
    quantity = QuantityField()


class EmploymentTotalSerializer(TotalSerializer):
    employment = serializers.UUIDField(
        source="employment_id", allow_null=True, help_text="null: not attributed to one."
    )


class UsageSummarySerializer(serializers.Serializer[Any]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()
        fields["to"] = serializers.DateTimeField(help_text="Exclusive.")
        fields["time_zone"] = serializers.CharField()
        fields["totals"] = TotalSerializer(many=True)
        fields["by_employment"] = EmploymentTotalSerializer(many=True)
        return fields


def _organization_rows(model: Any) -> Any:
    # The filter's choices are the request organization's rows: another organization's id is
    # refused exactly like an id that does not exist.
    def rows(request: Any) -> QuerySet[Any]:
        if request is None or not hasattr(request, "organization"):
            empty: QuerySet[Any] = model.objects.none()
            return empty
        mine: QuerySet[Any] = model.objects.for_organization(request.organization)
        return mine

    return rows


class UsageRecordFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped base
    usage_type = django_filters.ChoiceFilter(choices=UsageType.choices)
    employment = django_filters.ModelChoiceFilter(
        queryset=_organization_rows(Employment), method="by_id"
    )
    station = django_filters.ModelChoiceFilter(queryset=_organization_rows(Station), method="by_id")

    class Meta:
        model = UsageRecord
        fields = ["usage_type", "employment", "station"]

    def by_id(self, queryset: QuerySet[Any], name: str, value: Any) -> QuerySet[Any]:
        # Records name their employment and station by id (no foreign key: they outlive them).
        return queryset.filter(**{f"{name}_id": value.pk}) if value else queryset


class UsagePagination(KeysetCursorPagination):
    ordering = ("-occurred_at",)
    page_size = 100
    max_page_size = 1000


PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.STR,
        description="A date (its local midnight) or an ISO 8601 time; without an offset, in "
        "the organization's time zone. Default: the first day of this local month.",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.STR,
        description="Exclusive; a date counts that whole day. Default: the end of this local "
        "month. At most 400 days after `from`.",
    ),
    OpenApiParameter("usage_type", OpenApiTypes.STR, enum=UsageType.values),
    OpenApiParameter("employment", OpenApiTypes.UUID, description="One employment only."),
    OpenApiParameter("station", OpenApiTypes.UUID, description="One station only."),
]


class UsageRecordViewSet(mixins.ListModelMixin, OrganizationViewSet):
    """The organization's usage records: what its digital employees' work used, ready for
    billing. Append-only: a correction is a reversing record with the opposite quantity."""

    model = UsageRecord
    serializer_class = UsageRecordSerializer
    filterset_class = UsageRecordFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    pagination_class = UsagePagination
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.ANALYTICS_VIEW,
        "summary": P.ANALYTICS_VIEW,
    }

    def _range(self) -> tuple[dt.datetime, dt.datetime]:
        found: tuple[dt.datetime, dt.datetime] | None = getattr(self, "_checked_range", None)
        if found is None:
            found = self._checked_range = _checked_range(self.request, self.organization)
        return found

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        start, end = self._range()
        return queryset.filter(occurred_at__gte=start, occurred_at__lt=end)

    @extend_schema(parameters=PARAMETERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Records that occurred in the range, newest first; times in the organization's zone,
        quantities as exact decimal strings."""
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=PARAMETERS, responses=UsageSummarySerializer)
    @action(detail=False, methods=["get"], pagination_class=None)
    def summary(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Net quantities (reversals subtracted) of the range, by usage type and by employment
        and usage type; with the same filters as the list."""
        records = self.filter_queryset(self.get_queryset())
        start, end = self._range()
        answer = {
            "from": start,
            "to": end,
            "time_zone": self.organization.time_zone,
            "totals": usage.totals(records, "usage_type"),
            "by_employment": usage.totals(records, "employment_id", "usage_type"),
        }
        return Response(UsageSummarySerializer(answer).data)


def _checked_range(request: Request, organization: Any) -> tuple[dt.datetime, dt.datetime]:
    """[from, to) from the query string. Without either: this local month. With only `to`:
    from the start of its local month. With only `from`: to the end of this local month."""
    query = RangeQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    start, end = query.validated_data.get("from"), query.validated_data.get("to")
    if end is None:
        end = kpis.local_midnight(_month_after(timezone.now().astimezone(zone).date()), zone)
    if start is None:
        last_day = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
        start = kpis.local_midnight(last_day.replace(day=1), zone)
    if end <= start:
        raise DomainError("bad_range", _("The end of the range must be after its start."), "to")
    if end - start > MAX_SPAN:
        raise DomainError(
            "range_too_long",
            _("A range covers at most %(days)s days.") % {"days": MAX_SPAN.days},
            field="to",
        )
    return start, end


def _month_after(day: dt.date) -> dt.date:
    """The first day of the month after `day`'s."""
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
