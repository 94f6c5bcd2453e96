"""Endpoints: schedules, holiday calendars and their days, and the roster (shifts over a range,
and the gaps in 24/7 coverage) for a calendar view.

Reading needs stations.view. Changing a schedule needs stations.manage, or an operator granted
the schedule's station (both stations, when it moves); holiday calendars need stations.manage.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from avatars.api.knowledge import CSVParser
from avatars.models import Employment
from inference.api.capacity import UtcDateTimeField
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.pagination import KeysetCursorPagination
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from scheduling import holidays, recurrence, roster, schedules, selectors
from scheduling.api.shifts import ShiftSerializer
from scheduling.models import DayKind, Holiday, HolidayCalendar, Schedule, Shift, Station
from tenants.roles import Permission as P
from tenants.roles import Role

# Dates a schedule or a holiday may name: far enough either way, and never so far that a time
# zone's offset takes a local midnight past year 1 or 9999.
EARLIEST_DAY = dt.date(2000, 1, 1)
LATEST_DAY = dt.date(2199, 12, 31)
DEFAULT_ROSTER_RANGE = dt.timedelta(days=7)


def _in_range(day: dt.date) -> dt.date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise serializers.ValidationError(
            _("Give a date from %(earliest)s to %(latest)s.")
            % {"earliest": EARLIEST_DAY.isoformat(), "latest": LATEST_DAY.isoformat()}
        )
    return day


class BoundedDateField(serializers.DateField):
    def to_internal_value(self, value: Any) -> dt.date:
        return _in_range(super().to_internal_value(value))


_OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)


class LocalTimeField(serializers.TimeField):
    """A local wall-clock time of day (the organization's time zone); an offset is refused."""

    def to_internal_value(self, value: Any) -> dt.time:
        parsed = super().to_internal_value(value)
        # Django's parser drops an offset silently ("19:00+08:00" reads as 19:00): refuse it.
        if parsed.tzinfo is not None or _OFFSET.search(str(value).strip()):
            raise serializers.ValidationError(
                _("Give the local time without an offset; it is read in the organization's zone.")
            )
        return parsed


# --- Schedules -----------------------------------------------------------------------------------


class ScheduleSerializer(StrictModelSerializer):
    """A schedule. Times and days are local to the organization's time zone (`time_zone`)."""

    employment = TenantRelatedField(Employment, help_text="An active digital employee.")
    station = TenantRelatedField(Station)
    rrule = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text=(
            "An RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR, at most hourly, "
            "without DTSTART, UNTIL or BYHOUR/BYMINUTE/BYSECOND (those come from valid_from, "
            "valid_until and start_time); COUNT up to 1000. Empty for 24/7."
        ),
    )
    start_time = LocalTimeField(
        required=False, allow_null=True, help_text="Local time the shifts start (not for 24/7)."
    )
    duration_minutes = serializers.IntegerField(
        min_value=1,
        max_value=recurrence.MAX_DURATION_MINUTES,
        required=False,
        allow_null=True,
        help_text="How long each shift lasts (not for 24/7).",
    )
    always_on = serializers.BooleanField(
        required=False,
        help_text="24/7: one shift per local day, midnight to midnight (23 or 25 hours when "
        "the clocks change).",
    )
    valid_from = BoundedDateField(help_text="The first local day of the schedule.")
    valid_until = BoundedDateField(
        required=False, allow_null=True, help_text="The last local day (inclusive); null: open."
    )
    exdates = serializers.ListField(
        child=BoundedDateField(),
        max_length=recurrence.MAX_EXDATES,
        required=False,
        help_text="Local days without a shift (shifts that start on them are dropped).",
    )
    holiday_calendar = TenantRelatedField(
        HolidayCalendar,
        required=False,
        allow_null=True,
        help_text="Its holidays are days off; its make-up working days add a shift to rules "
        "that run on exactly Monday to Friday.",
    )
    segments = serializers.ListField(
        child=serializers.DictField(),
        max_length=200,
        required=False,
        help_text='Live rooms: what the avatar says on air, [{"text", "language"}] in order; '
        "empty: a greeting.",
    )
    time_zone = serializers.SerializerMethodField(
        help_text="The organization's time zone, in which the rule, times and days are read."
    )

    class Meta:
        model = Schedule
        fields = [
            "id",
            *schedules.SCHEDULE_FIELDS,
            "version",
            "time_zone",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "version", "time_zone", "created_at", "updated_at"]
        validators: list[object] = []

    def get_time_zone(self, schedule: Schedule) -> str:
        organization = self.context.get("organization")
        return str(getattr(organization, "time_zone", ""))


