"""The avatars section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "avatars"
    permissions = {"get": Permission.AVATARS_VIEW}


urlpatterns = [path("avatars/", Index.as_view(), name="avatars")]
