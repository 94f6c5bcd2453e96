"""Rate limits per organization (all its callers together) and per credential (user or key)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        # Read at call time (not import time) so operators and tests can change rates.
        rates: Any = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        return str(rates[self.scope])


class OrganizationRateThrottle(_SettingsRateThrottle):
    scope = "organization"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        organization = getattr(request, "organization", None)
        return None if organization is None else f"throttle:org:{organization.pk}"


class CredentialRateThrottle(_SettingsRateThrottle):
    scope = "credential"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.auth is not None and hasattr(request.auth, "prefix"):
            return f"throttle:key:{request.auth.pk}"
        if request.user and request.user.is_authenticated:
            return f"throttle:user:{request.user.pk}"
        return None


class AnonymousRateThrottle(_SettingsRateThrottle):
    """For the few endpoints open to the public (login, accepting an invitation)."""

    scope = "anonymous"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return f"throttle:anon:{self.get_ident(request)}"
