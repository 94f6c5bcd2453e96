"""The billing section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "billing"
    permissions = {"get": Permission.BILLING_VIEW}


urlpatterns = [path("billing/", Index.as_view(), name="billing")]
