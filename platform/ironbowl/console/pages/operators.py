"""Platform staff pages: pools, workers and the capacity calendar (placeholder until built)."""

from __future__ import annotations

from django.urls import path

from ironbowl.console.base import StaffPage


class Pools(StaffPage):
    template_name = "console/placeholder.html"
    section = "pools"


urlpatterns = [path("pools/", Pools.as_view(), name="pools")]
