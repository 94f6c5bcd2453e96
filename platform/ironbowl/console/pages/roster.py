"""The roster section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "roster"
    permissions = {"get": Permission.STATIONS_VIEW}


urlpatterns = [path("roster/", Index.as_view(), name="roster")]
