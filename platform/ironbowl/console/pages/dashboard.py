"""The dashboard section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "dashboard"
    permissions = {"get": Permission.ORGANIZATION_VIEW}


urlpatterns = [path("", Index.as_view(), name="dashboard")]
