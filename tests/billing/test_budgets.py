"""Budget alerts: 80% and 100% of the organization's month, each once a month, re-armed when
they no longer hold, in the organization's local month.

Real: the database, the budget service, notifications and Django's e-mail backend (locmem, as
the test runner sets it). Simulated: the month's spend — `statements.spend_to_date` is replaced
by a table the test fills, so the thresholds are hit to the cent — except in the end-to-end test
at the bottom, which rates real usage records with the real rating.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from ironbowl.billing import budgets, statements
from ironbowl.billing.models import Budget, Notification, Plan
from ironbowl.celery import app
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import AuditEntry, Organization
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import local, make_organization, usage

# The 20th of March 2025, noon in Shanghai (the organizations' time zone unless said).
MARCH = local("Asia/Shanghai", 2025, 3, 20, 12)


@pytest.fixture
def spend(monkeypatch):
    """The month's spend per organization, as the test sets it (instead of rating)."""
    table: dict[object, Decimal] = {}

    def spend_to_date(organization: Organization, now: dt.datetime | None = None) -> Decimal:
        return table.get(organization.pk, Decimal(0))

    monkeypatch.setattr(statements, "spend_to_date", spend_to_date)
    return table


@pytest.fixture
def org(db) -> Organization:
    organization = make_organization(plan="trial")
    factories.MembershipFactory(organization=organization, role=Role.OWNER)
    return organization


def _set(organization: Organization, amount: str, *, hard_stop: bool = False, now=MARCH):
    return budgets.set_budget(
        SYSTEM,
        organization,
        monthly_amount=Decimal(amount),
        hard_stop=hard_stop,
        exempt_public_service=True,
        now=now,
    )


def _check(organization: Organization, now=MARCH) -> list[str]:
    return budgets.check_budget(organization, now)


def _kinds(organization: Organization) -> list[str]:
    return list(
        Notification.objects.for_organization(organization)
        .order_by("created_at")
        .values_list("kind", flat=True)
    )


def test_thresholds_alert_once_each_to_the_cent(org, spend, django_capture_on_commit_callbacks):
    _set(org, "10000.00")

    with django_capture_on_commit_callbacks(execute=True):
        spend[org.pk] = Decimal("7999.99")  # 79.9999%
        assert _check(org) == []
        spend[org.pk] = Decimal("8000.00")  # 80%
        assert _check(org) == ["budget_80"]
        assert _check(org) == []  # again: still past 80%, no second alert
        spend[org.pk] = Decimal("9999.99")
        assert _check(org) == []
        spend[org.pk] = Decimal("10000.00")  # 100%
        assert _check(org) == ["budget_100"]
        assert _check(org) == []

    assert _kinds(org) == ["budget_80", "budget_100"]
    assert len(mail.outbox) == 2
    budget = budgets.budget_of(org)
    assert budget is not None
    assert budget.alerted_80_for == budget.alerted_100_for == dt.date(2025, 3, 1)


def test_a_jump_past_both_thresholds_sends_only_the_100_percent_alert(org, spend):
    _set(org, "500.00")
    spend[org.pk] = Decimal("750.00")

    assert _check(org) == ["budget_100"]
    spend[org.pk] = Decimal("800.00")
    assert _check(org) == []

    (notification,) = Notification.objects.for_organization(org)
    assert notification.data == {
        "threshold": 100,
        "month": "2025-03",
        "spent": "750.00",
        "budget": "500.00",
        "currency": "CNY",
        "hard_stop": False,
    }
    assert notification.message == (
        f"{org.name} has used up its 500.00 CNY budget for March 2025: 750.00 CNY spent so far. "
        "Work goes on: this budget does not stop new work."
    )


def test_the_local_month_turn_rearms_both_alerts(org, spend):
    _set(org, "100.00")
    spend[org.pk] = Decimal("120.00")
    assert _check(org) == ["budget_100"]

    # 23:59 on the 31st of March in Shanghai is 15:59 UTC: still March there.
    last_minute = dt.datetime(2025, 3, 31, 15, 59, tzinfo=dt.UTC)
    assert _check(org, last_minute) == []
    # A minute later it is April in Shanghai (still March in UTC): a new month, new alerts.
    spend[org.pk] = Decimal("85.00")
    april = dt.datetime(2025, 3, 31, 16, 0, tzinfo=dt.UTC)
    assert _check(org, april) == ["budget_80"]
    spend[org.pk] = Decimal("100.00")
    assert _check(org, april) == ["budget_100"]

    assert [n.data["month"] for n in Notification.objects.for_organization(org)] == [
        "2025-04",
        "2025-04",
        "2025-03",
    ]


