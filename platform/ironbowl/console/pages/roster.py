"""The roster section: a week or month calendar (the organization's time zone; stations as rows,
50 a page, searchable; days as columns) showing shifts, what schedules will make beyond the
materialisation horizon, holidays and the gaps of 24/7 stations; and the forms that create,
change and delete schedules through `scheduling.schedules`, validated by the schedules API's
serializer. A conflict (seats, a station's limit) is shown next to the field it concerns.

Who may change schedules, as in the API: owners and administrators everywhere, an operator at
the stations granted to them.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus
from ironbowl.console import station_rights
from ironbowl.console.base import OrganizationPage
from ironbowl.console.forms import Form, submit_once, validate
from ironbowl.console.inputs import items_of
from ironbowl.console.pages.stations import PAGE_SIZE, search_stations
from ironbowl.console.paging import page_of
from ironbowl.console.queries import roster as calendar
from scheduling import recurrence, schedules
from scheduling.api.schedules import ScheduleSerializer
from scheduling.models import HolidayCalendar, Schedule, Station, StationKind
from tenants.errors import DomainError
from tenants.roles import Permission, Role

DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR")
_WEEKLY = re.compile(
    r"^FREQ=WEEKLY;BYDAY=((?:MO|TU|WE|TH|FR|SA|SU)(?:,(?:MO|TU|WE|TH|FR|SA|SU))*)$"
)
_DAILY = "FREQ=DAILY"
MINUTES_A_DAY = 24 * 60
# Where the API names a field the form shows under another name.
FORM_FIELD = {"duration_minutes": "end_time"}


class RosterPage(OrganizationPage):
    section = "roster"

    def may_schedule(self) -> bool:
        """Whether the role changes schedules at all (an operator: at granted stations)."""
        return self.may(Permission.STATIONS_MANAGE) or self.membership.role == Role.OPERATOR

    def may_schedule_at(self, station: Station) -> bool:
        """Whether the member changes the schedules of this station: the stations they operate."""
        return station_rights.may_operate(self, station)


# --- The calendar --------------------------------------------------------------------------------


class Index(RosterPage):
    template_name = "console/roster/calendar.html"
    permissions = {"get": Permission.STATIONS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        zone = recurrence.zone_of(self.organization.time_zone)
        today = timezone.localdate()
        period = calendar.period_from(params.get("week"), params.get("month"), today, zone)
        if period is None:
            context["period_refused"] = True
            period = calendar.week_of(today, zone)
        stations = page_of(search_stations(self.owned(Station), params), params, PAGE_SIZE)
        found = calendar.roster_of(self.organization, list(stations), period)
        # One URL reversed, not one per block: a month shows thousands of blocks.
        placeholder = uuid.UUID(int=0)
        schedule_url = self.url("console:schedule-edit", placeholder)
        operated = station_rights.operable_among(self, [row.station.pk for row in found.rows])
        for row in found.rows:
            row.editable = row.station.pk in operated
        context.update(
            roster=found,
            stations=stations,
            today=today,
            filters={"q": params.get("q", ""), "kind": params.get("kind", "")},
            kinds=StationKind.choices,
            links=self.links(period, params, today),
            may_schedule=self.may_schedule(),
            schedules_url=schedule_url.removesuffix(f"{placeholder}/"),
        )
        return context

    def links(self, period: calendar.Period, params: QueryDict, today: dt.date) -> dict[str, str]:
        """Query strings for moving around: the filters and page stay, the period changes."""
        kept = {k: params.get(k, "") for k in ("q", "kind", "page") if params.get(k)}
        zone = period.zone

        def to(other: calendar.Period) -> str:
            return "?" + urlencode({**other.query(), **kept})

        this_month = calendar.month_of(period.first.year, period.first.month, zone)
        week = calendar.week_of(today if today in period.days else period.first, zone)
        now = (
            calendar.week_of(today, zone)
            if period.kind == calendar.WEEK
            else calendar.month_of(today.year, today.month, zone)
        )
        return {
            "previous": to(period.neighbour(-1)),
            "next": to(period.neighbour(1)),
            "now": to(now),
            "week": to(week),
            "month": to(this_month),
        }


# --- The schedule form ---------------------------------------------------------------------------


def _days_of_rule(rule: str) -> list[str] | None:
    """The weekdays of a plain weekly (or daily) rule, for the day boxes; None for others."""
    text = rule.strip().upper()
    if text == _DAILY:
        return list(DAY_CODES)
    found = _WEEKLY.match(text)
    return found[1].split(",") if found else None


def _clock(value: dt.time | None) -> str:
    return value.strftime("%H:%M") if value else ""


def _initial(schedule: Schedule | None, params: QueryDict, today: dt.date) -> dict[str, Any]:
    if schedule is None:
        return {
            "station": params.get("station", ""),
            "employment": params.get("employment", ""),
            "byday": list(WEEKDAYS),
            "start_time": "09:00",
            "end_time": "17:00",
            "valid_from": params.get("date", "") or today.isoformat(),
        }
    days = _days_of_rule(schedule.rrule)
    end = ""
    if schedule.start_time is not None and schedule.duration_minutes:
        begins = dt.datetime.combine(dt.date.min, schedule.start_time)
        end = _clock((begins + dt.timedelta(minutes=schedule.duration_minutes)).time())
    return {
        "employment": str(schedule.employment_id),
        "station": str(schedule.station_id),
        "always_on": "true" if schedule.always_on else "",
        "byday": days or [],
        "rrule": "" if days is not None else schedule.rrule,
        "start_time": _clock(schedule.start_time),
        "end_time": end,
        "valid_from": schedule.valid_from.isoformat(),
        "valid_until": schedule.valid_until.isoformat() if schedule.valid_until else "",
        "exdates": ", ".join(schedule.exdates or []),
        "holiday_calendar": str(schedule.holiday_calendar_id or ""),
        "is_active": "true" if schedule.is_active else "",
    }


def _form(data: Any, schedule: Schedule | None, params: QueryDict, today: dt.date) -> Form:
    initial = _initial(schedule, params, today)
    if data is not None:
        # Boxes left empty are not sent: what was sent decides.
        initial.update(always_on="", is_active="", byday=[])
    form = Form.of(data, **initial)
    getlist = getattr(data, "getlist", None)
    if getlist is not None:
        form.values["byday"] = getlist("byday")
    elif isinstance(form.values.get("byday"), str):
        form.values["byday"] = [form.values["byday"]]
    return form


def _rule(post: QueryDict) -> str:
    """The recurrence rule: the one typed, else the one the day boxes make."""
    typed = post.get("rrule", "").strip()
    if typed:
        return typed
    chosen = set(post.getlist("byday"))
    days = [code for code in DAY_CODES if code in chosen]
    if len(days) == len(DAY_CODES):
        return _DAILY
    return f"FREQ=WEEKLY;BYDAY={','.join(days)}" if days else ""


def _duration(post: QueryDict, form: Form) -> int | None:
    """Minutes from the start time to the end time (past midnight: the next day; the same time:
    24 hours); None when either is missing or unreadable (the error is next to the field)."""
    start, end = post.get("start_time", "").strip(), post.get("end_time", "").strip()
    if not end:
        if start:
            form.add("end_time", _("Give the time the shifts end, e.g. 21:00."))
        return None
    try:
        ends = dt.time.fromisoformat(end)
    except ValueError:
        form.add("end_time", _("Give a time such as 21:00."))
        return None
    try:
        begins = dt.time.fromisoformat(start)
    except ValueError:
        return None  # the start time's own error says so
    minutes = (ends.hour * 60 + ends.minute) - (begins.hour * 60 + begins.minute)
    return minutes % MINUTES_A_DAY or MINUTES_A_DAY


def _payload(post: QueryDict, form: Form, editing: bool) -> dict[str, Any]:
    """What the API would get for the form's fields (the script, if any, is left as it is)."""
    always_on = post.get("always_on") == "true"
    data: dict[str, Any] = {
        "employment": post.get("employment", ""),
        "station": post.get("station", ""),
        "always_on": always_on,
        "rrule": "" if always_on else _rule(post),
        "start_time": None,
        "duration_minutes": None,
        "valid_from": post.get("valid_from", ""),
        "valid_until": post.get("valid_until", "").strip() or None,
        "exdates": items_of(post.get("exdates")),
        "holiday_calendar": post.get("holiday_calendar", "") or None,
    }
    if not always_on:
        data["start_time"] = post.get("start_time", "").strip() or None
        data["duration_minutes"] = _duration(post, form)
    if editing:
        data["is_active"] = post.get("is_active") == "true"
    return data


