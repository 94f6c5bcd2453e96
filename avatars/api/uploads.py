"""Endpoints: resumable chunked uploads (footage, consent clips, portraits, documents).

POST uploads/                 {purpose, filename, content_type, size, sha256?} → 201, received 0
PUT  uploads/{id}/            raw bytes, Content-Range: bytes START-END/TOTAL → received
GET  uploads/{id}/            how far it got: resume from `received` after a dropped connection
POST uploads/{id}/complete/   {sha256} → size, checksum and content checked
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django_filters
from django.conf import settings
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from avatars import uploads as services
from avatars.models import Upload, UploadPurpose, UploadStatus
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer
from tenants.roles import Permission as P


class UploadSerializer(StrictModelSerializer):
    class Meta:
        model = Upload
        fields = [
            "id",
            "purpose",
            "filename",
            "content_type",
            "size",
            "received",
            "sha256",
            "status",
            "failure_reason",
            "media_info",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields


class UploadStartSerializer(StrictSerializer):
    purpose = serializers.ChoiceField(choices=UploadPurpose.choices)
    filename = serializers.CharField(max_length=255)
    content_type = serializers.CharField(max_length=100)
    size = serializers.IntegerField(min_value=1, help_text="The whole file's size in bytes.")
    sha256 = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The file's SHA-256 (hex), if known now; else send it when completing.",
    )


class UploadCompleteSerializer(StrictSerializer):
    sha256 = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The file's SHA-256 (hex); optional when given at the start.",
    )


class UploadFilter(django_filters.FilterSet):
    purpose = django_filters.ChoiceFilter(choices=UploadPurpose.choices)
    status = django_filters.ChoiceFilter(choices=UploadStatus.choices)

    class Meta:
        model = Upload
        fields = ["purpose", "status"]


class ChunkParser(BaseParser):
    """A chunk's raw bytes as `request.data`, read in full (the body limit middleware and
    UPLOAD_CHUNK_MAX_BYTES bound them)."""

    media_type = "application/octet-stream"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> DataAndFiles[Any, Any]:
        limit: int = settings.UPLOAD_CHUNK_MAX_BYTES
        data: bytes = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise exceptions.ParseError(
                _("A chunk may be at most %(limit)d bytes.") % {"limit": limit}
            )
        return DataAndFiles(data, MultiValueDict())


class UploadViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    OrganizationViewSet,
):
    """Files sent in chunks. A dropped connection costs at most the chunk in flight: read
    `received`, then send the chunk that starts there. Limits per purpose: footage is MP4,
    QuickTime or WebM up to 600 MB; consent clips video or audio; portraits PNG or JPEG; documents
    text, Markdown or PDF. Chunks are at most 8 MB (UPLOAD_CHUNK_MAX_BYTES).

    Completing checks the size, the SHA-256 and, for footage, the content: 2 to 3 minutes, at
    least 720p, with sound, 15 to 60 frames per second (each failure says what was measured). A
    checksum that does not match fails the upload (its bytes are dropped): start a new one."""

    model = Upload
    serializer_class = UploadSerializer
    filterset_class = UploadFilter
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "put", "head", "options"]
    permission_map = {
        "list": P.UPLOADS_MANAGE,
        "retrieve": P.UPLOADS_MANAGE,
        "create": P.UPLOADS_MANAGE,
        "update": P.UPLOADS_MANAGE,
        "complete": P.UPLOADS_MANAGE,
    }

    def get_parsers(self) -> list[BaseParser]:
        # A chunk is raw bytes; every other action takes JSON. (The router calls as_view with
        # the action map and sets `request` before the parsers are asked for.)
        request = getattr(self, "request", None)
        action_map: dict[str, str] = getattr(self, "action_map", None) or {}
        if request is not None and action_map.get((request.method or "").lower()) == "update":
            return [ChunkParser()]
        return super().get_parsers()

    @extend_schema(request=UploadStartSerializer, responses={201: UploadSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = UploadStartSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        upload = services.start_upload(self.actor, self.organization, **payload.validated_data)
        return Response(UploadSerializer(upload).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "Content-Range",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="bytes START-END/TOTAL: the chunk's first and last byte (inclusive) "
                "and the file's size. START must not be past `received`; a chunk that arrived "
                "before is accepted again without being stored twice.",
            )
        ],
        responses={200: UploadSerializer},
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        upload = self.get_object()
        data = request.data if isinstance(request.data, bytes) else b""  # empty: no body
        content_range = services.parse_content_range(request.headers.get("Content-Range"))
        upload = services.receive_chunk(upload, content_range, data)
        return Response(UploadSerializer(upload).data)

    @extend_schema(request=UploadCompleteSerializer, responses={200: UploadSerializer})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        upload = self.get_object()
        payload = UploadCompleteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = services.complete_upload(self.actor, upload, payload.validated_data.get("sha256"))
        return Response(UploadSerializer(upload).data)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("uploads", UploadViewSet, basename="upload")