def test_raising_the_budget_rearms_only_the_alerts_that_no_longer_hold(org, spend):
    _set(org, "1000.00")
    spend[org.pk] = Decimal("1000.00")
    assert _check(org) == ["budget_100"]

    budget = _set(org, "1200.00")  # 83%: past 80% still, no longer past 100%
    assert (budget.alerted_80_for, budget.alerted_100_for) == (dt.date(2025, 3, 1), None)
    assert _check(org) == []  # the 80% alert still holds: not sent again

    spend[org.pk] = Decimal("1200.00")
    assert _check(org) == ["budget_100"]
    assert _kinds(org) == ["budget_100", "budget_100"]


def test_lowering_the_budget_below_the_spend_alerts_at_once(org, spend):
    _set(org, "5000.00")
    spend[org.pk] = Decimal("4100.00")

    _set(org, "4000.00")

    assert _kinds(org) == ["budget_100"]


def test_usage_reversed_below_a_threshold_rearms_it(org, spend):
    _set(org, "1000.00", hard_stop=True)
    spend[org.pk] = Decimal("1001.00")
    assert _check(org) == ["budget_100"]
    assert budgets.state_of(org, MARCH).stopped

    spend[org.pk] = Decimal("990.00")  # a correction reversed some usage
    assert _check(org) == []

    state = budgets.state_of(org, MARCH)
    assert (state.alerted(80), state.alerted(100), state.stopped) == (True, False, False)


def test_a_zero_budget_is_used_up_from_the_first_day(org, spend):
    _set(org, "0.00", hard_stop=True)

    assert _kinds(org) == ["budget_100"]
    assert budgets.state_of(org, MARCH).stopped


def test_a_budget_in_another_currency_than_the_plan_is_refused(org, spend):
    _set(org, "100.00")

    with pytest.raises(DomainError) as refused:
        budgets.set_budget(
            SYSTEM,
            org,
            monthly_amount=Decimal(50),
            currency="USD",
            hard_stop=True,
            exempt_public_service=True,
            now=MARCH,
        )

    assert (refused.value.code, refused.value.field) == ("currency_mismatch", "currency")
    assert "must be in CNY" in str(refused.value.detail)
    budget = budgets.budget_of(org)
    assert budget is not None
    assert (budget.monthly_amount, budget.currency, budget.hard_stop) == (
        Decimal("100.00"),
        "CNY",
        False,
    )
    assert AuditEntry.objects.for_organization(org).filter(action="billing.set_budget").count() == 1


def test_a_usd_plan_takes_a_usd_budget(db, spend):
    Plan.objects.create(code="global", name="Global", currency="USD")
    organization = make_organization(plan="global")

    budget = budgets.set_budget(
        SYSTEM,
        organization,
        monthly_amount=Decimal(50),
        hard_stop=False,
        exempt_public_service=True,
        now=MARCH,
    )

    assert budget.currency == "USD"
    with pytest.raises(DomainError, match="must be in USD"):
        budgets.set_budget(
            SYSTEM,
            organization,
            monthly_amount=Decimal(50),
            currency="CNY",
            hard_stop=False,
            exempt_public_service=True,
            now=MARCH,
        )


def test_setting_the_budget_is_audited_and_a_same_value_put_is_not(org, spend):
    _set(org, "100.00")
    _set(org, "250.50", hard_stop=True)
    _set(org, "250.50", hard_stop=True)

    entries = AuditEntry.objects.for_organization(org).filter(action="billing.set_budget")
    assert [(e.before, e.after) for e in entries.order_by("created_at", "id")] == [
        (
            None,
            {
                "monthly_amount": "100.00",
                "currency": "CNY",
                "hard_stop": False,
                "exempt_public_service": True,
            },
        ),
        (
            {
                "monthly_amount": "100.00",
                "currency": "CNY",
                "hard_stop": False,
                "exempt_public_service": True,
            },
            {
                "monthly_amount": "250.50",
                "currency": "CNY",
                "hard_stop": True,
                "exempt_public_service": True,
            },
        ),
    ]


