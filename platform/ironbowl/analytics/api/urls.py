"""Analytics routes: the events intake, and reads under /api/v1/orgs/{org}/analytics/."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from ironbowl.analytics.api import kpis
from ironbowl.analytics.api.events import EventIntakeView
from ironbowl.analytics.api.usage import UsageRecordViewSet

usage_router = SimpleRouter(trailing_slash=True)
usage_router.register("analytics/usage", UsageRecordViewSet, basename="usage-record")

organization_urlpatterns: list[URLPattern | URLResolver] = [
    path("events/", EventIntakeView.as_view(), name="events"),
    path("analytics/kpis/", kpis.KpiView.as_view(), name="analytics-kpis"),
    path("analytics/scorecards/", kpis.ScorecardView.as_view(), name="analytics-scorecards"),
    path("analytics/compare/", kpis.CompareView.as_view(), name="analytics-compare"),
    path("analytics/roi/", kpis.RoiView.as_view(), name="analytics-roi"),
    path(
        "analytics/outcome-values/",
        kpis.OutcomeValuesView.as_view(),
        name="analytics-outcome-values",
    ),
    *usage_router.urls,
]
