"""The employees section (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import OrganizationPage
from tenants.roles import Permission


class Index(OrganizationPage):
    template_name = "console/placeholder.html"
    section = "employees"
    permissions = {"get": Permission.EMPLOYMENTS_VIEW}


urlpatterns = [path("employees/", Index.as_view(), name="employees")]
