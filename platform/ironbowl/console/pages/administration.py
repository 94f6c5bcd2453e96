"""The administration section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "administration"
    permissions = {"get": Permission.MEMBERS_VIEW}


urlpatterns = [path("admin/members/", Index.as_view(), name="members")]
