"""Endpoints: one shift, and what operators do with it on air — start early, stop, take over
and hand back (scheduling.duty). Owners and administrators operate every station's shifts; an
operator only the shifts at stations granted to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer
from scheduling import duty, selectors
from scheduling.models import Shift
from tenants.audit import Actor
from tenants.roles import Permission as P
from tenants.roles import Role

REASON_MAX_LENGTH = 500


class ShiftSerializer(StrictModelSerializer):
    class Meta:
        model = Shift
        fields = [
            "id",
            "schedule",
            "schedule_version",
            "employment",
            "station",
            "starts_at",
            "ends_at",
            "state",
            "reason_code",
            "reason",
            "at_risk",
            "risk_reason",
            "attempts",
            "workload",
            "on_duty_at",
            "ended_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ShiftActionSerializer(StrictSerializer):
    reason = serializers.CharField(
        max_length=REASON_MAX_LENGTH,
        required=False,
        allow_blank=True,
        help_text="Why; kept as the shift's reason and in the audit log.",
    )


ACTION_CONFLICTS = OpenApiResponse(
    description=(
        "`illegal_transition` (not from this state), `shift_over`, `shift_time_up`, "
        "`employment_not_active`, `station_inactive` or `stream_refused` (see `detail`)."
    )
)


class ShiftViewSet(mixins.RetrieveModelMixin, OrganizationViewSet):
    """A shift and the operators' actions on it; every action is audited with its reason."""

    model = Shift
    serializer_class = ShiftSerializer
    permission_map = {
        "retrieve": P.STATIONS_VIEW,
        # Then per object: STATIONS_OPERATE, or an operator granted the shift's station.
        "start_early": P.STATIONS_VIEW,
        "stop": P.STATIONS_VIEW,
        "take_over": P.STATIONS_VIEW,
        "hand_back": P.STATIONS_VIEW,
    }

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.select_related("station")

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        super().check_object_permissions(request, obj)
        if self.action == "retrieve" or self._may_operate(obj):
            return
        if self.membership is None or self.membership.role != Role.OPERATOR:
            # A grant would not help an analyst or a key: name the role or missing scope.
            raise exceptions.PermissionDenied(self._denial(P.STATIONS_OPERATE))
        raise exceptions.PermissionDenied(
            _("You do not operate this shift's station. Ask an administrator to grant it to you.")
        )

    def _may_operate(self, shift: Shift) -> bool:
        if self.has_permission(P.STATIONS_OPERATE):
            return True
        return (
            self.membership is not None
            and self.membership.role == Role.OPERATOR
            and selectors.may_operate(self.request.user, shift.station)
        )

    def _act(self, request: Request, do: Callable[[Actor, Shift, str], Shift]) -> Response:
        shift = self.get_object()
        payload = ShiftActionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        shift = do(self.actor, shift, payload.validated_data.get("reason", ""))
        return Response(ShiftSerializer(shift).data)

    @extend_schema(
        request=ShiftActionSerializer, responses={200: ShiftSerializer, 409: ACTION_CONFLICTS}
    )
    @action(detail=True, methods=["post"], url_path="start-early")
    def start_early(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start a planned shift now: a live room's stream is requested (warming), a desk opens
        (on duty)."""
        return self._act(request, duty.start_early)

    @extend_schema(
        request=ShiftActionSerializer, responses={200: ShiftSerializer, 409: ACTION_CONFLICTS}
    )
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """End the shift now (ended; a planned one is cancelled): its stream stops and its
        reserved capacity is given back."""
        return self._act(request, duty.stop)

    @extend_schema(
        request=ShiftActionSerializer, responses={200: ShiftSerializer, 409: ACTION_CONFLICTS}
    )
    @action(detail=True, methods=["post"], url_path="take-over")
    def take_over(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A person takes over (taken_over): the avatar's stream stops, a desk stops taking
        visitors; the shift goes on until it is handed back or its time is up."""
        return self._act(request, duty.take_over)

    @extend_schema(
        request=ShiftActionSerializer, responses={200: ShiftSerializer, 409: ACTION_CONFLICTS}
    )
    @action(detail=True, methods=["post"], url_path="hand-back")
    def hand_back(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Give a taken-over shift back to the avatar: a new stream is requested (warming), a
        desk reopens (on duty)."""
        return self._act(request, duty.hand_back)
