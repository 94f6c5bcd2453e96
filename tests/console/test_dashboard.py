"""The dashboard: who is on air, today's KPIs in the organization's time zone, and the alerts
(shifts at risk, 24/7 coverage gaps, failed GPU work, the budget, consents ending), each linking
where it can be dealt with; what a role may not read is left out, and the number of queries does
not grow with the organization.

Real Django stack and database; the budget is set and rated by billing's services. Shifts,
workloads and rollup rows are written directly, as the scheduler, the orchestrator and the rollup
run would write them."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from avatars.models import Consent, Employment
from inference.models import Priority, Workload, WorkloadKind, WorkloadState
from ironbowl.analytics import kpis
from ironbowl.billing import budgets
from scheduling.models import Shift, ShiftState, StationKind
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.roles import Role
from tests.analytics.rows import rollup
from tests.avatars import factories as avatars
from tests.scheduling import duty_world

pytestmark = pytest.mark.django_db


def dashboard(organization: Organization) -> str:
    return reverse("console:dashboard", args=[organization.slug])


def on_air(organization: Organization, station_name: str) -> Shift:
    now = timezone.now()
    shift = duty_world.live_shift(organization, now - dt.timedelta(minutes=30), name=station_name)
    shift.state, shift.on_duty_at = ShiftState.ON_DUTY, now - dt.timedelta(minutes=25)
    shift.save(update_fields=["state", "on_duty_at"])
    return shift


def at_risk(organization: Organization, station_name: str) -> Shift:
    plan = duty_world.schedule(
        duty_world.hire(organization), duty_world.station(organization, name=station_name)
    )
    return duty_world.shift(
        plan,
        timezone.now() + dt.timedelta(days=2),
        at_risk=True,
        risk_reason=f"No GPU capacity for {station_name}.",
    )


def around_the_clock(organization: Organization, station_name: str) -> None:
    """A 24/7 schedule whose shifts were never made: a coverage gap from now on."""
    duty_world.schedule(
        duty_world.hire(organization),
        duty_world.station(organization, StationKind.WEB_WIDGET, name=station_name),
        rrule="",
        start_time=None,
        duration_minutes=None,
        always_on=True,
    )


def failed(organization: Organization, reason: str, kind: str = WorkloadKind.RENDER) -> Workload:
    return Workload.objects.create(
        organization=organization,
        kind=kind,
        pool=duty_world.live_pool(),
        priority=Priority.RENDER,
        state=WorkloadState.FAILED,
        reason=reason,
        finished_at=timezone.now() - dt.timedelta(hours=1),
    )


def consent_ending(organization: Organization, days: int) -> Employment:
    """A hire whose avatar's consent (the vendor's) ends in `days` days."""
    employment = avatars.EmploymentFactory(organization=organization, status="active")
    consent = employment.avatar_version.consent
    Consent.objects.for_organization(consent.organization).filter(pk=consent.pk).update(
        expires_at=timezone.now() + dt.timedelta(days=days)
    )
    return employment


def own_consent_ending(organization: Organization, subject: str) -> Consent:
    avatar = avatars.AvatarFactory(organization=organization, name_en=f"Own {subject}")
    return avatars.ConsentFactory(
        avatar=avatar,
        organization=organization,
        subject_name=subject,
        expires_at=timezone.now() + dt.timedelta(days=5),
    )


def used_up_budget(organization: Organization) -> None:
    """A budget of 0 with a hard stop: used up from the month's first day (billing's rule)."""
    budgets.set_budget(
        SYSTEM,
        organization,
        monthly_amount=Decimal("0"),
        hard_stop=True,
        exempt_public_service=False,
    )


def everything(organization: Organization, tag: str) -> None:
    on_air(organization, f"{tag} live room")
    at_risk(organization, f"{tag} risky room")
    around_the_clock(organization, f"{tag} night desk")
    failed(organization, f"{tag} render ran out of memory")
    consent_ending(organization, days=10)
    own_consent_ending(organization, f"{tag} subject")


# --- What it shows --------------------------------------------------------------------------------


def test_the_dashboard_shows_who_is_on_air_with_links_to_the_board(console_a, org_a):
    shift = on_air(org_a, "Health live room")
    html = console_a.get(dashboard(org_a)).content.decode()
    assert "Health live room" in html and shift.employment.avatar.name_en in html
    assert "On duty" in html
    local = timezone.localtime(shift.on_duty_at, zoneinfo.ZoneInfo(org_a.time_zone))
    assert local.strftime("%Y-%m-%d %H:%M") in html  # in the organization's time zone
    assert reverse("console:board", args=[org_a.slug]) in html
    assert reverse("console:employee", args=[org_a.slug, shift.employment_id]) in html


def test_todays_kpis_count_the_organizations_local_day_only(console_a, org_a):
    org_a.time_zone = "America/New_York"
    org_a.save()
    zone = zoneinfo.ZoneInfo(org_a.time_zone)
    today = timezone.now().astimezone(zone).date()
    rollup(
        org_a,
        kpis.local_midnight(today, zone),
        visits=123,
        interactions=45,
        viewers=range(7),
        peak_viewers=9,
        broadcast_seconds=5400,
    )
    rollup(org_a, kpis.local_midnight(today - dt.timedelta(days=1), zone), visits=100_000)
    html = console_a.get(dashboard(org_a)).content.decode()
    assert 'data-kpi="visits">123<' in html
    assert 'data-kpi="interactions">45<' in html
    assert 'data-kpi="unique_viewers">7<' in html
    assert 'data-kpi="peak_viewers">9<' in html
    assert 'data-kpi="broadcast_hours">1.5<' in html


def test_alerts_link_to_where_they_are_dealt_with(console_a, org_a):
    everything(org_a, "Alpha")
    build = failed(org_a, "Alpha build lost its worker", WorkloadKind.BUILD)
    hire = consent_ending(org_a, days=3)
    used_up_budget(org_a)
    html = console_a.get(dashboard(org_a)).content.decode()
    slug = org_a.slug
    assert 'data-alert="at-risk"' in html and "No GPU capacity for Alpha risky room." in html
    assert 'data-alert="gaps"' in html and "Alpha night desk" in html
    assert reverse("console:roster", args=[slug]) in html
    assert 'data-alert="failed"' in html and "Alpha render ran out of memory" in html
    assert build.reason in html and reverse("console:avatars", args=[slug]) in html
    assert 'data-alert="budget"' in html and "Budget used up" in html
    assert "New work is held" in html and reverse("console:billing", args=[slug]) in html
    assert 'data-alert="hires-consent"' in html
    assert reverse("console:employee", args=[slug, hire.pk]) in html
    assert 'data-alert="own-consent"' in html and "Alpha subject" in html
    assert "Nothing needs your attention." not in html


def failed_at_station(organization: Organization, reason: str, kind: str, spec: dict) -> Workload:
    work = failed(organization, reason, kind)
    work.spec = spec
    work.save(update_fields=["spec"])
    return work


def test_failed_streams_and_sessions_link_to_the_roster_or_the_employee(console_a, org_a, org_b):
    """The board shows only work under way: a failed stream or desk session links to its
    station's week on the roster (where the failed shift is), or to its employee when the
    station is not known; ids of another organization in a spec get no link."""
    org_a.time_zone = "Asia/Shanghai"
    org_a.save()
    shift = on_air(org_a, "Alpha failing room")
    live = failed_at_station(
        org_a,
        "Alpha stream crashed",
        WorkloadKind.LIVE,
        {
            "shift": str(shift.pk),
            "station": str(shift.station_id),
            "employment": str(shift.employment_id),
        },
    )
    hire = avatars.EmploymentFactory(organization=org_a, status="active")
    failed_at_station(
        org_a, "Alpha session lost", WorkloadKind.SESSION, {"employment": str(hire.pk)}
    )
    foreign = on_air(org_b, "Beta secret room")
    failed_at_station(
        org_a,
        "Alpha session with foreign ids",
        WorkloadKind.SESSION,
        {"station": str(foreign.station_id), "employment": str(foreign.employment_id)},
    )

    html = console_a.get(dashboard(org_a)).content.decode()

    card = re.search(r'data-alert="failed">(.*?)</li>\s*</ul>', html, re.S).group(1)
    zone = zoneinfo.ZoneInfo("Asia/Shanghai")
    year, week, _day = live.finished_at.astimezone(zone).date().isocalendar()
    roster = reverse("console:roster", args=[org_a.slug])
    query = urlencode({"week": f"{year}-W{week:02d}", "q": "Alpha failing room"})
    assert f'href="{roster}?{query.replace("&", "&amp;")}"' in card
    assert reverse("console:employee", args=[org_a.slug, hire.pk]) in card
    assert reverse("console:board", args=[org_a.slug]) not in card
    assert card.count(">Deal with it</a>") == 2  # the one naming another's ids has no link
    assert "Alpha session with foreign ids" in card and "Beta secret room" not in html


def test_the_budget_alerts_only_once_billing_raised_it(console_a, org_a):
    budgets.set_budget(
        SYSTEM, org_a, monthly_amount=Decimal("1000"), hard_stop=True, exempt_public_service=True
    )
    assert 'data-alert="budget"' not in console_a.get(dashboard(org_a)).content.decode()
    budgets.set_budget(
        SYSTEM, org_a, monthly_amount=Decimal("0"), hard_stop=False, exempt_public_service=True
    )
    html = console_a.get(dashboard(org_a)).content.decode()
    assert 'data-alert="budget"' in html and "Budget used up" in html
    assert "New work is held" not in html  # no hard stop


def test_a_quiet_organization_has_nothing_to_attend_to(console_a, org_a):
    consent_ending(org_a, days=90)  # not yet worth a warning
    html = console_a.get(dashboard(org_a)).content.decode()
    assert "Nothing needs your attention." in html
    assert "Nobody is on air right now." in html


# --- Tenancy and roles ----------------------------------------------------------------------------


def test_nothing_of_another_organization_shows(console_a, org_a, org_b):
    everything(org_a, "Alpha")
    everything(org_b, "Beta")
    used_up_budget(org_b)
    beta_hire = consent_ending(org_b, days=4)
    html = console_a.get(dashboard(org_a)).content.decode()
    assert "Alpha live room" in html
    assert "Beta" not in html
    assert str(beta_hire.pk) not in html
    assert 'data-alert="budget"' not in html  # org_b's budget is used up, not org_a's


def test_each_role_sees_what_it_may_read(org_a, member_factory, console_for):
    everything(org_a, "Alpha")
    used_up_budget(org_a)
    billing = console_for(member_factory(org_a, Role.BILLING)).get(dashboard(org_a))
    html = billing.content.decode()
    assert billing.status_code == 200
    assert 'data-alert="budget"' in html
    assert 'data-testid="on-air"' not in html and "Alpha live room" not in html
    assert 'data-alert="failed"' not in html and 'data-alert="own-consent"' not in html
    analyst = console_for(member_factory(org_a, Role.ANALYST)).get(dashboard(org_a))
    html = analyst.content.decode()
    assert 'data-alert="budget"' not in html
    assert "Alpha live room" in html and 'data-alert="failed"' in html


# --- Cost -----------------------------------------------------------------------------------------


def _queries(client, organization: Organization) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(dashboard(organization))
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_the_query_count_does_not_grow_with_the_organization(
    console_a, org_a, django_assert_max_num_queries
):
    """Stations, hires, shifts on air and at risk, failures and consents: twice as many of each,
    then more again, answer with the same number of queries."""
    used_up_budget(org_a)
    everything(org_a, "First")
    _queries(console_a, org_a)  # the first page of the org writes the session once
    small = _queries(console_a, org_a)
    for n in range(6):
        everything(org_a, f"More {n}")
    assert _queries(console_a, org_a) == small
    html = console_a.get(dashboard(org_a)).content.decode()
    assert '<span class="badge ok">7</span>' in html  # on air: all counted, whatever is shown
    assert '<span class="badge bad">7</span>' in html  # at risk
    with django_assert_max_num_queries(small):
        console_a.get(dashboard(org_a))
