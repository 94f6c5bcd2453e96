"""Administration: members and their roles, invitations, per-station operator grants, API keys
and the audit log with its CSV export.

Each action calls the service the API calls (`tenants.services`, `scheduling.services`) with the
page's Actor, so the console refuses what the API refuses, in the same words, next to the field.
A secret (an API key, an invitation's token) is shown once, on the page that follows its
creation, and never again.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import json
import secrets
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.db.models import F, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.dateparse import parse_date
from django.utils.functional import Promise
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ironbowl.api.serializers import TenantRelatedField
from ironbowl.console import audit_labels
from ironbowl.console.base import OrganizationPage, SignedInPage
from ironbowl.console.forms import Form, submit_once, validate
from ironbowl.console.inputs import as_list
from scheduling import selectors as station_selectors
from scheduling import services as station_services
from scheduling.api.serializers import OperatorGrantSerializer
from scheduling.models import Station
from tenants import selectors as tenant_selectors
from tenants import services
from tenants.api.filters import AuditFilter
from tenants.api.serializers import (
    ApiKeySerializer,
    InvitationSerializer,
    MemberSerializer,
)
from tenants.errors import DomainError
from tenants.models import (
    ApiKey,
    AuditEntry,
    Invitation,
    InvitationStatus,
    Membership,
)
from tenants.roles import API_KEY_SCOPES, Permission, Role, may_assign_role

# A created secret waits this long for the page the creation redirects to (read there once, then
# deleted), then is gone for good: the cache holds it in plain text, so not a moment longer.
REVEAL_TTL_S = 2 * 60
AUDIT_PAGE_SIZE = 50
EXPORT_CHUNK = 500
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Tab:
    key: str
    label: Promise
    url_name: str
    permission: Permission


@dataclass(frozen=True)
class TabLink:
    key: str
    label: Promise
    url: str
    current: bool


TABS: tuple[Tab, ...] = (
    Tab("members", gettext_lazy("Members"), "console:members", Permission.MEMBERS_VIEW),
    Tab("invitations", gettext_lazy("Invitations"), "console:invitations", Permission.MEMBERS_VIEW),
    Tab("grants", gettext_lazy("Station grants"), "console:grants", Permission.STATIONS_VIEW),
    Tab("api-keys", gettext_lazy("API keys"), "console:api-keys", Permission.API_KEYS_MANAGE),
    Tab("audit", gettext_lazy("Audit log"), "console:audit", Permission.AUDIT_VIEW),
)


class AdministrationPage(OrganizationPage):
    """A page of the administration section, with the tabs the role may open."""

    section = "administration"
    tab: ClassVar[str] = ""

    def base_context(self) -> dict[str, Any]:
        context = super().base_context()
        context["tabs"] = [
            TabLink(t.key, t.label, self.url(t.url_name), t.key == self.tab)
            for t in TABS
            if self.may(t.permission)
        ]
        return context

    def assignable_roles(self, *keep: str) -> list[tuple[str, str]]:
        """The roles this member may hand out (the domain's rule), plus those in `keep`."""
        return [
            (value, str(label))
            for value, label in Role.choices
            if value in keep or may_assign_role(self.membership.role, value)
        ]

    def show(self, status: int, **context: Any) -> HttpResponse:
        """This page again, with a refused form's values and errors."""
        return self.render_to_response(self.get_context_data(**context), status=status)

    def done(
        self, message: str, url_name: str, query: dict[str, str] | None = None
    ) -> HttpResponse:
        messages.success(self.request, message)
        target = self.url(url_name)
        return redirect(f"{target}?{urlencode(query)}" if query else target)


# -- secrets shown once ----------------------------------------------------------------------


def _reveal_key(request: HttpRequest, organization_slug: str, reveal_id: str) -> str:
    return f"console:reveal:{request.user.pk}:{organization_slug}:{reveal_id}"


def keep_for_reveal(request: HttpRequest, organization_slug: str, secret: dict[str, str]) -> str:
    """Hold a secret for the page after the redirect; returns the id that page names."""
    reveal_id = secrets.token_urlsafe(12)
    cache.set(_reveal_key(request, organization_slug, reveal_id), secret, timeout=REVEAL_TTL_S)
    return reveal_id


class ShowsSecretOnce(AdministrationPage):
    """A page that may show a secret once: that answer is never stored by a browser or proxy,
    so the back button or a shared cache cannot show it again."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        if "reveal" in request.GET:
            add_never_cache_headers(response)
        return response


def take_reveal(request: HttpRequest, organization_slug: str) -> dict[str, str] | None:
    """The secret the URL names, once: a reload, or anyone else, finds nothing."""
    reveal_id = request.GET.get("reveal", "")
    if not reveal_id:
        return None
    key = _reveal_key(request, organization_slug, reveal_id)
    secret: dict[str, str] | None = cache.get(key)
    cache.delete(key)
    return secret


# -- members ---------------------------------------------------------------------------------


@dataclass
class MemberRow:
    membership: Membership
    form: Form  # the role form
    remove_form: Form
    role_choices: list[tuple[str, str]]
    is_you: bool


class Members(AdministrationPage):
    """Members with their roles; owners and administrators change a role or remove someone."""

    template_name = "console/administration/members.html"
    tab = "members"
    permissions = {"get": Permission.MEMBERS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        refused: dict[str, Form] = kwargs.get("refused", {})
        refused_pk = kwargs.get("refused_member")
        members = self.owned(Membership).select_related("user").order_by("created_at", "id")
        rows = []
        for m in members:
            mine = refused if m.pk == refused_pk else {}
            rows.append(
                MemberRow(
                    membership=m,
                    form=mine.get("role") or Form.of(None, role=m.role),
                    remove_form=mine.get("remove") or Form(),
                    role_choices=self.assignable_roles(m.role),
                    is_you=m.pk == self.membership.pk,
                )
            )
        context["rows"] = rows
        return context


class MemberRole(Members):
    permissions = {"post": Permission.MEMBERS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = self.get_owned(Membership, kwargs["pk"])
        return submit_once(request, lambda: self.change(membership))

    def change(self, membership: Membership) -> HttpResponse:
        form = Form.of(self.request.POST)
        data = validate(
            MemberSerializer,
            form,
            {"role": self.request.POST.get("role", "")},
            organization=self.organization,
            request=self.request,
        )
        status = 400
        if data is not None:
            try:
                services.change_member_role(self.actor, membership, data["role"])
            except DomainError as error:
                form.fail(error)
                status = error.status_code
            else:
                return self.done(
                    _("%(email)s is now %(role)s.")
                    % {"email": membership.user.email, "role": membership.get_role_display()},
                    "console:members",
                )
        return self.show(status, refused={"role": form}, refused_member=membership.pk)


class MemberRemove(Members):
    permissions = {"post": Permission.MEMBERS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = self.get_owned(Membership, kwargs["pk"])
        return submit_once(request, lambda: self.remove(membership))

    def remove(self, membership: Membership) -> HttpResponse:
        email, leaving = membership.user.email, membership.pk == self.membership.pk
        try:
            services.remove_member(self.actor, membership)
        except DomainError as error:
            form = Form()
            form.fail(error)
            return self.show(
                error.status_code, refused={"remove": form}, refused_member=membership.pk
            )
        messages.success(self.request, _("%(email)s was removed.") % {"email": email})
        if leaving:
            return redirect("console:home")
        return redirect(self.url("console:members"))


# -- invitations -----------------------------------------------------------------------------


class Invitations(ShowsSecretOnce):
    """Pending invitations; invite someone by email and role, or withdraw an invitation."""

    template_name = "console/administration/invitations.html"
    tab = "invitations"
    permissions = {"get": Permission.MEMBERS_VIEW, "post": Permission.MEMBERS_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["invite_form"] = kwargs.get("invite_form") or Form.of(
            context["draft"], role=Role.OPERATOR
        )
        context["role_choices"] = self.assignable_roles()
        context["created"] = take_reveal(self.request, self.organization.slug)
        context["invitations"] = (
            self.owned(Invitation)
            .filter(status=InvitationStatus.PENDING)
            .select_related("invited_by")
            .order_by("-created_at", "id")
        )
        context["now"] = timezone.now()
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, self.invite)

    def invite(self) -> HttpResponse:
        form = Form.of(self.request.POST)
        payload = {name: self.request.POST.get(name, "") for name in ("email", "role")}
        data = validate(
            InvitationSerializer,
            form,
            payload,
            organization=self.organization,
            request=self.request,
        )
        status = 400
        if data is not None:
            try:
                invitation, token = services.invite_member(
                    self.actor, self.organization, email=data["email"], role=data["role"]
                )
            except DomainError as error:
                form.fail(error)
                status = error.status_code
            else:
                return self.invited(invitation, token)
        return self.show(status, invite_form=form)

    def invited(self, invitation: Invitation, token: str) -> HttpResponse:
        link = self.request.build_absolute_uri(
            f"{self.url('console:invitation-accept')}?{urlencode({'token': token})}"
        )
        reveal = keep_for_reveal(
            self.request,
            self.organization.slug,
            {"email": invitation.email, "token": token, "link": link},
        )
        return self.done(
            _("Invitation created for %(email)s.") % {"email": invitation.email},
            "console:invitations",
            {"reveal": reveal},
        )


class InvitationRevoke(Invitations):
    permissions = {"post": Permission.MEMBERS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        invitation = self.get_owned(Invitation, kwargs["pk"])
        return submit_once(request, lambda: self.revoke(invitation))

    def revoke(self, invitation: Invitation) -> HttpResponse:
        try:
            services.revoke_invitation(self.actor, invitation)
        except DomainError as error:
            form = Form()
            form.fail(error)
            return self.show(error.status_code, action_form=form)
        return self.done(
            _("The invitation for %(email)s was withdrawn.") % {"email": invitation.email},
            "console:invitations",
        )


class AcceptInvitation(SignedInPage):
    """Where an invitation link leads: the invited person, signed in, joins the organization.

    The page exists only for a token of an invitation to the organization in the URL; any
    other request gets the 404 of an organization one does not belong to."""

    template_name = "console/administration/accept_invitation.html"

    def invitation(self) -> Invitation:
        source = self.request.POST if self.request.method == "POST" else self.request.GET
        token = source.get("token", "")
        invitation = tenant_selectors.invitation_for_token(token) if token else None
        if invitation is None or invitation.organization.slug != self.kwargs.get("org"):
            raise Http404(_("No such organization."))
        return invitation

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        invitation = self.invitation()
        context["invitation"] = invitation
        context["form"] = kwargs.get("form") or Form.of(
            None, token=self.request.GET.get("token", "")
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.invitation()
        return submit_once(request, self.accept)

    def accept(self) -> HttpResponse:
        form = Form.of(self.request.POST)
        try:
            membership = services.accept_invitation(
                str(form.value("token")),
                self.user,
                ip_address=self.request.META.get("REMOTE_ADDR"),
                request_id=structlog.contextvars.get_contextvars().get("request_id", ""),
            )
        except DomainError as error:
            form.add(None, str(error.detail))
            return self.render_to_response(
                self.get_context_data(form=form), status=error.status_code
            )
        organization = membership.organization
        messages.success(self.request, _("Welcome to %(org)s.") % {"org": organization.name})
        return redirect("console:dashboard", org=organization.slug)


# -- per-station operator grants -------------------------------------------------------------


class GrantSerializer(OperatorGrantSerializer):
    """The API's grant payload, plus the station it is for (the API takes it from the URL)."""

    station = TenantRelatedField(Station, help_text="Id of a station.")


@dataclass
class Grant:
    station: Station
    membership: Membership


class Grants(AdministrationPage):
    """Which operators work which stations; grant or revoke one station to one operator."""

    template_name = "console/administration/grants.html"
    tab = "grants"
    permissions = {"get": Permission.STATIONS_VIEW, "post": Permission.STATIONS_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        operators = list(
            self.owned(Membership)
            .filter(role=Role.OPERATOR)
            .select_related("user")
            .order_by("user__email")
        )
        # Every grant at once (not one query per operator), then put with its operator.
        granted: dict[Any, list[Station]] = {}
        for grant in station_selectors.operator_grants(self.organization):
            granted.setdefault(grant.user_id, []).append(grant.content_object)
        by_member = [
            (m, sorted(granted.get(m.user_id, []), key=lambda s: (s.name, str(s.pk))))
            for m in operators
        ]
        grants = [Grant(s, m) for m, stations in by_member for s in stations]
        grants.sort(key=lambda g: (g.station.name, g.membership.user.email))
        stations = self.owned(Station).order_by("name")
        context.update(
            grant_form=kwargs.get("grant_form") or Form.of(context["draft"]),
            grants=grants,
            by_member=by_member,
            station_choices=[(s.pk, s.name) for s in stations],
            member_choices=[(m.pk, _member_label(m)) for m in operators],
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, self.grant)

    def grant(self) -> HttpResponse:
        form = Form.of(self.request.POST)
        payload = {name: self.request.POST.get(name, "") for name in ("station", "member")}
        data = validate(
            GrantSerializer, form, payload, organization=self.organization, request=self.request
        )
        status = 400
        if data is not None:
            station, membership = data["station"], data["member"]
            try:
                station_services.grant_station_operator(self.actor, station, membership)
            except DomainError as error:
                form.fail(error)
                status = error.status_code
            else:
                return self.done(
                    _("%(email)s now operates %(station)s.")
                    % {"email": membership.user.email, "station": station.name},
                    "console:grants",
                )
        return self.show(status, grant_form=form)


def _member_label(membership: Membership) -> str:
    user = membership.user
    return f"{user.full_name} <{user.email}>" if user.full_name else user.email


class GrantRevoke(Grants):
    permissions = {"post": Permission.STATIONS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        station = self.get_owned(Station, kwargs["station"])
        membership = self.get_owned(Membership, kwargs["member"])
        return submit_once(request, lambda: self.revoke(station, membership))

    def revoke(self, station: Station, membership: Membership) -> HttpResponse:
        try:
            station_services.revoke_station_operator(self.actor, station, membership)
        except DomainError as error:
            form = Form()
            form.fail(error)
            return self.show(error.status_code, action_form=form)
        return self.done(
            _("%(email)s no longer operates %(station)s.")
            % {"email": membership.user.email, "station": station.name},
            "console:grants",
        )


# -- API keys --------------------------------------------------------------------------------


class ApiKeys(ShowsSecretOnce):
    """The organization's API keys; create one (its secret shown once) or revoke one."""

    template_name = "console/administration/api_keys.html"
    tab = "api-keys"
    permissions = {"get": Permission.API_KEYS_MANAGE, "post": Permission.API_KEYS_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = kwargs.get("key_form")
        if form is None:
            form = Form.of(context["draft"])
            form.values["scopes"] = as_list(form.values.get("scopes"))
        context.update(
            key_form=form,
            scope_choices=[
                (scope.value, scope.label, scope.value in form.values["scopes"])
                for scope in sorted(API_KEY_SCOPES, key=lambda s: s.value)
            ],
            created=take_reveal(self.request, self.organization.slug),
            keys=self.owned(ApiKey).order_by(F("revoked_at").desc(nulls_first=True), "-created_at"),
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, self.create)

    def create(self) -> HttpResponse:
        form = Form.of(self.request.POST)
        form.values["scopes"] = self.request.POST.getlist("scopes")
        payload = {"name": self.request.POST.get("name", ""), "scopes": form.values["scopes"]}
        data = validate(
            ApiKeySerializer, form, payload, organization=self.organization, request=self.request
        )
        status = 400
        if data is not None:
            try:
                key, token = services.create_api_key(
                    self.actor, self.organization, name=data["name"], scopes=data["scopes"]
                )
            except DomainError as error:
                form.fail(error)
                status = error.status_code
            else:
                return self.created(key, token)
        return self.show(status, key_form=form)

    def created(self, key: ApiKey, token: str) -> HttpResponse:
        reveal = keep_for_reveal(
            self.request,
            self.organization.slug,
            {"name": key.name, "prefix": key.prefix, "token": token},
        )
        return self.done(
            _("API key “%(name)s” created.") % {"name": key.name},
            "console:api-keys",
            {"reveal": reveal},
        )


class ApiKeyRevoke(ApiKeys):
    permissions = {"post": Permission.API_KEYS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = self.get_owned(ApiKey, kwargs["pk"])
        return submit_once(request, lambda: self.revoke(key))

    def revoke(self, key: ApiKey) -> HttpResponse:
        services.revoke_api_key(self.actor, key)
        return self.done(_("API key “%(name)s” revoked.") % {"name": key.name}, "console:api-keys")


# -- audit log -------------------------------------------------------------------------------

AUDIT_FILTERS = ("actor", "action", "object_type", "since", "until")


def encode_cursor(entry: AuditEntry) -> str:
    at = entry.created_at.astimezone(dt.UTC).isoformat()
    return base64.urlsafe_b64encode(f"{at}|{entry.pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _sep, pk = raw.partition("|")
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None:
            return None
        return when, int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def older_than(entries: QuerySet[AuditEntry], at: dt.datetime, pk: int) -> QuerySet[AuditEntry]:
    """Keyset: the entries after (at, pk) in newest-first order."""
    return entries.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))


def newest_first(entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
    return entries.order_by("-created_at", "-pk")


class AuditPage(AdministrationPage):
    """The audit log's filters: actor, action, object type and a date range in the
    organization's time zone (both days included)."""

    tab = "audit"
    permissions = {"get": Permission.AUDIT_VIEW}

    def filtered(self) -> tuple[Form, QuerySet[AuditEntry]]:
        form = Form.of({name: self.request.GET.get(name, "") for name in AUDIT_FILTERS})
        entries = self.owned(AuditEntry)
        zone = zoneinfo.ZoneInfo(self.organization.time_zone)
        days = {name: self._day(form, name) for name in ("since", "until")}
        since, until = days["since"], days["until"]
        if since and until and until < since:
            form.add("until", _("The end date is before the start date."))
        if not form.ok:
            return form, entries.none()
        query = {"action": form.value("action"), "object_type": form.value("object_type")}
        if since:
            query["since"] = dt.datetime.combine(since, dt.time.min, tzinfo=zone).isoformat()
        if until:
            end = until + dt.timedelta(days=1)
            query["until"] = dt.datetime.combine(end, dt.time.min, tzinfo=zone).isoformat()
        filters = AuditFilter({k: v for k, v in query.items() if v}, queryset=entries)
        if not filters.is_valid():
            for name, errors in filters.errors.items():
                for error in errors:
                    form.add(name if name in form.values else None, error)
            return form, entries.none()
        found: QuerySet[AuditEntry] = filters.qs
        actor = str(form.value("actor")).strip()
        if actor:
            found = found.filter(actor_label__icontains=actor)
        return form, found

    @staticmethod
    def _day(form: Form, name: str) -> dt.date | None:
        raw = str(form.value(name)).strip()
        if not raw:
            return None
        try:
            day = parse_date(raw)
        except ValueError:
            day = None
        if day is None:
            form.add(name, _("Enter a date as YYYY-MM-DD."))
        return day


@dataclass
class AuditRow:
    entry: AuditEntry
    changes: str


def _changes(entry: AuditEntry) -> str:
    if entry.before is None and entry.after is None:
        return ""
    shown = {"before": entry.before, "after": entry.after}
    return json.dumps(shown, ensure_ascii=False, indent=1, sort_keys=True)


class Audit(AuditPage):
    """Who did what to which object, newest first, a page at a time (keyset, not offsets: a
    page costs the same at the start of the log and a year back)."""

    template_name = "console/administration/audit.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form, entries = kwargs.get("filtered") or self.filtered()
        cursor = self.request.GET.get("cursor", "")
        if cursor:
            position = decode_cursor(cursor)
            if position is None:
                form.add(None, _("This page link is broken; here are the newest entries."))
            else:
                entries = older_than(entries, *position)
        page = list(newest_first(entries)[: AUDIT_PAGE_SIZE + 1])
        more = len(page) > AUDIT_PAGE_SIZE
        page = page[:AUDIT_PAGE_SIZE]
        query = {name: str(form.value(name)) for name in AUDIT_FILTERS if form.value(name)}
        distinct = self.owned(AuditEntry).order_by()
        context.update(
            filter_form=form,
            rows=[AuditRow(e, _changes(e)) for e in page],
            older_url=(
                f"?{urlencode({**query, 'cursor': encode_cursor(page[-1])})}" if more else ""
            ),
            newest_url=f"?{urlencode(query)}" if cursor else "",
            export_url=f"{self.url('console:audit-export')}?{urlencode(query)}",
            action_choices=audit_labels.action_choices(
                distinct.values_list("action", "object_type").distinct()
            ),
            object_type_choices=audit_labels.object_type_choices(
                distinct.values_list("object_type", flat=True).distinct()
            ),
        )
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        filtered = self.filtered()
        status = 200 if filtered[0].ok else 400
        return self.render_to_response(self.get_context_data(filtered=filtered), status=status)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class AuditExport(Audit):
    """The filtered audit log as CSV for a spreadsheet: UTF-8 with a BOM (Excel reads it as
    UTF-8), times in the organization's time zone, streamed a chunk at a time. Filters that do
    not hold show the log's page with their errors instead."""

    # A download streams: StreamingHttpResponse is not an HttpResponse.
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:  # type: ignore[override]
        form, entries = self.filtered()
        if not form.ok:
            return super().get(request, *args, **kwargs)
        header = [
            _("Time"),
            _("Actor"),
            _("Action"),
            _("Object type"),
            _("Object id"),
            _("Object"),
            _("Before"),
            _("After"),
            _("IP address"),
            _("Request id"),
        ]
        chunks = _csv_chunks(entries, header, zoneinfo.ZoneInfo(self.organization.time_zone))
        response = StreamingHttpResponse(
            _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks,
            content_type="text/csv; charset=utf-8",
        )
        day = timezone.localdate().strftime("%Y%m%d")
        response["Content-Disposition"] = (
            f'attachment; filename="audit-{self.organization.slug}-{day}.csv"'
        )
        response["Cache-Control"] = "no-store"
        return response


def _csv_chunks(
    entries: QuerySet[AuditEntry], header: list[str], zone: zoneinfo.ZoneInfo
) -> Iterator[str]:
    """The BOM and header, then the entries newest first, EXPORT_CHUNK rows per query."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    position: tuple[dt.datetime, int] | None = None
    while True:
        batch = entries if position is None else older_than(entries, *position)
        rows = list(newest_first(batch)[:EXPORT_CHUNK])
        for e in rows:
            writer.writerow(
                [
                    e.created_at.astimezone(zone).isoformat(timespec="seconds"),
                    _cell(e.actor_label),
                    _cell(e.action),
                    _cell(e.object_type),
                    _cell(e.object_id),
                    _cell(e.object_repr),
                    "" if e.before is None else json.dumps(e.before, ensure_ascii=False),
                    "" if e.after is None else json.dumps(e.after, ensure_ascii=False),
                    e.ip_address or "",
                    _cell(e.request_id),
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < EXPORT_CHUNK:
            return
        position = (rows[-1].created_at, rows[-1].pk)


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    """The same chunks for an ASGI server, each queried in Django's sync thread: Django would
    read a synchronous iterator whole into memory before sending it over ASGI."""
    step = sync_to_async(_next_chunk)
    while (chunk := await step(chunks)) is not None:
        yield chunk


def _next_chunk(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)


urlpatterns = [
    path("admin/members/", Members.as_view(), name="members"),
    path("admin/members/<uuid:pk>/role/", MemberRole.as_view(), name="member-role"),
    path("admin/members/<uuid:pk>/remove/", MemberRemove.as_view(), name="member-remove"),
    path("admin/invitations/", Invitations.as_view(), name="invitations"),
    path(
        "admin/invitations/<uuid:pk>/revoke/",
        InvitationRevoke.as_view(),
        name="invitation-revoke",
    ),
    path("admin/grants/", Grants.as_view(), name="grants"),
    path(
        "admin/grants/<uuid:station>/<uuid:member>/revoke/",
        GrantRevoke.as_view(),
        name="grant-revoke",
    ),
    path("admin/api-keys/", ApiKeys.as_view(), name="api-keys"),
    path("admin/api-keys/<uuid:pk>/revoke/", ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("admin/audit/", Audit.as_view(), name="audit"),
    path("admin/audit/export.csv", AuditExport.as_view(), name="audit-export"),
    path("join/", AcceptInvitation.as_view(), name="invitation-accept"),
]
