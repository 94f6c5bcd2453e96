"""The stations section: the organization's stations (searched, 50 a page), and forms to create,
change and delete them through `scheduling.services`, validated by the stations API's serializer.

A live room's stream key is write-only, as in the API: the form never shows it (not after saving,
not when the form comes back with an error, not in a kept draft); the page says whether one is
saved and lets a person replace or remove it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _

from ironbowl.console import station_rights
from ironbowl.console.base import OrganizationPage
from ironbowl.console.forms import Form, submit_once, validate
from ironbowl.console.paging import page_of
from scheduling import services
from scheduling.api.serializers import StationSerializer
from scheduling.models import Station, StationKind
from scheduling.services import StreamingPlatform
from tenants.errors import DomainError
from tenants.roles import Permission

PAGE_SIZE = 50
TEXT_FIELDS = ("name", "kind", "description", "platform", "push_url", "max_on_air")
CHECKBOXES = ("is_active", "ai_label_required")


# --- Finding stations (shared with the roster) ---------------------------------------------------


def search_stations(stations: QuerySet[Station], params: QueryDict) -> QuerySet[Station]:
    """Stations whose name (or description) has ?q= in it, of ?kind=, by name."""
    text = params.get("q", "").strip()
    if text:
        stations = stations.filter(Q(name__icontains=text) | Q(description__icontains=text))
    kind = params.get("kind", "")
    if kind in StationKind.values:
        stations = stations.filter(kind=kind)
    return stations.order_by("name", "id")


# --- Pages ---------------------------------------------------------------------------------------


class StationPage(OrganizationPage):
    section = "stations"

    def may_edit(self, station: Station) -> bool:
        """Owners and administrators change every station, an operator the ones granted."""
        return station_rights.may_operate(self, station)


class Index(StationPage):
    template_name = "console/stations/list.html"
    permissions = {"get": Permission.STATIONS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        stations = page_of(search_stations(self.owned(Station), params), params, PAGE_SIZE)
        platforms = dict(StreamingPlatform.choices)
        context.update(
            stations=stations,
            rows=[(s, platforms.get(s.platform, s.platform)) for s in stations],
            filters={"q": params.get("q", ""), "kind": params.get("kind", "")},
            kinds=StationKind.choices,
        )
        return context


def _initial(station: Station | None) -> dict[str, Any]:
    if station is None:
        return {
            "kind": StationKind.LIVE_ROOM,
            "is_active": "true",
            "ai_label_required": "true",
            "max_on_air": 1,
        }
    values: dict[str, Any] = {name: getattr(station, name) for name in TEXT_FIELDS}
    values.update({name: "true" if getattr(station, name) else "" for name in CHECKBOXES})
    return values


def _payload(post: QueryDict) -> dict[str, Any]:
    """What the API would get: the form's fields; the stream key only when one is typed (a new
    key) or its removal is asked for (empty); otherwise the saved key stays."""
    data: dict[str, Any] = {name: post.get(name, "") for name in TEXT_FIELDS}
    data.update({name: post.get(name) == "true" for name in CHECKBOXES})
    key = post.get("stream_key", "")
    if key:
        data["stream_key"] = key
    elif post.get("stream_key_clear") == "true":
        data["stream_key"] = ""
    return data


def _form(data: Any, station: Station | None) -> Form:
    initial = _initial(station)
    if data is not None:
        # A checkbox left empty is not sent: what was sent decides, not the saved value.
        initial.update({name: "" for name in CHECKBOXES})
    form = Form.of(data, **initial)
    # Never shown again, whatever was typed: the form shows an empty key field.
    form.values["stream_key"] = ""
    form.values.pop("stream_key_clear", None)
    return form


class StationForm(StationPage):
    template_name = "console/stations/form.html"
    station: Station | None = None

    def show(self, form: Form, status: int = 200, **extra: Any) -> HttpResponse:
        context = self.get_context_data(form=form, **extra)
        return TemplateResponse(self.request, self.template_name, context, status=status)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            station=self.station,
            kinds=StationKind.choices,
            platforms=StreamingPlatform.choices,
            may_edit=self.station is None or self.may_edit(self.station),
        )
        context.setdefault("form", _form(context["draft"], self.station))
        context.setdefault("delete_form", Form())
        return context

    def save(self, request: HttpRequest) -> HttpResponse:
        form = _form(request.POST, self.station)
        typed_key = bool(request.POST.get("stream_key"))
        data = validate(
            StationSerializer,
            form,
            _payload(request.POST),
            organization=self.organization,
            request=request,
        )
        if data is None:
            return self.refused(form, typed_key, status=400)
        try:
            if self.station is None:
                station = services.create_station(self.actor, self.organization, **data)
            else:
                station = services.update_station(self.actor, self.station, **data)
        except DomainError as error:
            form.fail(error)
            return self.refused(form, typed_key, status=error.status_code)
        messages.success(request, _("Station “%(name)s” saved.") % {"name": station.name})
        return redirect(self.url("console:station-edit", station.pk))

    def refused(self, form: Form, typed_key: bool, status: int) -> HttpResponse:
        if typed_key and "stream_key" not in form.errors:
            form.add(
                "stream_key",
                _("Nothing was saved; type the stream key again (it is never shown back)."),
            )
        return self.show(form, status=status)


class Create(StationForm):
    permissions = {"get": Permission.STATIONS_MANAGE, "post": Permission.STATIONS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, lambda: self.save(request))


class Edit(StationForm):
    # Changing needs stations.operate, or an operator granted this station (checked per object).
    permissions = {"get": Permission.STATIONS_VIEW, "post": Permission.STATIONS_VIEW}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.station = self.get_owned(Station, kwargs["station"])
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        station = self.get_owned(Station, kwargs["station"])
        self.station = station
        if not self.may_edit(station):
            return station_rights.not_an_operator(self)
        return submit_once(request, lambda: self.save(request))


class Delete(StationForm):
    permissions = {"post": Permission.STATIONS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        station = self.get_owned(Station, kwargs["station"])
        self.station = station

        def act() -> HttpResponse:
            name = station.name
            try:
                services.delete_station(self.actor, station)
            except DomainError as error:
                delete_form = Form()
                delete_form.fail(error)
                return self.show(
                    _form(None, station), status=error.status_code, delete_form=delete_form
                )
            messages.success(request, _("Station “%(name)s” deleted.") % {"name": name})
            return redirect(self.url("console:stations"))

        return submit_once(request, act)


urlpatterns = [
    path("stations/", Index.as_view(), name="stations"),
    path("stations/new/", Create.as_view(), name="station-create"),
    path("stations/<uuid:station>/", Edit.as_view(), name="station-edit"),
    path("stations/<uuid:station>/delete/", Delete.as_view(), name="station-delete"),
]
