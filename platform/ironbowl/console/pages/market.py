"""The market section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "market"
    permissions = {"get": Permission.MARKET_VIEW}


urlpatterns = [path("market/", Index.as_view(), name="market")]
