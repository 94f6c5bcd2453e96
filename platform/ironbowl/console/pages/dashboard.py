"""The dashboard: who is on air now, today's KPIs (the organization's local day), and alerts —
shifts at risk and 24/7 coverage gaps, failed GPU work, the budget, consents running out — each
linking to the page where it can be dealt with. A member sees only what their role may read;
the queries behind it do not grow with the number of stations or employments."""

from __future__ import annotations

from typing import Any

from django.urls import path
from django.utils import timezone

from inference.models import WorkloadKind
from ironbowl.console.base import OrganizationPage
from ironbowl.console.queries import dashboard as queries
from tenants.roles import Permission

# Where a failed workload is dealt with: builds on the custom avatars page, the rest on the board.
WORKLOAD_PAGE: dict[str, str] = {WorkloadKind.BUILD: "console:avatars"}


class Index(OrganizationPage):
    template_name = "console/dashboard/index.html"
    section = "dashboard"
    permissions = {"get": Permission.ORGANIZATION_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        organization, now = self.organization, timezone.now()
        may = self.may
        alerts: dict[str, Any] = {}
        if may(Permission.STATIONS_VIEW):
            context["on_air"] = queries.on_air(organization)
            alerts["at_risk"] = queries.at_risk_shifts(organization, now)
            alerts["gaps"] = queries.coverage_gaps(organization, now)
        if may(Permission.ANALYTICS_VIEW):
            context["today"] = queries.today_kpis(organization, now)
        if may(Permission.WORKLOADS_VIEW):
            failed = queries.failed_workloads(organization, now)
            alerts["failed"] = failed
            context["failed_rows"] = [
                (workload, self.url(WORKLOAD_PAGE.get(workload.kind, "console:board")))
                for workload in failed.rows
            ]
        if may(Permission.BILLING_VIEW):
            alerts["budget"] = queries.budget_alert(organization, now)
        if may(Permission.EMPLOYMENTS_VIEW):
            alerts["hires_consent"] = queries.hires_with_consent_expiring(organization, now)
        if may(Permission.AVATARS_VIEW):
            alerts["own_consent"] = queries.own_consents_expiring(organization, now)
        context["alerts"] = alerts
        context["any_alert"] = any(alerts.values())
        context["consent_warning_days"] = queries.CONSENT_WARNING.days
        return context


urlpatterns = [path("", Index.as_view(), name="dashboard")]
