"""The analytics section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "analytics"
    permissions = {"get": Permission.ANALYTICS_VIEW}


urlpatterns = [path("analytics/", Index.as_view(), name="analytics")]
