"""The employees section: the organization's hires (digital employees), filtered by status and
searched by name, and one employee's page — profile and portrait, the avatar version it works
with (and a move to a newer one), its schedules and coming shifts, 30 days of KPIs by day, its
performance reviews, its lifecycle history and actions (suspend, resume, terminate with a reason).

Every change goes through the service the API calls (`avatars.employments`, `avatars.reviews`),
its payload checked by the API's own serializer, and each action page is the confirmation step.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars import employments as services
from avatars import reviews as review_services
from avatars.api.employments import TransitionSerializer, UpgradeSerializer
from avatars.api.reviews import PerformanceReviewSerializer
from avatars.models import (
    Employment,
    EmploymentStatus,
    EmploymentTransition,
    PerformanceReview,
    Skill,
)
from ironbowl.analytics import kpis
from ironbowl.console import charts
from ironbowl.console.base import OrganizationPage
from ironbowl.console.files import portrait_response
from ironbowl.console.formats import money, percent
from ironbowl.console.forms import Form, submit_once, validate
from ironbowl.console.paging import page_of
from scheduling import roster
from scheduling.models import Schedule
from tenants.errors import DomainError
from tenants.roles import Permission

PAGE_SIZE = 50
KPI_DAYS = 30
SHIFTS_AHEAD = dt.timedelta(days=14)
SHIFTS_SHOWN = 20
HISTORY_SHOWN = 20
REVIEWS_SHOWN = 24


def _employments(page: OrganizationPage) -> Any:
    """The organization's employments with what their rows show joined."""
    return page.owned(Employment).select_related("avatar", "avatar_version", "position")


class EmploymentPage(OrganizationPage):
    """A page about one of the organization's employments. The organization and the role are
    checked first (`OrganizationPage.dispatch`); then `load` finds the employment among the
    organization's own, so another's answers 404 like a missing one."""

    section = "employees"
    employment: Employment

    def load(self, pk: Any) -> Employment:
        self.employment = get_object_or_404(_employments(self), pk=pk)
        return self.employment

    def detail_url(self) -> str:
        return self.url("console:employee", self.employment.pk)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["employment"] = self.employment
        context["avatar"] = self.employment.avatar
        return context

    def show(self, form: Form, status: int = 200, **extra: Any) -> HttpResponse:
        context = self.get_context_data(**self.kwargs)
        context.update(form=form, **extra)
        return self.render_to_response(context, status=status)


# --- The list -------------------------------------------------------------------------------------


