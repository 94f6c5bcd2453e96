"""Who is calling: a console session, or an organization's API key (`Authorization: Bearer …`)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants import selectors, services
from tenants.models import ApiKey

SessionAuthentication = authentication.SessionAuthentication


class ApiKeyPrincipal:
    """Stands in for `request.user` when a machine calls with an API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.email = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.email


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        key = selectors.api_key_for_token(token.strip())
        if key is None or not key.organization.is_active:
            raise exceptions.AuthenticationFailed(
                _("This API key is not valid. Check that you sent all of it."),
                code="invalid_api_key",
            )
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                _("This API key has been revoked. Ask an administrator for a new one."),
                code="api_key_revoked",
            )
        services.touch_api_key(key)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "ironbowl.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "ib_… organization API key"}
