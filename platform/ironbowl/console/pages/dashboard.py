"""The dashboard: who is on air now, today's KPIs (the organization's local day), and alerts —
shifts at risk and 24/7 coverage gaps, failed GPU work, the budget, consents running out — each
linking to the page where it can be dealt with. A member sees only what their role may read;
the queries behind it do not grow with the number of stations or employments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.urls import path
from django.utils import timezone
from django.utils.http import urlencode

from avatars.models import Employment
from inference.models import Workload, WorkloadKind
from ironbowl.console.base import OrganizationPage
from ironbowl.console.queries import dashboard as queries
from ironbowl.console.queries import roster as calendar
from scheduling import recurrence
from scheduling.models import Station
from tenants.roles import Permission

# The work of a station's shift or desk: its spec names the station and the digital employee.
STATION_WORK = (WorkloadKind.LIVE, WorkloadKind.SESSION)


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
            context["failed_rows"] = self.failed_rows(failed.rows)
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

    def failed_rows(self, failed: Sequence[Workload]) -> list[tuple[Workload, str | None]]:
        """Each failed workload with the page where it is dealt with: a build on the custom
        avatars page; a stream or a desk's session on the roster's week of its station (or, for
        one who cannot see stations, its employee's page), which the failed shift is on — the
        board shows only the work under way. Other work has no page. Two queries at most (the
        few shown rows' stations and employees); ids in a spec that are not this organization's
        get no link."""
        specs = {w.pk: w.spec if isinstance(w.spec, dict) else {} for w in failed}
        station_ids = {str(specs[w.pk].get("station", "")) for w in failed}
        employment_ids = {str(specs[w.pk].get("employment", "")) for w in failed}
        stations = self._ours(Station, station_ids) if self.may(Permission.STATIONS_VIEW) else {}
        employments = self._ours(Employment, employment_ids)
        zone = recurrence.zone_of(self.organization.time_zone)
        rows: list[tuple[Workload, str | None]] = []
        for workload in failed:
            spec, link = specs[workload.pk], None
            station = stations.get(str(spec.get("station", "")))
            employment = employments.get(str(spec.get("employment", "")))
            if workload.kind == WorkloadKind.BUILD:
                link = self.url("console:avatars")
            elif workload.kind in STATION_WORK and station is not None:
                when = workload.finished_at or workload.created_at
                week = calendar.week_of(when.astimezone(zone).date(), zone)
                query = urlencode({**week.query(), "q": station.name})
                link = f"{self.url('console:roster')}?{query}"
            elif workload.kind in STATION_WORK and employment is not None:
                link = self.url("console:employee", employment.pk)
            rows.append((workload, link))
        return rows

    def _ours(self, model: Any, ids: set[str]) -> dict[str, Any]:
        """This organization's rows of these ids, by id as text (ids that are not uuids and
        other organizations' rows are left out)."""
        wanted = [pk for pk in ids if _is_uuid(pk)]
        if not wanted:
            return {}
        return {str(row.pk): row for row in self.owned(model).filter(pk__in=wanted)}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


urlpatterns = [path("", Index.as_view(), name="dashboard")]
