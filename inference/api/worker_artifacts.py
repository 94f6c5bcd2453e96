"""Worker-protocol endpoints for files: a workload's inputs down, its outputs up (see
`inference.artifacts`). Authenticated with the worker's own token, like the rest of the
protocol; the attempt is a query parameter and fences every transfer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, StreamingHttpResponse
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from inference import artifacts
from inference.api.worker import WorkerView
from inference.contracts import SHA256_HEADER
from inference.models import Workload
from tenants.errors import DomainError

_BINARY = "application/octet-stream"
_BLOCK = 1 << 20
_ATTEMPT = OpenApiParameter(
    "attempt",
    OpenApiTypes.INT,
    OpenApiParameter.QUERY,
    required=True,
    description="The attempt the worker was given (its assignment's `attempt`).",
)


class _ArtifactView(WorkerView):
    def attempt_of(self, request: Request, workload: Any) -> tuple[Workload, int]:
        raw = request.query_params.get("attempt", "")
        if not raw.isdigit() or int(raw) < 1:
            raise DomainError(
                "attempt_required", _("Name the attempt: ?attempt= a whole number from 1.")
            )
        attempt = int(raw)
        return artifacts.attempt_on_worker(self.worker, workload, attempt), attempt


async def _blocks(path: Path) -> AsyncIterator[bytes]:
    """The file in blocks, each read in a thread so that the event loop never waits on disk."""
    stream = await sync_to_async(lambda: path.open("rb"), thread_sensitive=False)()
    try:
        while block := await sync_to_async(stream.read, thread_sensitive=False)(_BLOCK):
            yield block
    finally:
        await sync_to_async(stream.close, thread_sensitive=False)()


class InputView(_ArtifactView):
    @extend_schema(
        parameters=[_ATTEMPT],
        responses={(200, _BINARY): OpenApiTypes.BINARY},
        tags=["worker protocol"],
    )
    def get(self, request: Request, workload: Any, name: str) -> StreamingHttpResponse:
        """The bytes of an input the workload's spec names, for the worker it runs on."""
        found, _attempt = self.attempt_of(request, workload)
        stored = artifacts.input_file(found, name)
        if isinstance(request._request, ASGIRequest):
            # Django would read a file's synchronous iterator whole into memory before sending
            # it over ASGI; footage is up to 600 MB.
            response = StreamingHttpResponse(_blocks(stored), content_type=_BINARY)
            response["Content-Length"] = str(stored.stat().st_size)
            return response
        return FileResponse(stored.open("rb"), content_type=_BINARY)


class OutputView(_ArtifactView):
    @extend_schema(
        parameters=[
            _ATTEMPT,
            OpenApiParameter(
                SHA256_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="The SHA-256 of the body, 64 lower-case hex digits.",
            ),
        ],
        request={_BINARY: OpenApiTypes.BINARY},
        responses=inline_serializer(
            "WorkerOutputStored",
            {
                "name": serializers.CharField(),
                "sha256": serializers.CharField(),
                "bytes": serializers.IntegerField(),
            },
        ),
        tags=["worker protocol"],
    )
    def put(self, request: Request, workload: Any, name: str) -> Response:
        """Store a file the workload made; sending it again replaces it."""
        found, attempt = self.attempt_of(request, workload)
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        stored = artifacts.store_output(
            self.worker,
            found,
            attempt,
            name,
            request.stream,
            length,
            request.headers.get(SHA256_HEADER, "").strip().lower(),
        )
        return Response(stored)


urlpatterns = [
    path(
        "workloads/<uuid:workload>/inputs/<str:name>/",
        InputView.as_view(),
        name="worker-workload-input",
    ),
    path(
        "workloads/<uuid:workload>/outputs/<str:name>/",
        OutputView.as_view(),
        name="worker-workload-output",
    ),
]
