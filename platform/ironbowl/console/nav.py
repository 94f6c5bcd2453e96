"""The side bar: the sections of an organization a member's role may open."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tenants.models import Organization
from tenants.roles import Permission


@dataclass(frozen=True)
class Section:
    key: str
    label: Promise
    url_name: str
    permission: Permission


SECTIONS: tuple[Section, ...] = (
    Section("dashboard", _("Dashboard"), "console:dashboard", Permission.ORGANIZATION_VIEW),
    Section("board", _("On air"), "console:board", Permission.STATIONS_VIEW),
    Section("market", _("Talent market"), "console:market", Permission.MARKET_VIEW),
    Section("employees", _("Employees"), "console:employees", Permission.EMPLOYMENTS_VIEW),
    Section("avatars", _("Custom avatars"), "console:avatars", Permission.AVATARS_VIEW),
    Section("stations", _("Stations"), "console:stations", Permission.STATIONS_VIEW),
    Section("roster", _("Roster"), "console:roster", Permission.STATIONS_VIEW),
    Section("analytics", _("Analytics"), "console:analytics", Permission.ANALYTICS_VIEW),
    Section("billing", _("Billing"), "console:billing", Permission.BILLING_VIEW),
    Section("administration", _("Administration"), "console:members", Permission.MEMBERS_VIEW),
)


@dataclass(frozen=True)
class NavItem:
    key: str
    label: Promise
    url: str
    current: bool


def navigation(organization: Organization, can: dict[str, bool], current: str) -> list[NavItem]:
    return [
        NavItem(s.key, s.label, reverse(s.url_name, args=[organization.slug]), s.key == current)
        for s in SECTIONS
        if can[s.permission.value.replace(".", "_")]
    ]
