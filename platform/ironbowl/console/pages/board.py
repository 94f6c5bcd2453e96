"""The on-air board: each shift under way — who, where, its state, frames/s, viewers, latency —
with stop, take over and hand back (scheduling.duty, as the shifts API calls it).

Everyone who may view stations sees the board; owners and administrators act on every shift,
an operator only on the shifts at stations granted to them (others see no buttons and are
refused). The page follows the organization's board socket (`static/console/board.js`) and
re-fetches its rows (`board-rows`) when a shift moves or the socket comes back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ironbowl.console import board, station_rights
from ironbowl.console.base import OrganizationPage
from ironbowl.console.forms import Form, new_token, submit_once, validate
from ironbowl.console.names import avatar_name
from scheduling import duty
from scheduling.api.shifts import ShiftActionSerializer
from scheduling.models import Shift, ShiftState
from tenants.audit import Actor
from tenants.errors import DomainError
from tenants.roles import Permission

S = ShiftState


@dataclasses.dataclass(frozen=True)
class Action:
    key: str  # the URL's last part and the URL name's suffix
    do: Callable[[Actor, Shift, str], Shift]
    label: Promise
    title: Promise
    explanation: Promise
    done: Promise
    danger: bool = False


ACTIONS: dict[str, Action] = {
    "stop": Action(
        "stop",
        duty.stop,
        _("Stop"),
        _("Stop this shift"),
        _("The stream stops and the shift ends now; its reserved capacity is given back."),
        _("The shift was stopped."),
        danger=True,
    ),
    "take-over": Action(
        "take-over",
        duty.take_over,
        _("Take over"),
        _("Take over this shift"),
        _(
            "A person takes over: the digital employee's stream stops (a desk stops taking "
            "visitors) while the shift goes on until it is handed back or its time is up."
        ),
        _("You took over the shift."),
    ),
    "hand-back": Action(
        "hand-back",
        duty.hand_back,
        _("Hand back"),
        _("Hand this shift back"),
        _(
            "The shift goes back to the digital employee: a new stream is requested (a desk "
            "opens again)."
        ),
        _("The shift was handed back to the digital employee."),
    ),
}

# What a person may do with a shift in each state the board shows.
ACTIONS_BY_STATE: dict[str, tuple[str, ...]] = {
    S.WARMING: ("stop", "take-over"),
    S.ON_DUTY: ("stop", "take-over"),
    S.TAKEN_OVER: ("stop", "hand-back"),
}

STATE_BADGES: dict[str, str] = {S.ON_DUTY: "ok", S.WARMING: "", S.TAKEN_OVER: "warn"}


@dataclasses.dataclass(frozen=True)
class RowAction:
    key: str
    label: Promise
    url: str
    token: str
    danger: bool
    confirm: str


@dataclasses.dataclass
class BoardRow:
    shift: Shift
    name: str
    badge: str
    stats: board.Stats
    actions: list[RowAction]


class Board(OrganizationPage):
    template_name = "console/board/index.html"
    section = "board"
    permissions: ClassVar[dict[str, Permission]] = {"get": Permission.STATIONS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        found = board.rows(self.organization)
        operated = station_rights.operable_among(self, [row.shift.station_id for row in found])
        rows = []
        for row in found:
            shift = row.shift
            allowed = ACTIONS_BY_STATE.get(shift.state, ()) if shift.station_id in operated else ()
            rows.append(
                BoardRow(
                    shift=shift,
                    name=avatar_name(shift.employment.avatar),
                    badge=STATE_BADGES.get(shift.state, ""),
                    stats=row.stats,
                    actions=[self._row_action(shift, ACTIONS[key]) for key in allowed],
                )
            )
        context.update(
            rows=rows,
            rows_url=self.url("console:board-rows"),
            socket_path=f"/ws/console/orgs/{self.organization.slug}/board/",
        )
        return context

    def _row_action(self, shift: Shift, action: Action) -> RowAction:
        confirm = ""
        if action.danger:
            confirm = gettext("Stop %(name)s's shift at %(station)s now?") % {
                "name": avatar_name(shift.employment.avatar),
                "station": shift.station.name,
            }
        return RowAction(
            key=action.key,
            label=action.label,
            url=self.url(f"console:board-{action.key}", shift.pk),
            token=new_token(),
            danger=action.danger,
            confirm=confirm,
        )


class BoardRows(Board):
    """The board's rows alone, for the page's live re-fetch."""

    template_name = "console/board/rows.html"


class ShiftAction(OrganizationPage):
    """One operator action on one shift: a page with an optional reason (GET) and the action
    itself (POST, acting once per submit token). The board's buttons post here directly."""

    template_name = "console/board/action.html"
    section = "board"
    permissions: ClassVar[dict[str, Permission]] = {
        # Then per shift: STATIONS_OPERATE, or an operator granted the shift's station.
        "get": Permission.STATIONS_VIEW,
        "post": Permission.STATIONS_VIEW,
    }
    action_key = ""  # set per URL: a key of ACTIONS

    @property
    def action(self) -> Action:
        return ACTIONS[self.action_key]

    def get(self, request: HttpRequest, org: str, shift: Any) -> HttpResponse:
        target = self._shift(shift)
        refusal = self._refuse(target)
        if refusal is not None:
            return refusal
        context = self.get_context_data()
        # A reason typed before the session ended comes back (see console.drafts).
        return self._page(target, Form.of(context["draft"], reason=""), context=context)

    def post(self, request: HttpRequest, org: str, shift: Any) -> HttpResponse:
        target = self._shift(shift)
        refusal = self._refuse(target)
        if refusal is not None:
            return refusal
        return submit_once(request, lambda: self._act(target))

    def _shift(self, pk: Any) -> Shift:
        shift: Shift = self.get_owned(Shift, pk)
        return shift

    def _refuse(self, shift: Shift) -> HttpResponse | None:
        if shift.station_id in station_rights.operable_among(self, [shift.station_id]):
            return None
        return station_rights.not_an_operator(self, message=station_rights.NOT_AN_OPERATOR_OF_SHIFT)

    def _act(self, shift: Shift) -> HttpResponse:
        form = Form.of(self.request.POST)
        posted = {"reason": self.request.POST["reason"]} if "reason" in self.request.POST else {}
        data = validate(ShiftActionSerializer, form, posted)
        if data is None:
            return self._page(shift, form, status=400)
        try:
            self.action.do(self.actor, shift, data.get("reason", ""))
        except DomainError as error:
            form.fail(error)
            return self._page(shift, form, status=409)
        messages.success(self.request, str(self.action.done))
        return redirect(self.url("console:board"))

    def _page(
        self,
        shift: Shift,
        form: Form,
        status: int = 200,
        context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        shift = (
            self.owned(Shift)
            .select_related("station", "employment__avatar")
            .get(pk=shift.pk)  # as it is now, after a refused action too
        )
        context = {
            **(context if context is not None else self.get_context_data()),
            "shift": shift,
            "name": avatar_name(shift.employment.avatar),
            "action": self.action,
            "form": form,
        }
        return self.render_to_response(context, status=status)


urlpatterns = [
    path("on-air/", Board.as_view(), name="board"),
    path("on-air/rows/", BoardRows.as_view(), name="board-rows"),
    *(
        path(
            f"on-air/shifts/<uuid:shift>/{key}/",
            ShiftAction.as_view(action_key=key),
            name=f"board-{key}",
        )
        for key in ACTIONS
    ),
]
