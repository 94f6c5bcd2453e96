"""Which stations a member may operate, as the console's pages ask it, and the page that says no.

The rule is scheduling's (`selectors.stations_operable_by`, the API's): owners and administrators
operate every station, an operator the stations granted to them, other roles none. Pages asking
about many stations (the board, the roster) ask once for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy

from ironbowl.console.base import OrganizationPage
from scheduling import selectors
from scheduling.models import Station
from tenants.roles import Permission, Role

# The API's words for an operator at a station not granted to them.
NOT_AN_OPERATOR_OF_STATION = gettext_lazy(
    "You do not operate this station. Ask an administrator to grant it to you."
)
NOT_AN_OPERATOR_OF_SHIFT = gettext_lazy(
    "You do not operate this shift's station. Ask an administrator to grant it to you."
)


def operable_stations(page: OrganizationPage) -> QuerySet[Station]:
    """The organization's stations the page's member may operate."""
    return selectors.stations_operable_by(page.organization, page.user, page.membership.role)


def operable_among(page: OrganizationPage, station_ids: Iterable[Any]) -> set[Any]:
    """Which of these stations the member may operate: one query for all of them."""
    wanted = set(station_ids)
    if not wanted:
        return set()
    found = operable_stations(page).filter(pk__in=wanted).values_list("pk", flat=True)
    return set(found)


def may_operate(page: OrganizationPage, station: Station) -> bool:
    return bool(operable_among(page, [station.pk]))


def not_an_operator(
    page: OrganizationPage,
    permission: Permission = Permission.STATIONS_OPERATE,
    message: Any = NOT_AN_OPERATOR_OF_STATION,
) -> HttpResponse:
    """The 403 page for a member refused at a station: an operator is told the station is not
    granted to them; another role is told what its role lacks (a grant would not help it)."""
    if page.membership.role != Role.OPERATOR:
        return page.denied(permission)
    context = {**page.base_context(), "message": message}
    return TemplateResponse(page.request, "console/denied.html", context, status=403).render()