class List(OrganizationPage):
    template_name = "console/employees/list.html"
    section = "employees"
    permissions = {"get": Permission.EMPLOYMENTS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = Form.of(self.request.GET, status="", q="")
        employments = _employments(self).order_by("-created_at", "id")
        status = str(form.value("status"))
        if status:
            if status in EmploymentStatus.values:
                employments = employments.filter(status=status)
            else:
                form.add("status", _("Choose a status from the list."))
        query = str(form.value("q")).strip()
        if query:
            employments = employments.filter(
                Q(avatar__name_zh__icontains=query)
                | Q(avatar__name_en__icontains=query)
                | Q(position__title__icontains=query)
            )
        context["form"] = form
        context["statuses"] = EmploymentStatus.choices
        context["page"] = page_of(employments, self.request.GET, PAGE_SIZE)
        return context


# --- One employee ---------------------------------------------------------------------------------

# Lifecycle actions offered here: the action's name is the lifecycle table's verb.
ACTIONS: dict[str, str] = {
    "suspend": EmploymentStatus.SUSPENDED,
    "resume": EmploymentStatus.ACTIVE,
    "terminate": EmploymentStatus.TERMINATED,
}


def offered_actions(employment: Employment) -> list[str]:
    """The actions the lifecycle table allows from the employment's status."""
    return [
        action
        for action, to in ACTIONS.items()
        if services.TRANSITIONS.get((employment.status, to)) == action
    ]


def kpi_charts(page: OrganizationPage, employment: Employment) -> list[Any]:
    """Line charts of the employment's last KPI_DAYS local days (the KPI API's selector)."""
    organization = page.organization
    now = timezone.now()
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    first = now.astimezone(zone).date() - dt.timedelta(days=KPI_DAYS - 1)
    span = kpis.day_window(organization, kpis.local_midnight(first, zone), None, now=now)
    found = kpis.series(organization, span, employment_id=employment.pk)
    labels = [f"{bucket.starts_at.astimezone(zone):%m-%d}" for bucket, _tally in found.buckets]
    tallies = [tally for _bucket, tally in found.buckets]
    line = charts.Series
    return [
        charts.line_chart(
            labels,
            [
                line(_("Visits"), [t.visits for t in tallies]),
                line(_("Interactions"), [t.interactions for t in tallies]),
            ],
            title=_("Visits and interactions by day"),
        ),
        charts.line_chart(
            labels,
            [
                line(_("Unique viewers"), [t.unique_viewers for t in tallies]),
                line(_("Peak viewers"), [t.peak_viewers for t in tallies]),
            ],
            title=_("Viewers by day"),
        ),
        charts.line_chart(
            labels,
            [line(_("Broadcast hours"), [round(t.broadcast_hours, 2) for t in tallies])],
            title=_("Broadcast hours by day"),
        ),
    ]


class Detail(EmploymentPage):
    template_name = "console/employees/detail.html"
    permissions = {"get": Permission.EMPLOYMENTS_VIEW}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.load(kwargs["pk"])
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        employment, organization = self.employment, self.organization
        context["portrait"] = bool(employment.avatar_version.portrait)
        context["skills"] = [
            Skill(skill).label if skill in Skill.values else skill
            for skill in employment.avatar.skills or []
        ]
        context["actions"] = (
            offered_actions(employment) if self.may(Permission.EMPLOYMENTS_MANAGE) else []
        )
        context["newer_versions"] = list(
            services.versions_of_avatar(employment.avatar)
            .filter(number__gt=employment.avatar_version.number)
            .order_by("number")
            .values_list("number", flat=True)
        )
        if employment.status in (EmploymentStatus.OFFERED, EmploymentStatus.ONBOARDING):
            context["checklist_missing"] = services.checklist_of(employment).missing()
        context["history"] = list(
            self.owned(EmploymentTransition)
            .filter(employment=employment)
            .order_by("-created_at", "-id")[:HISTORY_SHOWN]
        )
        if self.may(Permission.STATIONS_VIEW):
            now = timezone.now()
            context["schedules"] = list(
                self.owned(Schedule)
                .filter(employment=employment)
                .select_related("station")
                .order_by("-is_active", "valid_from", "id")
            )
            context["shifts"] = list(
                roster.shifts_between(
                    organization, now, now + SHIFTS_AHEAD, employment_id=employment.pk
                ).select_related("station")[:SHIFTS_SHOWN]
            )
        if self.may(Permission.ANALYTICS_VIEW):
            context["charts"] = kpi_charts(self, employment)
            context["kpi_days"] = KPI_DAYS
        if self.may(Permission.REVIEWS_VIEW):
            context["reviews"] = list(
                self.owned(PerformanceReview)
                .filter(employment=employment)
                .select_related("reviewer")
                .order_by("-period")[:REVIEWS_SHOWN]
            )
        return context


class Portrait(EmploymentPage):
    """The portrait of the avatar version the employee works with (a build stored it)."""

    permissions = {"get": Permission.EMPLOYMENTS_VIEW}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        employment = self.load(kwargs["pk"])
        return portrait_response(
            employment.avatar_version, _("This employee's avatar version has no portrait.")
        )


# --- Actions --------------------------------------------------------------------------------------

_TITLES: dict[str, Promise] = {
    "suspend": gettext_lazy("Suspend this employee"),
    "resume": gettext_lazy("Resume this employee"),
    "terminate": gettext_lazy("Terminate this employee"),
}
_CONSEQUENCES: dict[str, Promise] = {
    "suspend": gettext_lazy(
        "A suspended employee is taken off duty and goes on no shift until it is resumed; "
        "its seats stay held."
    ),
    "resume": gettext_lazy("The employee is active again and works its coming shifts."),
    "terminate": gettext_lazy(
        "The employee is let go: its shifts stop and its seats are given back from today. "
        "This cannot be undone."
    ),
}
_DONE: dict[str, Promise] = {
    "suspend": gettext_lazy("The employee is suspended."),
    "resume": gettext_lazy("The employee is active again."),
    "terminate": gettext_lazy("The employee is terminated."),
}
_BUTTONS: dict[str, Promise] = {
    "suspend": gettext_lazy("Suspend"),
    "resume": gettext_lazy("Resume"),
    "terminate": gettext_lazy("Terminate"),
}


class Transition(EmploymentPage):
    """Suspend, resume or terminate, with a reason kept in the employment's history."""

    template_name = "console/employees/transition.html"
    permissions = {"get": Permission.EMPLOYMENTS_MANAGE, "post": Permission.EMPLOYMENTS_MANAGE}
    action = ""  # set per URL: a key of ACTIONS

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            action=self.action,
            title=_TITLES[self.action],
            consequences=_CONSEQUENCES[self.action],
            button=_BUTTONS[self.action],
            danger=self.action != "resume",
            reason_max=services.REASON_MAX_LENGTH,
        )
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        employment = self.load(kwargs["pk"])
        context = self.get_context_data(**kwargs)
        form = Form.of(context["draft"], reason="")
        if self.action not in offered_actions(employment):
            # Said before the person writes a reason; sending it anyway gets the same answer.
            form.add(
                None, services.illegal_transition_message(employment.status, ACTIONS[self.action])
            )
        context["form"] = form
        return self.render_to_response(context)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        employment = self.load(kwargs["pk"])

        def act() -> HttpResponse:
            form = Form.of(request.POST, reason="")
            payload = {"to": ACTIONS[self.action], "reason": form.value("reason")}
            data = validate(
                TransitionSerializer,
                form,
                payload,
                organization=self.organization,
                request=request,
            )
            status = 400
            if data is not None:
                try:
                    services.transition_employment(
                        self.actor, employment, data["to"], data["reason"]
                    )
                except DomainError as error:
                    form.fail(error)
                    status = error.status_code  # 409 for a move the lifecycle does not allow
                else:
                    messages.success(request, str(_DONE[self.action]))
                    return redirect(self.detail_url())
            return self.show(form, status=status)

        return submit_once(request, act)


