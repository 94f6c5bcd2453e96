"""One shape for every API error: `{"code", "detail", "fields"}` — for people and programs."""

from __future__ import annotations

from typing import Any

import structlog
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from tenants.errors import DomainError

logger = structlog.get_logger(__name__)


def _field_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {key: _field_errors(value) for key, value in detail.items()}
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [{"code": item.code, "message": str(item)} for item in detail]  # type: ignore[return-value]
        return [_field_errors(item) for item in detail]  # type: ignore[return-value]
    return [{"code": getattr(detail, "code", "invalid"), "message": str(detail)}]  # type: ignore[return-value]


def _body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        set_rollback()
        fields = (
            {exc.field: [{"code": exc.code, "message": str(exc.detail)}]} if exc.field else None
        )
        return Response(_body(exc.code, str(exc.detail), fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        detail = exc.detail
        if isinstance(detail, dict):
            non_field: Any = detail.pop("non_field_errors", None)
            message = str(non_field[0]) if non_field else _("Some fields are not valid.")
            return Response(
                _body("invalid", message, _field_errors(detail)), status=status.HTTP_400_BAD_REQUEST
            )
        messages = detail if isinstance(detail, list) else [detail]
        return Response(
            _body("invalid", " ".join(str(m) for m in messages)),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(int(wait))
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            authenticate_header = context["view"].get_authenticate_header(context["request"])
            if authenticate_header:
                headers["WWW-Authenticate"] = authenticate_header
        code = exc.get_codes()
        return Response(
            _body(code if isinstance(code, str) else exc.default_code, str(exc.detail)),
            status=exc.status_code,
            headers=headers,
        )
    set_rollback()
    logger.exception("unhandled_api_error")
    return Response(
        _body("server_error", _("Something went wrong on our side. It has been logged.")),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """404 for URLs that match no route, in the same shape as every other API error."""
    return JsonResponse(_body("not_found", _("Not found.")), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        _body("server_error", _("Something went wrong on our side. It has been logged.")),
        status=500,
    )