def _organization_rows(model: Any) -> Any:
    def rows(request: Any) -> QuerySet[Any]:
        manager = model.objects
        if request is None or not hasattr(request, "organization"):
            empty: QuerySet[Any] = manager.none()
            return empty
        mine: QuerySet[Any] = manager.for_organization(request.organization)
        return mine

    return rows


class ScheduleFilter(django_filters.FilterSet):
    station = django_filters.ModelChoiceFilter(queryset=_organization_rows(Station))
    employment = django_filters.ModelChoiceFilter(queryset=_organization_rows(Employment))
    holiday_calendar = django_filters.ModelChoiceFilter(
        queryset=_organization_rows(HolidayCalendar)
    )
    is_active = django_filters.BooleanFilter()
    always_on = django_filters.BooleanFilter()

    class Meta:
        model = Schedule
        fields = ["station", "employment", "holiday_calendar", "is_active", "always_on"]


class ScheduleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    """Schedules: an employment at a station by a recurrence rule. Changing one re-makes its
    future planned shifts at once; a conflict (seats, a station's limit) is refused with 409."""

    model = Schedule
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilter
    ordering_fields = ["created_at", "valid_from"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.STATIONS_VIEW,
        "retrieve": P.STATIONS_VIEW,
        # Then: stations.manage, or an operator granted the station (see _require_station).
        "create": P.STATIONS_VIEW,
        "partial_update": P.STATIONS_VIEW,
        "destroy": P.STATIONS_VIEW,
    }

    def _require_role(self) -> None:
        """Before anything else: only managers and operators may change schedules at all."""
        if self.has_permission(P.STATIONS_MANAGE):
            return
        if self.membership is None or self.membership.role != Role.OPERATOR:
            raise exceptions.PermissionDenied(self._denial(P.STATIONS_MANAGE))

    def _require_station(self, station: Station) -> None:
        if self.has_permission(P.STATIONS_MANAGE):
            return
        if not selectors.may_operate(self.request.user, station):
            raise exceptions.PermissionDenied(
                _("You do not operate this station. Ask an administrator to grant it to you.")
            )

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._require_role()
        return super().create(request, *args, **kwargs)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._require_role()
        return super().partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._require_role()
        return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer: Any) -> None:
        self._require_station(serializer.validated_data["station"])
        serializer.instance = schedules.create_schedule(
            self.actor, self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        self._require_station(serializer.instance.station)
        if "station" in serializer.validated_data:
            self._require_station(serializer.validated_data["station"])
        serializer.instance = schedules.update_schedule(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Schedule) -> None:
        self._require_station(instance.station)
        schedules.delete_schedule(self.actor, instance)


# --- Holiday calendars ---------------------------------------------------------------------------


class HolidayCalendarSerializer(StrictModelSerializer):
    class Meta:
        model = HolidayCalendar
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list[object] = []


class HolidaySerializer(StrictModelSerializer):
    calendar = TenantRelatedField(HolidayCalendar)
    date = BoundedDateField()
    kind = serializers.ChoiceField(
        choices=DayKind.choices,
        help_text="holiday: no shift starts that day; workday: a make-up working day.",
    )

    class Meta:
        model = Holiday
        fields = ["id", "calendar", "date", "kind", "name"]
        read_only_fields = ["id"]
        validators: list[object] = []


class HolidayImportReportSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class ImportDaySerializer(StrictSerializer):
    date = serializers.DateField()
    kind = serializers.ChoiceField(choices=DayKind.choices)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class ImportDaysSerializer(StrictSerializer):
    days = ImportDaySerializer(many=True, help_text="At most 1000.")


class HolidayCalendarViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    """Holiday calendars; their days are under /holidays/ (filter `calendar`)."""

    model = HolidayCalendar
    serializer_class = HolidayCalendarSerializer
    ordering_fields = ["created_at", "name"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.STATIONS_VIEW,
        "retrieve": P.STATIONS_VIEW,
        "create": P.STATIONS_MANAGE,
        "partial_update": P.STATIONS_MANAGE,
        "destroy": P.STATIONS_MANAGE,
        "import_days": P.STATIONS_MANAGE,
    }

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = holidays.create_calendar(
            self.actor, self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = holidays.update_calendar(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: HolidayCalendar) -> None:
        holidays.delete_calendar(self.actor, instance)

    @extend_schema(
        summary="Import days from CSV or JSON",
        description=(
            "`text/csv` with the header `date,kind,name` (UTF-8), or `application/json`: "
            '`{"days": [{"date", "kind", "name"}]}` (or the bare list). `kind` is `holiday` or '
            "`workday` (a make-up working day); at most 1000 days. Days are added or corrected "
            "by date; days the file does not name stay. All or nothing: any bad row imports "
            "nothing and the answer lists each problem by row (a CSV's header is row 1). "
            "Importing the same file again changes nothing. Refused with 409 when the "
            "calendar's schedules would conflict."
        ),
        request={
            "application/json": ImportDaysSerializer,
            "text/csv": OpenApiTypes.STR,
        },
        responses={
            200: HolidayImportReportSerializer,
            400: OpenApiResponse(description="Bad rows."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import",
        parser_classes=[JSONParser, CSVParser],
        filter_backends=[],
        pagination_class=None,
    )
    def import_days(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        calendar = self.get_object()
        try:
            if isinstance(request.data, bytes):
                rows = holidays.parse_csv(request.data)
            else:
                rows = holidays.parse_json(request.data)
        except holidays.ImportInvalid as error:
            return Response(
                {
                    "code": error.code,
                    "detail": str(error.detail),
                    "fields": {"rows": [{"code": "invalid", "message": p} for p in error.problems]},
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        report = holidays.import_days(self.actor, calendar, rows)
        return Response(HolidayImportReportSerializer(report.as_dict()).data)


class HolidayFilter(django_filters.FilterSet):
    calendar = django_filters.ModelChoiceFilter(queryset=_organization_rows(HolidayCalendar))
    kind = django_filters.ChoiceFilter(choices=DayKind.choices)
    year = django_filters.NumberFilter(field_name="date", lookup_expr="year")

    class Meta:
        model = Holiday
        fields = ["calendar", "kind", "year"]


class HolidayPagination(KeysetCursorPagination):
    ordering = ("date",)
    max_page_size = 400  # a year and more of days in one page


class HolidayViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    """Days of holiday calendars: holidays and make-up working days."""

    model = Holiday
    serializer_class = HolidaySerializer
    filterset_class = HolidayFilter
    ordering_fields = ["date"]
    pagination_class = HolidayPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.STATIONS_VIEW,
        "retrieve": P.STATIONS_VIEW,
        "create": P.STATIONS_MANAGE,
        "partial_update": P.STATIONS_MANAGE,
        "destroy": P.STATIONS_MANAGE,
    }

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = holidays.add_day(self.actor, data.pop("calendar"), **data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = holidays.update_day(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Holiday) -> None:
        holidays.delete_day(self.actor, instance)


# --- The roster ----------------------------------------------------------------------------------


class LocalDateTimeField(UtcDateTimeField):
    """A time (ISO 8601; without an offset, in the organization's time zone) or a date (its
    local midnight)."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        if isinstance(value, str) and len(value.strip()) == len("2026-01-31"):
            try:
                day = dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
            else:
                zone = timezone.get_current_timezone()
                return recurrence.local_midnight(_in_range(day), zone)
        return super().to_internal_value(value)


class RangeSerializer(serializers.Serializer[Any]):
    start = LocalDateTimeField(required=False, help_text="Default: today's local midnight.")
    end = LocalDateTimeField(required=False, help_text="Default: a week after start.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        zone = timezone.get_current_timezone()
        today = timezone.localdate(timezone=zone)
        start = attrs.get("start") or recurrence.local_midnight(today, zone)
        end = attrs.get("end") or start + DEFAULT_ROSTER_RANGE
        if end <= start:
            raise serializers.ValidationError({"end": [_("The end must be after the start.")]})
        if end - start > roster.MAX_RANGE:
            raise serializers.ValidationError(
                {
                    "end": [
                        _("A roster covers at most %(days)s days.")
                        % {"days": roster.MAX_RANGE.days}
                    ]
                }
            )
        return {"start": start, "end": end}


RANGE_PARAMETERS = [
    OpenApiParameter(
        "start",
        OpenApiTypes.STR,
        description="A date (its local midnight) or an ISO 8601 time; without an offset, in "
        "the organization's time zone. Default: today's local midnight.",
    ),
    OpenApiParameter(
        "end",
        OpenApiTypes.STR,
        description="As start; default a week after it; at most 62 days after it.",
    ),
]


class RosterFilter(django_filters.FilterSet):
    station = django_filters.ModelChoiceFilter(queryset=_organization_rows(Station))
    employment = django_filters.ModelChoiceFilter(queryset=_organization_rows(Employment))

    class Meta:
        model = Shift
        fields = ["station", "employment"]


class RosterPagination(KeysetCursorPagination):
    ordering = ("starts_at",)
    page_size = 500
    max_page_size = 2000


class GapsQuerySerializer(RangeSerializer):
    station = TenantRelatedField(Station, required=False, help_text="One station only.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return {**super().validate(attrs), "station": attrs.get("station")}


class GapSerializer(serializers.Serializer[Any]):
    station = serializers.UUIDField(source="station_id")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    minutes = serializers.IntegerField()


class RosterViewSet(mixins.ListModelMixin, OrganizationViewSet):
    """The roster: shifts that overlap a range, earliest first, in pages of up to 2000."""

    model = Shift
    serializer_class = ShiftSerializer
    filterset_class = RosterFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    pagination_class = RosterPagination
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.STATIONS_VIEW,
        "gaps": P.STATIONS_VIEW,
    }

    def _range(self) -> tuple[dt.datetime, dt.datetime]:
        query = RangeSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data["start"], query.validated_data["end"]

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        start, end = self._range()
        return queryset.filter(
            starts_at__gte=start - roster.LONGEST_SHIFT, starts_at__lt=end, ends_at__gt=start
        )

    @extend_schema(parameters=RANGE_PARAMETERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Shifts of the organization (or of one station or employment) that overlap the range,
        with their state and whether they are at risk; times in the organization's time zone."""
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=[
            *RANGE_PARAMETERS,
            OpenApiParameter("station", OpenApiTypes.UUID, description="One station only."),
        ],
        responses=GapSerializer(many=True),
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def gaps(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Where a 24/7 station should be staffed and no shift covers it (not cancelled, missed
        or failed), up to the materialisation horizon; earliest first."""
        query = GapsQuerySerializer(
            data=request.query_params, context=self.get_serializer_context()
        )
        query.is_valid(raise_exception=True)
        start, end, station = (query.validated_data[k] for k in ("start", "end", "station"))
        found = roster.coverage_gaps(
            self.organization, start, end, station_id=station.pk if station else None
        )
        return Response(GapSerializer(found, many=True).data)