def test_a_second_organizations_budget_never_affects_the_first(org, spend):
    other = make_organization(plan="trial")
    _set(org, "1000.00")
    _set(other, "10.00", hard_stop=True)
    spend[org.pk] = Decimal("500.00")
    spend[other.pk] = Decimal("900.00")

    result = budgets.check_all_budgets(MARCH)

    assert (result.checked, result.alerts, result.failed) == (2, 1, 0)
    assert _kinds(org) == []
    assert _kinds(other) == ["budget_100"]
    assert budgets.state_of(other, MARCH).stopped
    assert not budgets.state_of(org, MARCH).stopped


def test_the_periodic_check_goes_on_past_an_organization_it_cannot_rate(org, spend, monkeypatch):
    broken = make_organization(plan="trial")
    _set(org, "100.00")
    _set(broken, "100.00")
    spend[org.pk] = Decimal("90.00")

    def spend_to_date(organization, now=None):
        if organization.pk == broken.pk:
            raise RuntimeError("cannot rate")
        return spend[organization.pk]

    monkeypatch.setattr(statements, "spend_to_date", spend_to_date)

    result = budgets.check_all_budgets(MARCH)

    assert (result.checked, result.alerts, result.failed) == (1, 1, 1)
    assert _kinds(org) == ["budget_80"]


def test_new_usage_queues_a_check_at_most_once_a_minute(org, spend, monkeypatch):
    """The Celery dispatch is recorded instead of sent; the throttle is the real cache."""
    queued: list[str] = []
    monkeypatch.setattr(budgets.check_budget_task, "delay", queued.append)
    without_budget = make_organization(plan="trial")
    _set(org, "100.00")

    assert budgets.check_soon(org.pk)
    assert not budgets.check_soon(org.pk)
    assert not budgets.check_soon(without_budget.pk)

    assert queued == [str(org.pk)]


def test_a_budget_is_one_row_per_organization(org, spend):
    _set(org, "100.00")
    _set(org, "200.00")

    assert Budget.objects.for_organization(org).count() == 1


# --- End to end: real usage records, rated by the real rating ---------------------------------


def test_real_usage_rated_crosses_the_thresholds(org, django_capture_on_commit_callbacks):
    """No stand-in: usage records in the ledger, the trial plan from the migration (10 GPU-hours
    included, then 25.00 CNY a GPU-hour, 6% tax), `statements.spend_to_date` rating them."""
    _set(org, "200.00")
    march_5 = local("Asia/Shanghai", 2025, 3, 5, 10)
    usage(org, "gpu_seconds", 10 * 3600, march_5, gpu_class="l4")  # the included 10 hours
    usage(org, "gpu_seconds", 4 * 3600, march_5, gpu_class="l4")  # 4 h: 100.00 + 6.00 tax

    assert statements.spend_to_date(org, MARCH) == Decimal("106.00")
    assert _check(org) == []  # 53%

    usage(org, "gpu_seconds", 2.5 * 3600, march_5, gpu_class="l4")  # 6.5 h: 172.25 with tax
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(org) == ["budget_80"]
        usage(org, "gpu_seconds", 1.5 * 3600, march_5, gpu_class="l4")  # 8 h: 212.00
        assert _check(org) == ["budget_100"]

    assert [n.data["spent"] for n in Notification.objects.for_organization(org)] == [
        "212.00",
        "172.25",
    ]
    assert [message.subject for message in mail.outbox] == [
        f"[{org.name}] Budget 80% used",
        f"[{org.name}] Budget used up",
    ]


def test_the_beat_runs_the_periodic_check_every_15_minutes_and_the_tasks_check(org, spend):
    """The task bodies run in this process (no broker): what a worker would run."""
    entry = app.conf.beat_schedule["billing.check_budgets"]
    assert entry["task"] == budgets.check_budgets_task.name == "billing.check_budgets"
    assert entry["schedule"].minute == {0, 15, 30, 45}
    _set(org, "100.00")
    spend[org.pk] = Decimal("80.00")

    assert budgets.check_budgets_task() == {"checked": 1, "alerts": 1, "failed": 0}
    spend[org.pk] = Decimal("100.00")
    assert budgets.check_budget_task(str(org.pk)) == ["budget_100"]
    Organization.objects.filter(pk=org.pk).update(is_active=False)
    assert budgets.check_budget_task(str(org.pk)) == []
