"""The public widget endpoint: a visitor's browser opens a conversation at a web widget station
with the station's public key, no account and no API key.

The widget runs on the organization's own site, so this endpoint (and only this one) answers
cross-origin requests: any origin, never with credentials. It is throttled per widget key and
per visitor address. Whoever is on duty at the station answers; every refusal reads the same
whether a key is unknown, belongs to a station switched off or to one that is no longer a widget,
so a key tells nothing about any organization beyond the conversation it opens.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from typing import Any

import structlog
from django.http import HttpRequest
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.services import InferenceError
from ironbowl.api.throttling import AnonymousRateThrottle
from scheduling import selectors, sessions
from scheduling.api import serializers
from scheduling.models import Station
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError

logger = structlog.get_logger(__name__)

WIDGET_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language",
    "Access-Control-Max-Age": "600",
}


class WidgetKeyRateThrottle(AnonymousRateThrottle):
    """All visitors of one widget together (a key copied onto another site shares the budget)."""

    scope = "widget_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.method == "OPTIONS":
            return None  # a preflight opens nothing; browsers cache it (Access-Control-Max-Age)
        # Hashed: the key comes from the URL as sent, any characters at all.
        digest = hashlib.sha256(str(view.kwargs.get("widget_key", "")).encode()).hexdigest()
        return f"throttle:widget:{digest}"


class WidgetVisitorRateThrottle(AnonymousRateThrottle):
    """One visitor address, across every widget."""

    scope = "widget_ip"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.method == "OPTIONS":
            return None
        return f"throttle:widget-ip:{self.get_ident(request)}"


class WidgetSessionView(APIView):
    """Open a conversation with the digital employee on duty at a web widget station."""

    authentication_classes: list[type[Any]] = []  # no cookies, no keys: a visitor is anonymous
    permission_classes = [permissions.AllowAny]
    throttle_classes = [WidgetVisitorRateThrottle, WidgetKeyRateThrottle]

    @extend_schema(
        operation_id="public_widget_session_open",
        tags=["public"],
        # No credentials at all (the key in the path is public): one empty requirement.
        auth=[{}],  # type: ignore[list-item]
        request=serializers.WidgetSessionOpenSerializer,
        responses={
            201: serializers.SessionTicketSerializer,
            404: OpenApiResponse(description="No active web widget has this key."),
            409: OpenApiResponse(description="Nobody is on duty, or the desk cannot take one."),
            429: OpenApiResponse(description="Too many conversations opened; see Retry-After."),
        },
    )
    def post(self, request: Request, widget_key: str) -> Response:
        """Open a conversation for one visitor: queues a `session` workload with whoever is on
        duty at the station and returns a short-lived token for the visitor's websocket."""
        station = selectors.widget_station(widget_key) if WIDGET_KEY.match(widget_key) else None
        if station is None:
            raise exceptions.NotFound()
        timezone.activate(zoneinfo.ZoneInfo(station.organization.time_zone))
        payload = serializers.WidgetSessionOpenSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        employment = selectors.on_duty_employment(station, timezone.now())
        if employment is None:
            raise ConflictError(
                "nobody_on_duty",
                _("Nobody is on duty here right now. Please come back during opening hours."),
            )
        try:
            workload, ticket, _created = sessions.open_session(
                self._actor(request),
                station,
                employment,
                language=payload.validated_data["language"],
                video=payload.validated_data["video"],
            )
        except (DomainError, InferenceError) as error:
            # What to fix is for the organization's people (logged with the station), not for
            # a visitor: the visitor reads that the desk cannot take a conversation now.
            self._log_refusal(station, error)
            raise ConflictError(
                "unavailable",
                _("This desk cannot start a conversation right now. Please try again later."),
            ) from error
        body = {
            "workload": workload.pk,
            "state": workload.state,
            "token": ticket.token,
            "expires_at": ticket.expires_at,
            "socket_path": ticket.socket_path,
            "video": workload.spec.get("video", False),
        }
        return Response(
            serializers.SessionTicketSerializer(body).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(exclude=True)
    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        """The CORS preflight: nothing about the key or the station, only what may be sent."""
        return Response(status=status.HTTP_204_NO_CONTENT)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        timezone.deactivate()
        response = super().finalize_response(request, response, *args, **kwargs)
        # On every answer, errors included: the widget must be able to read a 404, 409 or 429.
        for header, value in CORS_HEADERS.items():
            response[header] = value
        return response

    @staticmethod
    def _actor(request: Request) -> Actor:
        return Actor(
            ip_address=request.META.get("REMOTE_ADDR"),
            request_id=request.META.get("HTTP_X_REQUEST_ID", "")
            or structlog.contextvars.get_contextvars().get("request_id", ""),
        )

    @staticmethod
    def _log_refusal(station: Station, error: Exception) -> None:
        logger.info(
            "widget_session_refused",
            organization=station.organization.slug,
            station=str(station.pk),
            code=getattr(error, "code", "inference"),
        )


urlpatterns = [
    path(
        "widgets/<str:widget_key>/sessions/",
        WidgetSessionView.as_view(),
        name="public-widget-session",
    )
]