def _to_form_fields(form: Form) -> None:
    """Errors the API gives under its names go next to the form's fields ("duration_minutes" is
    the end time)."""
    moved: dict[str, list[str]] = {}
    for name, errors in form.errors.items():
        moved.setdefault(FORM_FIELD.get(name, name), []).extend(errors)
    form.errors = moved


class ScheduleForm(RosterPage):
    template_name = "console/roster/schedule_form.html"
    schedule: Schedule | None = None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        today = timezone.localdate()
        context.setdefault("form", _form(context["draft"], self.schedule, self.request.GET, today))
        context.setdefault("delete_form", Form())
        context.update(
            schedule=self.schedule,
            employments=self.employment_choices(),
            stations=self.station_choices(),
            calendars=[(str(c.pk), c.name) for c in self.owned(HolidayCalendar).order_by("name")],
            days=[(code, WEEKDAYS_ABBR[n]) for n, code in enumerate(DAY_CODES)],
        )
        return context

    def employment_choices(self) -> list[tuple[str, str]]:
        hires = Q(status=EmploymentStatus.ACTIVE)
        if self.schedule is not None:
            hires |= Q(pk=self.schedule.employment_id)
        rows = (
            self.owned(Employment)
            .filter(hires)
            .order_by("avatar__name_en", "avatar__name_zh", "created_at")
            .values_list(*calendar.LABEL_FIELDS)
        )
        return [(str(pk), calendar.employment_label(*names)) for pk, *names in rows]

    def station_choices(self) -> list[tuple[str, str]]:
        rows = station_rights.operable_stations(self)
        if self.schedule is not None:
            rows = rows | self.owned(Station).filter(pk=self.schedule.station_id)
        return [
            (
                str(s.pk),
                s.name if s.is_active else _("%(station)s (switched off)") % {"station": s.name},
            )
            for s in rows.order_by("name", "id")
        ]

    def show(self, form: Form, status: int = 200, **extra: Any) -> HttpResponse:
        context = self.get_context_data(form=form, **extra)
        return TemplateResponse(self.request, self.template_name, context, status=status)

    def save(self, request: HttpRequest) -> HttpResponse:
        editing = self.schedule is not None
        form = _form(request.POST, self.schedule, request.GET, timezone.localdate())
        data = _payload(request.POST, form, editing)
        checked = validate(
            ScheduleSerializer,
            form,
            data,
            organization=self.organization,
            request=request,
        )
        if checked is not None and not self.may_schedule_at(checked["station"]):
            form.add("station", str(station_rights.NOT_AN_OPERATOR_OF_STATION))
        if checked is None or not form.ok:
            _to_form_fields(form)
            return self.show(form, status=400)
        try:
            if self.schedule is None:
                saved = schedules.create_schedule(self.actor, self.organization, **checked)
            else:
                saved = schedules.update_schedule(self.actor, self.schedule, **checked)
        except DomainError as error:
            field = FORM_FIELD.get(error.field or "", error.field)
            form.add(field if field in form.values else None, str(error.detail))
            return self.show(form, status=error.status_code)
        messages.success(request, _("Schedule saved."))
        return redirect(self.roster_at(saved.valid_from))

    def roster_at(self, day: dt.date) -> str:
        """The roster's week that shows the schedule's first shifts (this week at the earliest)."""
        shown = max(day, timezone.localdate())
        year, week, _weekday = shown.isocalendar()
        return f"{self.url('console:roster')}?{urlencode({'week': f'{year}-W{week:02d}'})}"


