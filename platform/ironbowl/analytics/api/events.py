"""The event intake: POST /api/v1/orgs/{org}/events/ — batches from streaming platforms,
widgets and kiosks, sent with an organization API key that has the `events.write` scope.

The body is a JSON array (or `{"events": [...]}`), or NDJSON (one event per line, Content-Type
application/x-ndjson), optionally gzip-compressed (Content-Encoding: gzip). Limits: events per
batch (ANALYTICS_MAX_BATCH_EVENTS), bytes as sent (ANALYTICS_MAX_BODY_BYTES, checked before the
body is read, and again as read) and once inflated (ANALYTICS_MAX_INFLATED_BYTES); batches
per key (THROTTLE_EVENTS_RATE) and per organization (THROTTLE_EVENTS_ORGANIZATION_RATE, a bucket
apart from the organization's other API calls).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.analytics import ingestion, metrics
from ironbowl.api.base import OrganizationAPIView
from ironbowl.api.throttling import CredentialRateThrottle, OrganizationRateThrottle
from tenants.roles import Permission as P


class _EventsBucket:
    """A throttle's count kept apart from the same caller's other API calls."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = super().get_cache_key(request, view)  # type: ignore[misc]
        return None if key is None else f"{key}:events"


class EventsRateThrottle(_EventsBucket, CredentialRateThrottle):
    """Batches per API key (or member), apart from the key's other calls."""

    scope = "events"


class EventsOrganizationRateThrottle(_EventsBucket, OrganizationRateThrottle):
    """Batches of all the organization's keys together, apart from its other calls: hundreds of
    room keys sending events do not use up the console's and the analysts' API budget."""

    scope = "events_organization"


class _BatchParser(BaseParser):
    """Reads the batch's bytes (bounded), inflates gzip (bounded), and decodes the events."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> DataAndFiles[Any, Any]:
        limit: int = settings.ANALYTICS_MAX_BODY_BYTES
        body: bytes = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            # Reached when no Content-Length said so first (ApiBodyLimitMiddleware answers those).
            raise _too_large(_("A batch may be at most %(n)d bytes.") % {"n": limit})
        request = (parser_context or {}).get("request")
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else ""
        if encoding.strip().lower() == "gzip":
            body = _inflate(body)
        elif encoding.strip().lower() not in ("", "identity"):
            raise _refused("unsupported_encoding", _("Send the batch plain or gzip-compressed."))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _refused("not_utf8", _("The batch is not UTF-8 text.")) from None
        events = self.decode(text)
        if len(events) > settings.ANALYTICS_MAX_BATCH_EVENTS:
            raise _refused(
                "batch_too_large",
                _("A batch may hold at most %(n)d events; this one has %(count)d. Split it.")
                % {"n": settings.ANALYTICS_MAX_BATCH_EVENTS, "count": len(events)},
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return DataAndFiles(events, MultiValueDict())

    def decode(self, text: str) -> list[Any]:
        raise NotImplementedError


class JsonBatchParser(_BatchParser):
    media_type = "application/json"

    def decode(self, text: str) -> list[Any]:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise _refused(
                "invalid_json", _("The batch is not valid JSON: %(error)s") % {"error": error}
            ) from None
        if isinstance(data, dict) and set(data) == {"events"}:
            data = data["events"]
        if not isinstance(data, list):
            raise _refused("not_a_batch", _('Send a JSON array of events, or {"events": [...]}.'))
        return data


class NdjsonBatchParser(_BatchParser):
    media_type = "application/x-ndjson"

    def decode(self, text: str) -> list[Any]:
        events = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except ValueError:
                raise _refused(
                    "invalid_json",
                    _("Line %(line)d of the batch is not valid JSON.") % {"line": number},
                ) from None
        return events


class JsonLinesBatchParser(NdjsonBatchParser):
    media_type = "application/jsonl"


class _Refused(exceptions.APIException):
    status_code: int = status.HTTP_400_BAD_REQUEST


def _refused(code: str, message: str, status_code: int = 400) -> exceptions.APIException:
    metrics.BATCHES.labels("refused").inc()
    error = _Refused(message, code)
    error.status_code = status_code
    return error


def _too_large(message: str) -> exceptions.APIException:
    """413 `body_too_large`, like ApiBodyLimitMiddleware's answer to a Content-Length over it."""
    return _refused("body_too_large", message, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def _inflate(body: bytes) -> bytes:
    limit: int = settings.ANALYTICS_MAX_INFLATED_BYTES
    inflater = zlib.decompressobj(wbits=31)  # gzip framing
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise _refused("invalid_gzip", _("The body says gzip but is not gzip data.")) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large(_("Inflated, a batch may be at most %(n)d bytes.") % {"n": limit})
    return data


class EventErrorSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="Position of the event in the batch, from 0.")
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_blank=True)


class IngestResultSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Events stored now.")
    duplicates = serializers.IntegerField(help_text="Events already stored (a retry): ignored.")
    rejected = serializers.IntegerField(help_text="Events refused; see `errors`.")
    # DRF's metaclass takes declared fields off the class: `Serializer.errors` stays intact.
    errors = EventErrorSerializer(many=True)  # type: ignore[assignment]


class EventIntakeView(OrganizationAPIView):
    """Stores a batch: the good events are kept, every bad one is reported by index and reason.
    A retried batch stores nothing twice. 200 when anything was new or already stored; 422 when
    every event was refused."""

    permission_map = {"post": P.EVENTS_WRITE}
    parser_classes = [JsonBatchParser, NdjsonBatchParser, JsonLinesBatchParser]
    throttle_classes = [EventsOrganizationRateThrottle, EventsRateThrottle]

    @extend_schema(
        operation_id="events_ingest",
        request={
            "application/json": OpenApiTypes.ANY,
            "application/x-ndjson": OpenApiTypes.STR,
        },
        responses={200: IngestResultSerializer, 422: IngestResultSerializer},
        examples=[
            OpenApiExample(
                "A visit and a viewer sample",
                request_only=True,
                media_type="application/json",
                value=[
                    {
                        "id": "room7-000123",
                        "type": "visit",
                        "occurred_at": "2026-11-26T19:02:11+08:00",
                        "station": "5b0e2f7e-3a4c-4c53-9f64-0f2f3c1d9a10",
                        "viewer": "u-8842",
                    },
                    {
                        "id": "room7-000124",
                        "type": "view",
                        "occurred_at": "2026-11-26T19:02:15+08:00",
                        "station": "5b0e2f7e-3a4c-4c53-9f64-0f2f3c1d9a10",
                        "value": 1280,
                    },
                ],
            )
        ],
        tags=["analytics"],
    )
    def post(self, request: Request, org: str) -> Response:
        if not isinstance(request.data, list):
            # No body at all: DRF calls no parser then, and hands over an empty dict.
            raise _refused("not_a_batch", _('Send a JSON array of events, or {"events": [...]}.'))
        try:
            result = ingestion.ingest(self.organization, request.data)
        except DatabaseError:
            metrics.BATCHES.labels("failed").inc()  # nothing was stored: the client sends it again
            raise
        everything_refused = result.rejected and not (result.accepted or result.duplicates)
        metrics.BATCHES.labels("rejected" if everything_refused else "stored").inc()
        body = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "errors": [
                {"index": e.index, "code": e.code, "message": e.message, "field": e.field}
                for e in result.errors
            ],
        }
        return Response(
            body,
            status=status.HTTP_422_UNPROCESSABLE_ENTITY
            if everything_refused
            else status.HTTP_200_OK,
        )