class MoveVersion(EmploymentPage):
    """Move the employee to a newer version of its avatar (only forward; the API's rules)."""

    template_name = "console/employees/version.html"
    permissions = {"get": Permission.EMPLOYMENTS_MANAGE, "post": Permission.EMPLOYMENTS_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        versions = services.versions_of_avatar(self.employment.avatar).order_by("-number")
        context["versions"] = [
            (str(version.pk), _("Version %(number)d") % {"number": version.number})
            for version in versions
            if version.number > self.employment.avatar_version.number
        ]
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.load(kwargs["pk"])
        context = self.get_context_data(**kwargs)
        first = context["versions"][0][0] if context["versions"] else ""
        context["form"] = Form.of(context["draft"], version=first)
        return self.render_to_response(context)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        employment = self.load(kwargs["pk"])

        def act() -> HttpResponse:
            form = Form.of(request.POST, version="")
            payload = {"version": form.value("version") or None}
            data = validate(
                UpgradeSerializer,
                form,
                payload,
                organization=self.organization,
                employment=employment,
                request=request,
            )
            status = 400
            if data is not None:
                try:
                    moved = services.move_to_version(self.actor, employment, data.get("version"))
                except DomainError as error:
                    form.fail(error)
                    status = error.status_code
                else:
                    messages.success(
                        request,
                        _("The employee now works with version %(number)d.")
                        % {"number": moved.avatar_version.number},
                    )
                    return redirect(self.detail_url())
            return self.show(form, status=status)

        return submit_once(request, act)


# What a review's KPI snapshot shows (analytics.reviews.snapshot writes it), in this order.
SNAPSHOT_LABELS: dict[str, Promise] = {
    "visits": gettext_lazy("Visits"),
    "unique_viewers": gettext_lazy("Unique viewers"),
    "peak_viewers": gettext_lazy("Peak viewers"),
    "interactions": gettext_lazy("Interactions"),
    "answered_share": gettext_lazy("Answered without a person"),
    "broadcast_hours": gettext_lazy("Broadcast hours"),
    "seat_days": gettext_lazy("Seat-days"),
    "cost": gettext_lazy("Cost"),
    "value": gettext_lazy("Value"),
    "roi": gettext_lazy("ROI"),
}


def snapshot_rows(found: dict[str, Any]) -> list[tuple[Promise, str]]:
    """The snapshot's figures as (label, text): the share and ROI in percent, money with its
    currency."""
    rows: list[tuple[Promise, str]] = []
    if not found:
        return rows
    for name, label in SNAPSHOT_LABELS.items():
        value = found.get(name)
        if value is None:
            text = "—"
        elif name == "answered_share":
            text = percent(value)
        elif name == "roi":
            text = percent(value, 2)  # as the analytics section shows ROI
        elif name in ("cost", "value"):
            text = money(value, found.get("currency", ""))
        else:
            text = str(value)
        rows.append((label, text))
    return rows


class Review(EmploymentPage):
    """One performance review: its KPI snapshot, and the rating and comments that complete it."""

    template_name = "console/employees/review.html"
    permissions = {"get": Permission.REVIEWS_VIEW, "post": Permission.REVIEWS_MANAGE}
    review: PerformanceReview

    def load_review(self, kwargs: dict[str, Any]) -> PerformanceReview:
        employment = self.load(kwargs["pk"])
        self.review = get_object_or_404(
            self.owned(PerformanceReview).select_related("reviewer"),
            pk=kwargs["review"],
            employment=employment,
        )
        return self.review

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["review"] = self.review
        context["snapshot"] = snapshot_rows(self.review.kpis or {})
        context["ratings"] = [(n, str(n)) for n in range(5, 0, -1)]
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        review = self.load_review(kwargs)
        context = self.get_context_data(**kwargs)
        context["form"] = Form.of(
            context["draft"],
            rating="" if review.rating is None else str(review.rating),
            comments=review.comments,
        )
        return self.render_to_response(context)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        review = self.load_review(kwargs)

        def act() -> HttpResponse:
            form = Form.of(request.POST, rating="", comments="")
            payload: dict[str, Any] = {"comments": form.value("comments")}
            if form.value("rating") not in ("", None):
                payload["rating"] = form.value("rating")
            data = validate(
                PerformanceReviewSerializer,
                form,
                payload,
                organization=self.organization,
                request=request,
            )
            status = 400
            if data is not None:
                try:
                    review_services.complete_review(self.actor, review, **data)
                except DomainError as error:
                    form.fail(error)
                    status = error.status_code
                else:
                    messages.success(request, _("The review is saved."))
                    return redirect(self.detail_url())
            return self.show(form, status=status)

        return submit_once(request, act)


urlpatterns = [
    path("employees/", List.as_view(), name="employees"),
    path("employees/<uuid:pk>/", Detail.as_view(), name="employee"),
    path("employees/<uuid:pk>/portrait/", Portrait.as_view(), name="employee-portrait"),
    path(
        "employees/<uuid:pk>/suspend/",
        Transition.as_view(action="suspend"),
        name="employee-suspend",
    ),
    path(
        "employees/<uuid:pk>/resume/", Transition.as_view(action="resume"), name="employee-resume"
    ),
    path(
        "employees/<uuid:pk>/terminate/",
        Transition.as_view(action="terminate"),
        name="employee-terminate",
    ),
    path("employees/<uuid:pk>/version/", MoveVersion.as_view(), name="employee-version"),
    path("employees/<uuid:pk>/reviews/<uuid:review>/", Review.as_view(), name="employee-review"),
]
