"""The budget's hard stop in admission: past 100% no new non-essential workload is admitted;
24/7 public service — the work of a hire on an active around-the-clock schedule, as dunning
counts it — is when exempt, and a workload's own `public_service` flag exempts nothing; running
and requeued work goes on; raising the budget or a new month lets held work in; another
organization's budget holds nothing of this one's.

Real: the database, inference's admission pass with the gate the settings name, the budget
service, the month's spend rated by the real rating (organizations on the standard plan for the
whole month spend its platform fee, 4,800.00 CNY + 6% tax = 5,088.00 CNY, before any usage),
the spec the duty machine writes for a shift's stream (`scheduling.duty.live_spec`), and the
workloads API a caller posts `public_service` to. Simulated: workers (none run; admitted work
waits for one the pool may start), and the duty tick (its stream is submitted here, with the
same arguments it passes).
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
from scheduling import duty
from scheduling.models import Schedule, StationKind
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import make_organization
from tests.scheduling import duty_world


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


def _public_service(organization, pool, spec=None) -> Workload:
    """What any caller of the workloads service may ask for: a live workload it calls 24/7
    public service."""
    workload, _created = services.submit(
        organization, kind="live", spec=spec or {}, pool_name=pool.name, public_service=True
    )
    assert workload.priority == Priority.PUBLIC_SERVICE
    return workload


def _around_the_clock(organization, *, always_on=True, kind=StationKind.LIVE_ROOM) -> Schedule:
    """A hire on a 24/7 schedule at a station (or, `always_on=False`, an evening one)."""
    fields = {"rrule": "", "start_time": None, "duration_minutes": None} if always_on else {}
    return duty_world.schedule(
        duty_world.hire(organization),
        duty_world.station(organization, kind),
        always_on=always_on,
        **fields,
    )


def _stream(plan: Schedule, pool) -> Workload:
    """The live workload the duty machine submits for one of the schedule's shifts: the spec it
    writes, submitted by the platform."""
    now = timezone.now()
    shift = duty_world.shift(plan, now, minutes=24 * 60)
    workload, _created = services.submit(
        plan.organization,
        kind="live",
        spec=duty.live_spec(shift, now),
        pool_name=pool.name,
        idempotency_key=f"shift:{shift.pk}:1",
        platform=True,
    )
    return workload


def _session(plan: Schedule, pool, station=None, *, platform: bool = True) -> Workload:
    """A conversation with the schedule's hire at its station: what a widget's visitor opens
    (the platform writes its spec), or with `platform=False` one a caller posts to the API."""
    spec = {"employment": str(plan.employment_id), "station": str((station or plan.station).pk)}
    workload, _created = services.submit(
        plan.organization, kind="session", spec=spec, pool_name=pool.name, platform=platform
    )
    return workload


def _fresh(workload: Workload) -> Workload:
    workload.refresh_from_db()
    return workload


def test_past_the_budget_a_render_waits_and_a_24_7_stream_is_admitted(org, pool):
    _budget(org, "5000.00")  # the month's 5,088.00 is past it: stopped at once
    render = _render(org, pool)
    stream = _stream(_around_the_clock(org), pool)

    admission.admit()

    render, stream = _fresh(render), _fresh(stream)
    assert (render.state, render.reason_code) == ("queued", "budget_exhausted")
    assert render.reason == (
        "Waiting: this month's budget is used up and it stops new work. It starts when the "
        "budget is raised or the month ends."
    )
    assert stream.state == "admitted"


def test_self_declared_public_service_of_a_non_essential_hire_waits(org, pool, client_for):
    """`public_service=true` posted on a live workload (any operator may) naming a hire on an
    evening schedule: past the budget it waits like any other new work."""
    evening = _around_the_clock(org, always_on=False)
    operator = client_for(factories.MembershipFactory(organization=org, role=Role.OPERATOR))
    _budget(org, "5000.00")
    answer = operator.post(
        f"/api/v1/orgs/{org.slug}/workloads/",
        {
            "kind": "live",
            "pool": pool.name,
            "public_service": True,
            "spec": {"employment": str(evening.employment_id), "station": str(evening.station_id)},
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    assert answer.json()["priority"] == Priority.PUBLIC_SERVICE

    admission.admit()

    workload = Workload.objects.for_organization(org).get(pk=answer.json()["id"])
    assert (workload.state, workload.reason_code) == ("queued", "budget_exhausted")


def test_a_spec_naming_an_essential_hire_exempts_only_the_platforms_own_work(org, pool):
    """A caller's live workload (however flagged), session or render naming the 24/7 hire and
    its station waits; the platform's stream of that hire's shift, and a session the platform
    opens at its station, are admitted; a session with that hire at another station waits."""
    plan = _around_the_clock(org)
    named = {"employment": str(plan.employment_id), "station": str(plan.station_id)}
    _budget(org, "5000.00")
    declared = _public_service(org, pool, named)
    render, _created = services.submit(org, kind="render", spec=named, pool_name=pool.name)
    elsewhere = _session(plan, pool, station=duty_world.station(org, StationKind.WEB_WIDGET))
    posted = _session(plan, pool, platform=False)
    stream, session = _stream(plan, pool), _session(plan, pool)

    admission.admit()

    for held in (declared, render, elsewhere, posted):
        assert (_fresh(held).state, held.reason_code) == ("queued", "budget_exhausted")
    assert _fresh(stream).state == _fresh(session).state == "admitted"


def test_a_24_7_schedule_switched_off_is_no_longer_exempt(org, pool):
    plan = _around_the_clock(org)
    Schedule.objects.for_organization(org).filter(pk=plan.pk).update(is_active=False)
    _budget(org, "5000.00")
    stream = _stream(plan, pool)

    admission.admit()

    assert (_fresh(stream).state, stream.reason_code) == ("queued", "budget_exhausted")


def test_without_the_exemption_public_service_waits_too(org, pool):
    _budget(org, "5000.00", exempt=False)
    stream = _stream(_around_the_clock(org), pool)

    admission.admit()

    assert (_fresh(stream).state, stream.reason_code) == ("queued", "budget_exhausted")


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
    _stream(_around_the_clock(org), pool)

    with CaptureQueriesContext(connection) as queries:
        result = admission.admit()

    assert len(result.admitted) == 1  # the 24/7 stream
    assert set(result.waiting.values()) == {"budget_exhausted"}
    sql = [query["sql"] for query in queries.captured_queries]
    assert sum('"billing_budget"' in statement for statement in sql) == 1
    # The 24/7 schedules: once, for the one organization with platform-written work queued.
    assert sum('"scheduling_schedule"' in statement for statement in sql) == 1
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