class ScheduleCreate(ScheduleForm):
    # Then: stations.manage, or an operator (at a granted station); see may_schedule.
    permissions = {"get": Permission.STATIONS_VIEW, "post": Permission.STATIONS_VIEW}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.may_schedule():
            return self.denied(Permission.STATIONS_MANAGE)
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.may_schedule():
            return self.denied(Permission.STATIONS_MANAGE)
        return submit_once(request, lambda: self.save(request))


class ScheduleEdit(ScheduleForm):
    permissions = {"get": Permission.STATIONS_VIEW, "post": Permission.STATIONS_VIEW}

    def load(self, schedule_id: Any) -> Schedule:
        """The schedule of the URL (the same 404 when missing or another organization's)."""
        schedule: Schedule = self.get_owned(Schedule, schedule_id)
        self.schedule = schedule
        return schedule

    def refusal(self, schedule: Schedule) -> HttpResponse | None:
        """Why this member may not change the schedule, as a page; None when they may."""
        if not self.may_schedule():
            return self.denied(Permission.STATIONS_MANAGE)
        if not self.may_schedule_at(schedule.station):
            return station_rights.not_an_operator(self, Permission.STATIONS_MANAGE)
        return None

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = self.refusal(self.load(kwargs["schedule"]))
        if refused is not None:
            return refused
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = self.refusal(self.load(kwargs["schedule"]))
        if refused is not None:
            return refused
        return submit_once(request, lambda: self.save(request))


class ScheduleDelete(ScheduleEdit):
    permissions = {"post": Permission.STATIONS_VIEW}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        schedule = self.load(kwargs["schedule"])
        refused = self.refusal(schedule)
        if refused is not None:
            return refused

        def act() -> HttpResponse:
            try:
                schedules.delete_schedule(self.actor, schedule)
            except DomainError as error:
                delete_form = Form()
                delete_form.fail(error)
                form = _form(None, schedule, QueryDict(), timezone.localdate())
                return self.show(form, status=error.status_code, delete_form=delete_form)
            messages.success(request, _("Schedule deleted."))
            return redirect(self.roster_at(schedule.valid_from))

        return submit_once(request, act)


urlpatterns = [
    path("roster/", Index.as_view(), name="roster"),
    path("roster/schedules/new/", ScheduleCreate.as_view(), name="schedule-create"),
    path("roster/schedules/<uuid:schedule>/", ScheduleEdit.as_view(), name="schedule-edit"),
    path(
        "roster/schedules/<uuid:schedule>/delete/",
        ScheduleDelete.as_view(),
        name="schedule-delete",
    ),
]
