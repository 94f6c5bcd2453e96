"""HTTP middleware: request metrics and the API's body size limit."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from inference.artifacts import OUTPUT_MAX_BYTES
from ironbowl import health
from ironbowl.metrics import HTTP_LATENCY, HTTP_REQUESTS, metrics_view


class OperationsEndpointsMiddleware:
    """Answer /healthz, /readyz and /metrics before host checks and redirects.

    Kubernetes probes and Prometheus call pods by IP, over plain HTTP: ALLOWED_HOSTS and the
    SSL redirect, right for browsers, would refuse them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.endpoints: dict[str, Callable[[HttpRequest], HttpResponse]] = {
            "/healthz": health.healthz,
            "/readyz": health.readyz,
            "/metrics": metrics_view,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = self.endpoints.get(request.path)
        return endpoint(request) if endpoint is not None else self.get_response(request)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The route pattern, not the path: ids in paths would explode the label set.
        route = match.route if match is not None and match.route else "unmatched"
        method = request.method or "GET"
        HTTP_REQUESTS.labels(method, route, f"{response.status_code // 100}xx").inc()
        HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
        return response


# A chunk of a resumable upload (PUT with Content-Range): larger than other API bodies.
_UPLOAD_CHUNK_PATH = re.compile(r"^/api/v1/orgs/[^/]+/uploads/[0-9a-f-]{36}/$")
# A file a worker delivers for its workload (inference.artifacts bounds it).
_WORKER_OUTPUT_PATH = re.compile(r"^/api/v1/inference/worker/workloads/[0-9a-f-]{36}/outputs/")
# A batch of analytics events (ironbowl.analytics.api.events bounds it once inflated, too).
_EVENTS_PATH = re.compile(r"^/api/v1/orgs/[^/]+/events/$")


class ApiBodyLimitMiddleware:
    """Refuse API bodies over the limit before anything reads them, with a message to act on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.method not in ("GET", "HEAD", "OPTIONS"):
            limit: int = settings.API_MAX_BODY_BYTES
            if request.method == "PUT" and _UPLOAD_CHUNK_PATH.match(request.path):
                limit = settings.UPLOAD_CHUNK_MAX_BYTES
            elif request.method == "PUT" and _WORKER_OUTPUT_PATH.match(request.path):
                limit = OUTPUT_MAX_BYTES
            elif request.method == "POST" and _EVENTS_PATH.match(request.path):
                limit = settings.ANALYTICS_MAX_BODY_BYTES
            length = request.META.get("CONTENT_LENGTH") or ""
            chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
            if not length and chunked:
                return JsonResponse(
                    {
                        "code": "length_required",
                        "detail": _("Send a Content-Length header with the request body."),
                    },
                    status=411,
                )
            if length:
                try:
                    size = int(length)
                except ValueError:
                    return JsonResponse(
                        {
                            "code": "bad_content_length",
                            "detail": _("The Content-Length header is not a number."),
                        },
                        status=400,
                    )
                if size > limit:
                    return JsonResponse(
                        {
                            "code": "body_too_large",
                            "detail": _(
                                "The request body is %(size)d bytes; the limit is %(limit)d bytes."
                            )
                            % {"size": size, "limit": limit},
                        },
                        status=413,
                    )
        return self.get_response(request)
