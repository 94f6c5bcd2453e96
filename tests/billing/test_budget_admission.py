"""The budget's hard stop in admission: past 100% no new non-essential workload is admitted;
24/7 public service is when exempt; running and requeued work goes on; raising the budget or a
new month lets held work in; another organization's budget holds nothing of this one's.

Real: the database, inference's admission pass with the gate the settings name, the budget
service, and the month's spend rated by the real rating (organizations on the standard plan
for the whole month spend its platform fee, 4,800.00 CNY + 6% tax = 5,088.00 CNY, before any
usage). Simulated: workers (none run; admitted work waits for one the pool may start).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inference import admission, services
from inference.lifecycle import requeue, transition
from inference.models import Priority, WorkerPool, Workload, WorkloadState
from ironbowl.billing import budgets
from ironbowl.billing.admission import BudgetGate
from tenants.audit import SYSTEM
from tenants.models import Organization
from tests.billing.conftest import make_organization


@pytest.fixture
def pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="render-l4",
        pipeline="render",
        gpu_class="l4",
        gpus_per_worker=1,
        slots_per_worker=4,
        image="registry.example/ironbowl-worker:1",
        maximum=4,
    )


@pytest.fixture
def org(db) -> Organization:
    return make_organization(plan="standard")


def _budget(organization, amount: str, *, hard_stop=True, exempt=True):
    return budgets.set_budget(
        SYSTEM,
        organization,
        monthly_amount=Decimal(amount),
        hard_stop=hard_stop,
        exempt_public_service=exempt,
    )


def _render(organization, pool) -> Workload:
    workload, _created = services.submit(organization, kind="render", spec={}, pool_name=pool.name)
    return workload


def _public_service(organization, pool) -> Workload:
    workload, _created = services.submit(
        organization, kind="live", spec={}, pool_name=pool.name, public_service=True
    )
    assert workload.priority == Priority.PUBLIC_SERVICE
    return workload


def _fresh(workload: Workload) -> Workload:
    workload.refresh_from_db()
    return workload


def test_past_the_budget_a_render_waits_and_public_service_is_admitted(org, pool):
    _budget(org, "5000.00")  # the month's 5,088.00 is past it: stopped at once
    render = _render(org, pool)
    public = _public_service(org, pool)

    admission.admit()

    render, public = _fresh(render), _fresh(public)
    assert (render.state, render.reason_code) == ("queued", "budget_exhausted")
    assert render.reason == (
        "Waiting: this month's budget is used up and it stops new work. It starts when the "
        "budget is raised or the month ends."
    )
    assert public.state == "admitted"


def test_without_the_exemption_public_service_waits_too(org, pool):
    _budget(org, "5000.00", exempt=False)
    public = _public_service(org, pool)

    admission.admit()

    assert (_fresh(public).state, public.reason_code) == ("queued", "budget_exhausted")


def test_work_admitted_before_the_stop_goes_on(org, pool):
    admitted = _render(org, pool)
    requeued = _render(org, pool)
    admission.admit()
    assert _fresh(admitted).state == _fresh(requeued).state == "admitted"
    # Preempted after it was admitted: back in the queue, but not new work.
    assert requeue(requeued, "preempted", "Preempted.", counts_as_failure=False)

    _budget(org, "5000.00")
    new = _render(org, pool)
    admission.admit()

    assert _fresh(admitted).state == "admitted"  # nothing stops it
    assert _fresh(requeued).state == "admitted"
    assert (_fresh(new).state, new.reason_code) == ("queued", "budget_exhausted")


def test_raising_the_budget_lets_held_work_in(org, pool):
    _budget(org, "5000.00")
    render = _render(org, pool)
    admission.admit()
    assert _fresh(render).state == "queued"

    _budget(org, "6000.00")  # 5,088.00 of 6,000.00: 85%, no longer used up
    admission.admit()

    assert _fresh(render).state == "admitted"
    assert budgets.state_of(org).alerted(80)


def test_a_new_month_lifts_the_stop(org, pool):
    """The pass's clock is put at the organization's next month (the stored 100% alert is
    this month's), instead of waiting for the month to end."""
    _budget(org, "5000.00")
    render = _render(org, pool)
    this_month = budgets.local_month(org, timezone.now())
    next_month = (this_month + dt.timedelta(days=32)).replace(day=1)
    midnight = dt.datetime.combine(
        next_month, dt.time(0, 0, 1), tzinfo=zoneinfo.ZoneInfo(org.time_zone)
    )

    assert BudgetGate(timezone.now())(org, render) is not None
    assert BudgetGate(midnight)(org, render) is None


def test_past_the_budget_without_hard_stop_work_goes_on(org, pool):
    _budget(org, "5000.00", hard_stop=False)
    render = _render(org, pool)

    admission.admit()

    assert _fresh(render).state == "admitted"
    assert budgets.state_of(org).alerted(100)


def test_another_organizations_stop_holds_nothing_of_this_one(org, pool):
    other = make_organization(plan="standard")
    _budget(other, "10.00")
    _budget(org, "100000.00")
    theirs, ours = _render(other, pool), _render(org, pool)

    admission.admit()

    assert (_fresh(theirs).state, theirs.reason_code) == ("queued", "budget_exhausted")
    assert _fresh(ours).state == "admitted"


def test_a_pass_reads_the_budgets_once_and_rates_nothing(org, pool):
    other = make_organization(plan="standard")
    _budget(org, "5000.00")
    _budget(other, "5000.00")
    for organization in (org, other):
        for _ in range(3):
            _render(organization, pool)
    _public_service(org, pool)

    with CaptureQueriesContext(connection) as queries:
        result = admission.admit()

    assert len(result.admitted) == 1  # the public service
    assert set(result.waiting.values()) == {"budget_exhausted"}
    sql = [query["sql"] for query in queries.captured_queries]
    assert sum('"billing_budget"' in statement for statement in sql) == 1
    assert not any('"analytics_usagerecord"' in statement for statement in sql)


def test_a_held_workload_is_not_rewritten_on_every_pass(org, pool):
    _budget(org, "5000.00")
    _render(org, pool)
    admission.admit()

    assert admission.admit().writes == 0
    assert Workload.objects.for_organization(org).get().state == WorkloadState.QUEUED


def test_a_workload_that_ran_before_is_not_new(org, pool):
    """The gate alone: a workload with an admission behind it passes, whatever the budget."""
    _budget(org, "5000.00")
    workload = _render(org, pool)
    gate = BudgetGate(timezone.now())
    assert gate(org, workload) is not None

    transition(workload, WorkloadState.ADMITTED)

    assert gate(org, workload) is None
