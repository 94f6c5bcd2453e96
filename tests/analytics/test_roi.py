"""ROI: seat-days from the employments' history, usage priced at the list rates, outcomes valued
at the organization's outcome values — exact decimal money, each line rounded half up to cents —
and the outcome values themselves, validated and audited.

Real: the selectors, the rates, the views (through the API client, as a member), the audit log,
the usage ledger's reversal service, the database the suite runs on. Simulated: rollup rows are
written directly as the rollup run writes them, and the employments' status history is written
with explicit instants (as avatars' transitions write it), so every expected figure is worked out
by hand below.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from avatars.models import Employment, EmploymentTransition
from ironbowl.analytics import kpis, rates, roi
from ironbowl.analytics.models import OutcomeValues, Rollup, UsageRecord
from ironbowl.analytics.usage import reverse
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars import factories as avatar_factories
from tests.support import database_rows

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
D = Decimal


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def march_1_to_10(organization) -> kpis.Window:
    return kpis.day_window(organization, local(2025, 3, 1), local(2025, 3, 11), now=NOW)


def history(organization, employment, *steps) -> None:
    for from_status, to_status, at in steps:
        EmploymentTransition.objects.create(
            organization=organization,
            employment=employment,
            from_status=from_status,
            to_status=to_status,
            reason="History for the test.",
            actor_label="system",
            created_at=at,
        )


def hire(organization, *, seats=1, created=dt.datetime(2025, 2, 20, tzinfo=dt.UTC)):
    employment = avatar_factories.EmploymentFactory(
        organization=organization, status="active", seats=seats
    )
    Employment.objects.for_organization(organization).filter(pk=employment.pk).update(
        created_at=created
    )
    employment.refresh_from_db()
    return employment


def use(organization, usage_type, quantity, at, employment=None, source=None) -> UsageRecord:
    return UsageRecord.objects.for_organization(organization).create(
        organization=organization,
        source_id=source or f"test:{usage_type}:{quantity}:{at.isoformat()}",
        usage_type=usage_type,
        quantity=D(quantity),
        employment_id=employment.pk if employment else None,
        occurred_at=at,
    )


def rollup(organization, bucket, grain="day", employment=None, **figures) -> Rollup:
    return Rollup.objects.create(
        organization=organization,
        grain=grain,
        bucket=bucket.astimezone(dt.UTC),
        employment_id=employment.pk if employment else None,
        **figures,
    )


def values(organization, currency="CNY") -> OutcomeValues:
    return roi.set_outcome_values(
        SYSTEM,
        organization,
        currency=currency,
        per_visit=D("0.5"),
        per_interaction=D("1.2345"),
        per_viewer_hour=D("2"),
        per_handoff_avoided=D("3.3333"),
    )


@pytest.fixture
def world(org_a, settings):
    """Organization A on the standard plan, priced at its list rates (no price provider; the
    billing tests below name it again) (CNY: 30.00 a seat-day, 0.05 a stream minute, 0.002 a
    GPU second, 0.10 a rendered second, 0.02 an interaction) and one hire with two seats:
    active from March 1st 01:00, suspended March 5th at noon, active again March 8th (local)."""
    settings.ANALYTICS_PRICE_PROVIDER = ""
    org_a.plan = "standard"
    org_a.save()
    employment = hire(org_a, seats=2)
    history(
        org_a,
        employment,
        ("offered", "onboarding", dt.datetime(2025, 2, 25, tzinfo=dt.UTC)),
        ("onboarding", "active", local(2025, 3, 1, 1)),
        ("active", "suspended", local(2025, 3, 5, 12)),
        ("suspended", "active", local(2025, 3, 8, 9)),
    )
    # Usage of the hire in the range; one record reversed; one just after the range.
    use(org_a, "stream_minutes", "33.333333", local(2025, 3, 2, 10), employment)
    use(org_a, "gpu_seconds", "1234.5", local(2025, 3, 2, 10), employment)
    use(org_a, "rendered_seconds", "0.05", local(2025, 3, 3, 10), employment)
    use(org_a, "interactions", "25", local(2025, 3, 4, 10), employment)
    mistaken = use(org_a, "gpu_seconds", "1000", local(2025, 3, 4, 10), employment)
    reverse(org_a, mistaken, "Counted twice.", SYSTEM)
    use(org_a, "gpu_seconds", "5000", local(2025, 3, 11), employment)
    use(org_a, "stream_minutes", "10", local(2025, 3, 9, 10))  # not attributed
    # Outcomes: two days of the hire, one unattributed; viewer-hours from the hourly rows.
    rollup(org_a, local(2025, 3, 2), employment=employment, visits=120, interactions=25,
           handoffs=4)  # fmt: skip
    rollup(org_a, local(2025, 3, 9), employment=employment, visits=80, interactions=15,
           handoffs=6)  # fmt: skip
    rollup(org_a, local(2025, 3, 9), visits=10)
    rollup(org_a, local(2025, 3, 2, 10), "hour", employment, view_samples=10, view_sum=300.0,
           broadcast_seconds=1800.0)  # fmt: skip  # 30 viewers × ½ hour
    rollup(org_a, local(2025, 3, 9, 10), "hour", employment, view_samples=4, view_sum=100.0,
           broadcast_seconds=720.0)  # fmt: skip  # 25 viewers × ⅕ hour
    return employment


def lines(found: list[roi.Line]) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {line.item: (line.quantity, line.unit, line.amount) for line in found}


def test_one_hires_cost_value_and_roi_are_exact(org_a, world):
    """Seat-days: March 1–5 and 8–10 are days it was active at some moment (8) × 2 seats."""
    values(org_a)

    found = roi.report(org_a, march_1_to_10(org_a), employment_id=world.pk)

    assert found.seat_days == 16
    assert lines(found.valuation.costs) == {
        "seat_days": (D(16), D("30.00"), D("480.00")),
        "stream_minutes": (D("33.333333"), D("0.05"), D("1.67")),  # 1.66666665
        "gpu_seconds": (D("1234.5"), D("0.002"), D("2.47")),  # 2.469; the reversal nets out
        "rendered_seconds": (D("0.05"), D("0.10"), D("0.01")),  # 0.005: half up, not to even
        "interactions": (D(25), D("0.02"), D("0.50")),
    }
    assert found.viewer_hours == D("20.0000")
    assert lines(found.valuation.outcomes) == {
        "visits": (D(200), D("0.5"), D("100.00")),
        "interactions": (D(40), D("1.2345"), D("49.38")),
        "viewer_hours": (D("20.0000"), D("2"), D("40.00")),
        "answered_without_person": (D(30), D("3.3333"), D("100.00")),  # 99.999
    }
    valuation = found.valuation
    assert (valuation.cost, valuation.value, valuation.net) == (
        D("484.65"),
        D("289.38"),
        D("-195.27"),
    )
    assert valuation.roi == D("-0.4029")


def test_the_organizations_roi_adds_what_is_not_attributed(org_a, world):
    values(org_a)

    found = roi.report(org_a, march_1_to_10(org_a))

    assert found.valuation.cost == D("485.15")  # + 10 stream minutes not attributed
    assert found.valuation.value == D("294.38")  # + 10 visits not attributed
    assert found.valuation.roi == D("-0.3932")


def test_roi_is_none_before_outcome_values_are_set_or_without_cost(org_a, world, org_b):
    found = roi.report(org_a, march_1_to_10(org_a))
    assert found.valuation.values_set is False and found.valuation.roi is None
    assert found.valuation.value == D("0.00") and found.valuation.cost == D("485.15")

    values(org_b)
    nothing = roi.report(org_b, march_1_to_10(org_b))
    assert nothing.valuation.cost == D("0.00") and nothing.valuation.roi is None


def test_cost_is_priced_in_the_currency_of_the_outcome_values_and_the_plan(org_a, world):
    values(org_a, currency="USD")
    org_a.plan = "enterprise"
    org_a.save()

    found = roi.report(org_a, march_1_to_10(org_a), employment_id=world.pk)

    assert found.valuation.currency == "USD"
    usd = rates.LIST_RATES["enterprise"]["USD"]
    assert lines(found.valuation.costs)["seat_days"] == (D(16), usd.seat_day, D("54.40"))


def test_the_roi_endpoint_shows_the_same_figures(api_a, org_a, world):
    values(org_a)

    response = api_a.get(
        f"/api/v1/orgs/{org_a.slug}/analytics/roi/",
        {"from": "2025-03-01", "to": "2025-03-10", "employment": str(world.pk)},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["from"] == "2025-03-01T00:00:00+08:00"
    assert body["to"] == "2025-03-11T00:00:00+08:00"
    assert (body["currency"], body["rates"], body["values_set"]) == ("CNY", "list", True)
    assert (body["cost"], body["value"], body["net"], body["roi"]) == (
        "484.65",
        "289.38",
        "-195.27",
        "-0.4029",
    )
    assert body["seat_days"] == 16 and body["viewer_hours"] == "20.0000"
    assert body["costs"][0] == {
        "item": "seat_days",
        "quantity": "16.000000",
        "unit": "30.000000",
        "amount": "480.00",
    }
    assert body["kpis"]["visits"] == 200 and body["kpis"]["answered_share"] == 0.75


def test_a_scorecard_carries_the_hires_cost_and_roi(api_a, org_a, world):
    values(org_a)

    response = api_a.get(
        f"/api/v1/orgs/{org_a.slug}/analytics/scorecards/",
        {"from": "2025-03-01", "to": "2025-03-10"},
    )

    (card,) = response.json()["results"]
    assert (card["cost"], card["value"], card["roi"], card["seat_days"]) == (
        "484.65",
        "289.38",
        "-0.4029",
        16,
    )


# --- Priced by the billing plan -------------------------------------------------------------------

BILLING = "ironbowl.billing.costs.prices_for"


def test_cost_is_priced_at_the_billing_plans_prices(org_a, world, settings):
    """The standard billing plan (migration 0002, CNY): 18.00 a stream hour, 12.00 per 1,000
    interactions, 16.00 a GPU hour, 3.00 a rendered minute, per ledger unit; its allowance is
    not subtracted. No seat-days in the ledger yet: all 16 at the list seat-day rate."""
    settings.ANALYTICS_PRICE_PROVIDER = BILLING
    values(org_a)

    found = roi.report(org_a, march_1_to_10(org_a), employment_id=world.pk)

    assert found.valuation.rates == "billing"
    assert lines(found.valuation.costs) == {
        "seat_days": (D(16), D("30.00"), D("480.00")),
        "stream_minutes": (D("33.333333"), D("0.3"), D("10.00")),  # 9.9999999
        "gpu_seconds": (D("1234.5"), D("0.004444"), D("5.49")),  # 1234.5 × 16 / 3600 = 5.4866…
        "rendered_seconds": (D("0.05"), D("0.05"), D("0.00")),  # 0.0025
        "interactions": (D(25), D("0.012"), D("0.30")),
    }
    valuation = found.valuation
    assert (valuation.cost, valuation.net) == (D("495.79"), D("-206.41"))
    assert valuation.roi == D("-0.4163")  # -206.41 / 495.79 = -0.41632…


def test_seat_days_the_ledger_recorded_are_priced_as_billing_rates_them(org_a, world, settings):
    """Billing's seat-day recording (real) appends March 1st–3rd: 2 seats each at the hire's
    1999.00 a seat-month, so 6 seat-days × 1999.00 / 31 = 386.903… The other 5 active days
    (March 4th, 5th, 8th–10th) have no record and keep the list rate: 10 × 30.00."""
    from ironbowl.billing.seats import record_seat_days

    settings.ANALYTICS_PRICE_PROVIDER = BILLING
    values(org_a)
    assert record_seat_days(org_a, dt.date(2025, 3, 1), dt.date(2025, 3, 3), now=NOW) == 3

    found = roi.report(org_a, march_1_to_10(org_a), employment_id=world.pk)
    (card,) = roi.scorecards(org_a, march_1_to_10(org_a))

    seats = [line for line in found.valuation.costs if line.item == "seat_days"]
    assert [(line.quantity, line.unit, line.amount) for line in seats] == [
        (D(6), D("64.483871"), D("386.90")),
        (D(10), D("30.00"), D("300.00")),
    ]
    assert found.seat_days == card.seat_days == 16
    assert found.valuation.cost == card.valuation.cost == D("702.69")  # + 10.00 + 5.49 + 0.30
    assert found.valuation.roi == D("-0.5882")  # (289.38 − 702.69) / 702.69
    assert card.valuation.rates == "billing"


def test_other_currencies_fall_back_to_list_rates_and_say_so(org_a, world, settings):
    """Outcome values in USD, the plan bills in CNY: the provider has no prices, so the USD list
    rates price everything, the ledger's seat-days (in CNY) included, and `rates` says "list"."""
    from ironbowl.billing.seats import record_seat_days

    settings.ANALYTICS_PRICE_PROVIDER = BILLING
    values(org_a, currency="USD")
    record_seat_days(org_a, dt.date(2025, 3, 1), dt.date(2025, 3, 3), now=NOW)

    found = roi.report(org_a, march_1_to_10(org_a), employment_id=world.pk)

    usd = rates.LIST_RATES["standard"]["USD"]
    assert found.valuation.rates == "list"
    assert lines(found.valuation.costs)["seat_days"] == (D(16), usd.seat_day, D("67.20"))
    assert lines(found.valuation.costs)["interactions"] == (D(25), usd.interaction, D("0.08"))


