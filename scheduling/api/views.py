"""Endpoints for stations, their per-station operators, their widget keys and conversations."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from inference.api.workloads import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_MAX_LENGTH
from inference.services import InferenceError
from ironbowl.api.base import OrganizationViewSet
from scheduling import selectors, services, sessions
from scheduling.api import filters, serializers
from scheduling.models import Station
from tenants.models import Membership
from tenants.roles import Permission as P
from tenants.roles import Role


class StationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    """Stations. Owners and administrators operate all; an operator only those granted to them."""

    model = Station
    serializer_class = serializers.StationSerializer
    filterset_class = filters.StationFilter
    ordering_fields = ["created_at", "name"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map = {
        "list": P.STATIONS_VIEW,
        "retrieve": P.STATIONS_VIEW,
        "create": P.STATIONS_MANAGE,
        "destroy": P.STATIONS_MANAGE,
        "partial_update": P.STATIONS_VIEW,  # then per-object: see check_object_permissions
        "operators": P.STATIONS_VIEW,
        "grant_operator": P.STATIONS_MANAGE,
        "revoke_operator": P.STATIONS_MANAGE,
        "open_session": P.WORKLOADS_MANAGE,
        "rotate_widget_key": P.STATIONS_MANAGE,
    }

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        super().check_object_permissions(request, obj)
        if self.action == "partial_update" and not self._may_operate(obj):
            if self.membership is None or self.membership.role != Role.OPERATOR:
                # A grant would not help an analyst or a key: name the role or missing scope.
                raise exceptions.PermissionDenied(self._denial(P.STATIONS_OPERATE))
            raise exceptions.PermissionDenied(
                _("You do not operate this station. Ask an administrator to grant it to you.")
            )

    def _may_operate(self, station: Station) -> bool:
        if self.has_permission(P.STATIONS_OPERATE):
            return True
        return (
            self.membership is not None
            and self.membership.role == Role.OPERATOR
            and selectors.may_operate(self.request.user, station)
        )

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_station(
            self.actor, self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.update_station(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Station) -> None:
        services.delete_station(self.actor, instance)

    @extend_schema(
        request=serializers.SessionOpenSerializer,
        responses={201: serializers.SessionTicketSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @action(detail=True, methods=["post"], url_path="sessions")
    def open_session(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Open a conversation for one visitor: queues a `session` workload and returns a
        short-lived token for the visitor's websocket (`socket_path`). Call it from the widget's
        backend with an API key; the token, not the key, goes to the browser."""
        station = self.get_object()
        payload = serializers.SessionOpenSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            too_long = _("At most %(n)s characters.") % {"n": IDEMPOTENCY_KEY_MAX_LENGTH}
            raise exceptions.ValidationError({"Idempotency-Key": [too_long]})
        try:
            workload, ticket, created = sessions.open_session(
                self.actor,
                station,
                data["employment"],
                language=data["language"],
                video=data["video"],
                idempotency_key=key,
            )
        except InferenceError as error:
            field = error.field or "non_field_errors"
            raise exceptions.ValidationError({field: [str(error)]}) from error
        body = {
            "workload": workload.pk,
            "state": workload.state,
            "token": ticket.token,
            "expires_at": ticket.expires_at,
            "socket_path": ticket.socket_path,
            "video": workload.spec.get("video", False),
        }
        return Response(
            serializers.SessionTicketSerializer(body).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses=serializers.StationSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-widget-key")
    def rotate_widget_key(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Give a web widget station a new public key. The old key stops opening conversations
        at once: update the widget's page with the new one."""
        station = services.rotate_widget_key(self.actor, self.get_object())
        return Response(serializers.StationSerializer(station).data)

    @extend_schema(responses=serializers.OperatorSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def operators(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        operators = selectors.operators_of_station(self.get_object())
        return Response(serializers.OperatorSerializer(operators, many=True).data)

    @extend_schema(
        request=serializers.OperatorGrantSerializer,
        responses={201: serializers.OperatorSerializer},
    )
    @operators.mapping.post
    def grant_operator(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        station = self.get_object()
        payload = serializers.OperatorGrantSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        payload.is_valid(raise_exception=True)
        member = services.grant_station_operator(
            self.actor, station, payload.validated_data["member"]
        )
        return Response(serializers.OperatorSerializer(member).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"operators/(?P<member_id>[0-9a-f-]{36})",
    )
    def revoke_operator(
        self, request: Request, member_id: str, *args: Any, **kwargs: Any
    ) -> Response:
        station = self.get_object()
        member = self.access_by_id(Membership, member_id)
        services.revoke_station_operator(self.actor, station, member)
        return Response(status=status.HTTP_204_NO_CONTENT)
