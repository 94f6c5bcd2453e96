"""The base of every console page: signed in, the organization from the URL, the role's right.

`OrganizationPage` resolves the organization from the URL before anything else; a missing
organization and one the person is not a member of answer the same 404. Each HTTP method names
the permission it needs in `permissions` (a method not named is refused: fail closed), and the page
renders in the organization's time zone. An expired session sends the person to sign-in and
keeps what a form carried (see `drafts`).
"""

from __future__ import annotations

import zoneinfo
from typing import Any, ClassVar

import structlog
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.generic import TemplateView
from django_htmx.http import HttpResponseClientRedirect

from ironbowl.console import drafts
from ironbowl.console.nav import navigation
from tenants import selectors
from tenants.audit import Actor
from tenants.models import Membership, Organization, User
from tenants.roles import Permission, role_allows
from tenants.scoping import TenantOwned


def sign_in_url(next_path: str) -> str:
    return f"{reverse('console:sign-in')}?{urlencode({'next': next_path})}"


def page_path(request: HttpRequest) -> str:
    """The page the person is on: for an htmx request, the page that sent it."""
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.current_url_abs_path:
        return str(htmx.current_url_abs_path)
    return request.get_full_path()


def to_sign_in(request: HttpRequest) -> HttpResponse:
    """Send a signed-out person to sign-in, back to this page after; a POST's fields are kept."""
    if request.method == "POST":
        drafts.keep(request, page_path(request))
    url = sign_in_url(page_path(request))
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return redirect(url)


class SignedInPage(TemplateView):
    """A page for signed-in people only."""

    user: User

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return to_sign_in(request)
        self.user = request.user
        return super().dispatch(request, *args, **kwargs)  # type: ignore[return-value]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["memberships"] = list(
            selectors.memberships_of_user(self.user).select_related("organization")
        )
        return context


class OrganizationPage(SignedInPage):
    """A page of one organization, for its members whose role allows the method."""

    # Every method names the permission it needs; a method missing here is refused.
    permissions: ClassVar[dict[str, Permission]] = {}
    # The navigation entry this page belongs to (highlighted in the side bar).
    section: ClassVar[str] = ""

    organization: Organization
    membership: Membership

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return to_sign_in(request)
        organization = selectors.organization_by_slug(kwargs.get("org", ""))
        membership = (
            selectors.membership_of(request.user, organization)
            if organization is not None
            else None
        )
        if organization is None or membership is None:
            raise Http404(_("No such organization."))
        self.organization, self.membership = organization, membership
        self.user = request.user
        method = (request.method or "get").lower()
        required = self.permissions.get("get" if method == "head" else method)
        if required is None:
            return HttpResponseNotAllowed([m.upper() for m in self.permissions])
        if request.session.get("console.organization") != organization.slug:
            request.session["console.organization"] = organization.slug  # written only on change
        structlog.contextvars.bind_contextvars(organization=organization.slug)
        timezone.activate(zoneinfo.ZoneInfo(organization.time_zone))
        try:
            if not self.may(required):
                return self.denied(required)
            response: HttpResponse = super().dispatch(request, *args, **kwargs)
            # Render now, while the organization's time zone is active.
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.render()
            return response
        finally:
            timezone.deactivate()

    def may(self, permission: Permission) -> bool:
        return role_allows(self.membership.role, permission)

    def denied(self, permission: Permission) -> HttpResponse:
        message = _("Your role (%(role)s) does not allow this: it needs “%(permission)s”.") % {
            "role": self.membership.get_role_display(),
            "permission": permission.label,
        }
        context = {**self.base_context(), "message": message}
        return TemplateResponse(self.request, "console/denied.html", context, status=403).render()

    @property
    def actor(self) -> Actor:
        request = self.request
        return Actor(
            user=self.user,
            role=self.membership.role,
            ip_address=request.META.get("REMOTE_ADDR"),
            request_id=structlog.contextvars.get_contextvars().get("request_id", ""),
        )

    def get_owned(self, model: type[TenantOwned], pk: object, **filters: Any) -> Any:
        """One of this organization's rows; a missing one and another's answer the same 404."""
        manager: Any = model.objects
        return get_object_or_404(manager.for_organization(self.organization), pk=pk, **filters)

    def owned(self, model: type[TenantOwned]) -> models.QuerySet[Any]:
        manager: Any = model.objects
        return manager.for_organization(self.organization)  # type: ignore[no-any-return]

    def url(self, name: str, *args: Any) -> str:
        """A console URL of this organization."""
        return reverse(name, args=[self.organization.slug, *args])

    def base_context(self) -> dict[str, Any]:
        can = {p.value.replace(".", "_"): self.may(p) for p in Permission}
        return {
            "organization": self.organization,
            "membership": self.membership,
            "memberships": list(
                selectors.memberships_of_user(self.user).select_related("organization")
            ),
            "can": can,
            "nav": navigation(self.organization, can, self.section),
            "section": self.section,
            "time_zone": self.organization.time_zone,
            "draft": drafts.take(self.request, self.request.path)
            if self.request.method == "GET"
            else None,
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = TemplateView.get_context_data(self, **kwargs)
        context.update(self.base_context())
        return context


class StaffPage(SignedInPage):
    """A page for platform staff (pools, workers, capacity); others get the same 404 as a
    page that does not exist."""

    section: ClassVar[str] = ""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return to_sign_in(request)
        if not request.user.is_staff:
            raise Http404(_("Not found."))
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["section"] = self.section
        context["staff_nav"] = True
        return context
