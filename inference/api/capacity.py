"""Endpoints: an organization's GPU capacity — what its plan allows and uses now, the capacity
calendar ahead, and reservations of slots for future windows.

The calendar is the same answer `inference.capacity` gives scheduling; the operators' calendar
(inference.api.operators) reuses the query and the shape below for the whole platform.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import django_filters
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from inference import capacity, selectors
from inference.models import GpuClass, Reservation
from ironbowl.api.base import OrganizationAPIView, OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer
from tenants import audit
from tenants.roles import Permission as P

MAX_RANGE = dt.timedelta(days=31)
MAX_STEPS = 2000
DEFAULT_RANGE = dt.timedelta(days=1)
DEFAULT_STEP_SECONDS = 3600


# Times a calendar or a reservation may name: far enough either way, and never so far that a time
# zone's offset would take them past year 1 or 9999 (a 500 on the way out).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


class UtcDateTimeField(serializers.DateTimeField):
    """ISO 8601, read as UTC (PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows);
    a time without an offset is in the current (the organization's) time zone."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        try:
            parsed = super().to_internal_value(value).astimezone(dt.UTC)
        except (OverflowError, ValueError):
            self.fail("invalid", format="ISO 8601")
        if not EARLIEST <= parsed < LATEST:
            raise serializers.ValidationError(
                _("Give a time from %(earliest)s to %(latest)s.")
                % {"earliest": EARLIEST.year, "latest": LATEST.year}
            )
        return parsed


class CapacityConflict(exceptions.APIException):
    """The slots do not fit: the organization's quota or the platform's capacity binds."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "capacity"

    def __init__(self, answer: capacity.CapacityAnswer) -> None:
        super().__init__(detail=answer.reason, code=answer.reason_code)


# --- Capacity now ---------------------------------------------------------------------------------


class ClassCapacitySerializer(serializers.Serializer[Any]):
    gpu_class = serializers.ChoiceField(choices=GpuClass.choices)
    quota = serializers.IntegerField(help_text="Concurrent slots the plan allows.")
    in_use = serializers.IntegerField(help_text="Slots of admitted, placed and running work.")
    reserved_now = serializers.IntegerField(help_text="Slots reserved for this instant.")


class CapacitySerializer(serializers.Serializer[Any]):
    month_starts_at = serializers.DateTimeField()
    gpu_hours_used = serializers.FloatField()
    gpu_hours_limit = serializers.IntegerField()
    classes = ClassCapacitySerializer(many=True)


class CapacityView(OrganizationAPIView):
    permission_map = {"get": P.WORKLOADS_VIEW}

    @extend_schema(tags=["inference"], responses=CapacitySerializer)
    def get(self, request: Request, org: str) -> Response:
        """Per GPU class: the plan's quota, slots in use and reserved now; GPU-hours this month
        (calendar month in UTC) against the plan's limit."""
        return Response(CapacitySerializer(selectors.capacity_summary(self.organization)).data)


# --- The calendar ---------------------------------------------------------------------------------


class CalendarQuerySerializer(serializers.Serializer[Any]):
    """The calendar's query. Times without an offset are in the organization's time zone."""

    gpu_class = serializers.ChoiceField(
        choices=GpuClass.choices,
        required=False,
        help_text="Left out: every class (of the plan, or with active pools for operators).",
    )
    start = UtcDateTimeField(required=False, help_text="Default: the start of this hour.")
    end = UtcDateTimeField(required=False, help_text="Default: a day after start.")
    step = serializers.IntegerField(
        required=False,
        default=DEFAULT_STEP_SECONDS,
        max_value=int(MAX_RANGE.total_seconds()),
        help_text="Seconds per step (> 0).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start") or timezone.now().replace(minute=0, second=0, microsecond=0)
        end = attrs.get("end") or start + DEFAULT_RANGE
        step = attrs["step"]
        if step <= 0:
            raise serializers.ValidationError({"step": [_("A step is at least one second.")]})
        if end <= start:
            raise serializers.ValidationError({"end": [_("The end must be after the start.")]})
        if end - start > MAX_RANGE:
            raise serializers.ValidationError(
                {"end": [_("A calendar covers at most %(days)s days.") % {"days": MAX_RANGE.days}]}
            )
        steps = -(-(end - start) // dt.timedelta(seconds=step))
        if steps > MAX_STEPS:
            raise serializers.ValidationError(
                {
                    "step": [
                        _(
                            "This range needs %(steps)s steps; at most %(max)s are answered. "
                            "Take longer steps or a shorter range."
                        )
                        % {"steps": steps, "max": MAX_STEPS}
                    ]
                }
            )
        return {**attrs, "start": start, "end": end, "step": dt.timedelta(seconds=step)}


class CalendarStepSerializer(serializers.Serializer[Any]):
    starts_at = serializers.DateTimeField()
    reserved = serializers.IntegerField(help_text="Peak slots reserved within the step.")
    available = serializers.IntegerField(help_text="What is left at that peak.")


class ClassCalendarSerializer(serializers.Serializer[Any]):
    gpu_class = serializers.ChoiceField(choices=GpuClass.choices)
    limit = serializers.IntegerField(
        help_text="The organization's quota, or the platform's capacity (operators)."
    )
    steps = CalendarStepSerializer(many=True)


class CalendarSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step = serializers.IntegerField(help_text="Seconds per step.")
    classes = ClassCalendarSerializer(many=True)


def calendar_response(
    query: dict[str, Any], classes: list[str], limit_of: Callable[[str], int], **scope: Any
) -> Response:
    """The calendar of each class asked for, as `CalendarSerializer` shows it."""
    start, end, step = query["start"], query["end"], query["step"]
    wanted = [query["gpu_class"]] if "gpu_class" in query else classes
    body = {
        "start": start,
        "end": end,
        "step": int(step.total_seconds()),
        "classes": [
            {
                "gpu_class": gpu_class,
                "limit": limit_of(gpu_class),
                "steps": capacity.calendar(gpu_class, start, end, step, **scope),
            }
            for gpu_class in wanted
        ],
    }
    return Response(CalendarSerializer(body).data)


def calendar_query(request: Request) -> dict[str, Any]:
    query = CalendarQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


class CapacityCalendarView(OrganizationAPIView):
    permission_map = {"get": P.WORKLOADS_VIEW}

    @extend_schema(
        tags=["inference"], parameters=[CalendarQuerySerializer], responses=CalendarSerializer
    )
    def get(self, request: Request, org: str) -> Response:
        """Peak slots reserved per step, and what the quota leaves, for each GPU class. Times are
        in the organization's time zone."""
        organization = self.organization
        return calendar_response(
            calendar_query(request),
            selectors.planned_classes(organization),
            lambda gpu_class: capacity.organization_quota(organization, gpu_class),
            organization=organization,
        )


# --- Reservations ---------------------------------------------------------------------------------


class ReserveSerializer(StrictSerializer):
    gpu_class = serializers.ChoiceField(choices=GpuClass.choices)
    slots = serializers.IntegerField(min_value=1, max_value=10_000)
    starts_at = UtcDateTimeField()
    ends_at = UtcDateTimeField()
    purpose = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": [_("The end must be after the start.")]})
        return attrs


class ReservationSerializer(StrictModelSerializer):
    class Meta:
        model = Reservation
        fields = ["id", "gpu_class", "slots", "starts_at", "ends_at", "purpose", "holder"]
        read_only_fields = fields


class ReservationFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped base
    gpu_class = django_filters.ChoiceFilter(choices=GpuClass.choices)

    class Meta:
        model = Reservation
        fields = ["gpu_class"]


class ReservationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrganizationViewSet
):
    """Slots of a GPU class held over a window. Scheduling reserves every shift itself; these
    are the ad-hoc ones (a campaign). Deleting one gives the slots back."""

    model = Reservation
    serializer_class = ReservationSerializer
    filterset_class = ReservationFilter
    ordering_fields = ["created_at", "starts_at"]
    http_method_names = ["get", "post", "delete", "head", "options"]
    permission_map = {
        "list": P.WORKLOADS_VIEW,
        "retrieve": P.WORKLOADS_VIEW,
        "create": P.WORKLOADS_MANAGE,
        "destroy": P.WORKLOADS_MANAGE,
    }

    @extend_schema(tags=["inference"])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Reservations, newest first; filter by `gpu_class`."""
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=["inference"])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        tags=["inference"],
        request=ReserveSerializer,
        responses={201: ReservationSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Reserve slots over a window. When they do not fit, 409 with `code` `quota` (the plan)
        or `capacity` (the platform) and a `detail` saying how many are held already."""
        payload = ReserveSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with transaction.atomic():
            reservation, answer = capacity.reserve(
                self.organization,
                gpu_class=data["gpu_class"],
                slots=data["slots"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                holder=f"api:{uuid.uuid4()}",
                purpose=data["purpose"],
            )
            if reservation is None or not answer.ok:
                raise CapacityConflict(answer)
            audit.record(
                self.actor,
                self.organization,
                "reservation.create",
                reservation,
                after=audit.snapshot(reservation),
            )
        return Response(ReservationSerializer(reservation).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["inference"])
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Release the reservation: its slots are free for others at once."""
        reservation = self.get_object()
        with transaction.atomic():
            audit.record(
                self.actor,
                self.organization,
                "reservation.release",
                reservation,
                before=audit.snapshot(reservation),
            )
            capacity.release(self.organization, reservation.holder)
        return Response(status=status.HTTP_204_NO_CONTENT)


def register(router: SimpleRouter) -> None:
    router.register("reservations", ReservationViewSet, basename="reservation")
