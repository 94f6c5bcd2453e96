"""The base of every organization-scoped endpoint.

Before a handler runs, the base resolves the organization from the URL, checks that the caller
(a member, or an API key of that organization) may take this action, and binds the organization
to the logs. A foreign organization or object answers exactly like a missing one: 404.
Subclasses may not override the methods that enforce this; they use the hooks instead.
"""

from __future__ import annotations

import zoneinfo
from typing import Any, ClassVar

import structlog
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, viewsets
from rest_framework.filters import OrderingFilter
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ironbowl.api.pagination import KeysetCursorPagination, OrganizationCursorPagination
from ironbowl.api.throttling import CredentialRateThrottle, OrganizationRateThrottle
from tenants import selectors
from tenants.audit import Actor
from tenants.models import ApiKey, Membership, Organization
from tenants.roles import Permission, role_allows
from tenants.scoping import TenantOwned

_PROTECTED = ("initial", "check_permissions", "get_queryset", "get_object")


class OrganizationScoped:
    """Mixin for APIView: resolves `self.organization` and checks `permission_map` per action."""

    # Every action names the permission it needs; an action missing here is refused (fail closed).
    permission_map: ClassVar[dict[str, Permission]] = {}

    organization: Organization
    membership: Membership | None
    api_key: ApiKey | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("ironbowl.api."):
            return
        for name in _PROTECTED:
            for base in cls.__mro__:
                if base.__module__.startswith(("ironbowl.api.", "rest_framework")):
                    break
                if name in vars(base):
                    raise TypeError(
                        f"{cls.__name__}.{name} would bypass tenant scoping; "
                        "use scope_queryset() or permission_map instead"
                    )

    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)  # type: ignore[misc]
        self._resolve_organization(request)
        self._check_action_permission(request)

    def _resolve_organization(self, request: Request) -> None:
        view: Any = self
        if getattr(view, "swagger_fake_view", False):
            return
        slug = view.kwargs.get("org", "")
        organization = selectors.organization_by_slug(slug)
        self.api_key = request.auth if isinstance(request.auth, ApiKey) else None
        self.membership = None
        if organization is None:
            raise exceptions.NotFound()
        if self.api_key is not None:
            if self.api_key.organization_id != organization.pk:
                raise exceptions.NotFound()
        else:
            self.membership = selectors.membership_of(request.user, organization)  # type: ignore[arg-type]
            if self.membership is None:
                raise exceptions.NotFound()
        self.organization = organization
        request.organization = organization  # type: ignore[attr-defined]
        structlog.contextvars.bind_contextvars(organization=organization.slug)
        # Times in responses are shown in the organization's own time zone (stored in UTC).
        timezone.activate(zoneinfo.ZoneInfo(organization.time_zone))

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        timezone.deactivate()
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc,no-any-return]

    def _action(self, request: Request) -> str:
        action = getattr(self, "action", None)
        return action or (request.method or "get").lower()

    def _check_action_permission(self, request: Request) -> None:
        action = self._action(request)
        if action in ("options", "metadata"):
            return
        required = self.permission_map.get(action)
        if required is None:
            raise exceptions.MethodNotAllowed(request.method or "")
        if not self.has_permission(required):
            raise exceptions.PermissionDenied(self._denial(required))

    def has_permission(self, permission: Permission) -> bool:
        if self.api_key is not None:
            return permission.value in self.api_key.scopes
        return self.membership is not None and role_allows(self.membership.role, permission)

    def _denial(self, permission: Permission) -> str:
        if self.api_key is not None:
            return _("This API key lacks the scope %(scope)s.") % {"scope": permission.value}
        role = self.membership.get_role_display() if self.membership else ""
        return _("Your role (%(role)s) does not allow this: it needs %(permission)s.") % {
            "role": role,
            "permission": permission.label,
        }

    def access_by_id(self, model: type[TenantOwned], pk: str) -> Any:
        """One of this organization's rows by id; missing and foreign look the same (404)."""
        return get_object_or_404(model.objects.for_organization(self.organization), pk=pk)

    @property
    def actor(self) -> Actor:
        request: Request = getattr(self, "request")  # noqa: B009
        return Actor(
            user=request.user if self.membership is not None else None,  # type: ignore[arg-type]
            api_key=self.api_key,
            role=self.membership.role if self.membership else None,
            ip_address=request.META.get("REMOTE_ADDR"),
            request_id=request.META.get("HTTP_X_REQUEST_ID", "")
            or structlog.contextvars.get_contextvars().get("request_id", ""),
        )

    def get_serializer_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_serializer_context()  # type: ignore[misc]
        context["organization"] = getattr(self, "organization", None)
        return context


class OrganizationAPIView(OrganizationScoped, APIView):
    throttle_classes = [OrganizationRateThrottle, CredentialRateThrottle]

    def get_serializer_context(self) -> dict[str, Any]:
        return {"request": self.request, "view": self, "organization": self.organization}


class OrganizationViewSet(OrganizationScoped, viewsets.GenericViewSet[Any]):
    """Base for viewsets of one organization-owned model."""

    model: type[TenantOwned]
    lookup_value_regex = "[0-9a-f-]{36}"
    pagination_class = OrganizationCursorPagination
    throttle_classes = [OrganizationRateThrottle, CredentialRateThrottle]
    filter_backends = [DjangoFilterBackend, OrderingFilter]

    def get_queryset(self) -> models.QuerySet[Any]:
        manager = self.model.objects
        if getattr(self, "swagger_fake_view", False):
            return manager.none()
        return self.scope_queryset(manager.for_organization(self.organization))

    def scope_queryset(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        """Hook: narrow or annotate the organization's rows (select_related, etc.)."""
        return queryset


class CatalogViewSet(OrganizationScoped, viewsets.GenericViewSet[Any]):
    """Base for read-only catalogs of rows that organizations published for every other one to
    see (the talent market).

    The caller is checked as everywhere: a member or API key of the organization in the URL, with
    the permission its `permission_map` names. The rows are not that organization's: they come
    from `published_queryset()`, which must keep only what their owners published; a row it
    leaves out answers 404 exactly like a missing one. Read-only: a catalog never changes another
    organization's rows.
    """

    model: type[TenantOwned]
    lookup_value_regex = "[0-9a-f-]{36}"
    pagination_class = KeysetCursorPagination
    throttle_classes = [OrganizationRateThrottle, CredentialRateThrottle]
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    http_method_names = ["get", "head", "options"]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        writes = set(cls.http_method_names) - {"get", "head", "options"}
        if writes:
            raise TypeError(f"{cls.__name__} is a catalog: it may not answer {sorted(writes)}")

    def get_queryset(self) -> models.QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self.published_queryset()

    def published_queryset(self) -> models.QuerySet[Any]:
        """Hook: every organization's published rows (the only cross-organization read here)."""
        raise NotImplementedError(f"{type(self).__name__} must define published_queryset()")