# --- Outcome values -------------------------------------------------------------------------------

GOOD = {
    "currency": "USD",
    "per_visit": "0.25",
    "per_interaction": "1.5",
    "per_viewer_hour": "0",
    "per_handoff_avoided": "12.3456",
}


def test_outcome_values_are_read_as_defaults_until_set_and_setting_them_is_audited(
    api_a, org_a, owner_a
):
    path = f"/api/v1/orgs/{org_a.slug}/analytics/outcome-values/"

    before = api_a.get(path)
    assert before.json() == {
        "currency": "CNY",
        "per_visit": "0.0000",
        "per_interaction": "0.0000",
        "per_viewer_hour": "0.0000",
        "per_handoff_avoided": "0.0000",
        "updated_at": None,
    }
    assert not OutcomeValues.objects.for_organization(org_a).exists()  # reading writes nothing

    first = api_a.put(path, GOOD, format="json")
    second = api_a.put(path, {**GOOD, "per_visit": "0.30"}, format="json")
    again = api_a.put(path, {**GOOD, "per_visit": "0.30"}, format="json")

    assert first.status_code == second.status_code == again.status_code == 200
    assert api_a.get(path).json()["per_visit"] == "0.3000"
    assert api_a.get(path).json()["currency"] == "USD"
    entries = list(
        AuditEntry.objects.for_organization(org_a)
        .filter(action="outcome_values.set")
        .order_by("created_at", "id")
    )
    assert len(entries) == 2  # the same values again change nothing and are not recorded
    assert entries[0].before is None and entries[0].after["per_visit"] == "0.2500"
    assert entries[1].before["per_visit"] == "0.2500" and entries[1].after["per_visit"] == "0.3000"
    assert entries[1].actor_label == owner_a.user.email


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"per_visit": "-0.01"}, "per_visit", "min_value"),
        ({"currency": "EUR"}, "currency", "invalid_choice"),
        ({"per_interaction": "abc"}, "per_interaction", "invalid"),
        ({"per_viewer_hour": "1.23456"}, "per_viewer_hour", "max_decimal_places"),
        ({"per_handoff_avoided": None}, "per_handoff_avoided", "null"),
        ({"bonus": "1"}, "bonus", "unknown_field"),
    ],
)
def test_bad_outcome_values_are_refused_and_change_nothing(api_a, org_a, change, field, code):
    path = f"/api/v1/orgs/{org_a.slug}/analytics/outcome-values/"
    api_a.put(path, GOOD, format="json")
    rows = database_rows()

    response = api_a.put(path, {**GOOD, **change}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["fields"][field][0]["code"] == code
    assert database_rows() == rows


def test_every_outcome_value_is_required(api_a, org_a):
    path = f"/api/v1/orgs/{org_a.slug}/analytics/outcome-values/"
    partial = {key: value for key, value in GOOD.items() if key != "per_visit"}

    response = api_a.put(path, partial, format="json")

    assert response.status_code == 400
    assert response.json()["fields"]["per_visit"][0]["code"] == "required"


def test_only_owners_and_admins_set_outcome_values(org_a, member_factory, client_for):
    path = f"/api/v1/orgs/{org_a.slug}/analytics/outcome-values/"
    analyst = client_for(member_factory(org_a, Role.ANALYST))

    assert analyst.get(path).status_code == 200
    refused = analyst.put(path, GOOD, format="json")
    assert refused.status_code == 403
    assert not OutcomeValues.objects.for_organization(org_a).exists()
