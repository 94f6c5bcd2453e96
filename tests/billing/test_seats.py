"""The seat-day ledger: one record per hire per local day it was active at any time, read from
its status history; append-only and idempotent; a seat increase mid-month is prorated by day; a
stopped hourly task is caught up from each hire's last recorded day, and a close records the
month's missing days; a reversed seat-day (through `usage.reverse`) nets to zero.

Real: the services and the database (PostgreSQL's unique index in the race test, skipped on
SQLite, which has a single writer); hires' histories are EmploymentTransition rows as the
lifecycle service writes them. Simulated: the clock (`now` passed in; for the Celery task,
`timezone.now` fixed), and the transitions' times (written directly rather than waiting for days
to pass).
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from avatars.models import Employment
from ironbowl.analytics import usage
from ironbowl.analytics.models import UsageRecord, UsageType
from ironbowl.billing import rating, seats, statements, tasks
from ironbowl.billing.models import LineKind, StatementLine
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tests.billing.conftest import hire, local, make_organization
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock

pytestmark = pytest.mark.django_db

SH, NY = "Asia/Shanghai", "America/New_York"


def seat_days(organization):
    return list(
        UsageRecord.objects.for_organization(organization)
        .filter(usage_type=UsageType.SEAT_DAYS)
        .order_by("occurred_at", "source_id")
        .values_list("id", "source_id", "quantity", "unit_price", "occurred_at")
    )


def test_each_active_local_day_is_one_record_at_its_local_midnight(shanghai):
    employment = hire(shanghai, seats=3, rate="2500.00")

    appended = seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 2))

    assert appended == 2
    assert seat_days(shanghai) == [
        (
            seat_days(shanghai)[0][0],
            f"seat:{employment.pk}:2024-03-01",
            Decimal(3),
            Decimal("2500.00"),
            local(SH, 2024, 3, 1),
        ),
        (
            seat_days(shanghai)[1][0],
            f"seat:{employment.pk}:2024-03-02",
            Decimal(3),
            Decimal("2500.00"),
            local(SH, 2024, 3, 2),
        ),
    ]
    assert seat_days(shanghai)[0][4] == dt.datetime(2024, 2, 29, 16, tzinfo=dt.UTC)


def test_the_status_history_decides_which_days_count(new_york):
    # Active on the 3rd at 23:30 (local), suspended on the 5th at 00:10, back on the 8th at
    # 23:59, terminated on the 9th at noon.
    employment = hire(
        new_york,
        active_since=local(NY, 2024, 3, 3, 23, 30),
        history=[
            (local(NY, 2024, 3, 5, 0, 10), "suspended"),
            (local(NY, 2024, 3, 8, 23, 59), "active"),
            (local(NY, 2024, 3, 9, 12), "terminated"),
        ],
    )

    seats.record_seat_days(new_york, dt.date(2024, 3, 1), dt.date(2024, 3, 12))

    days = [source.rsplit(":", 1)[1] for _id, source, *_rest in seat_days(new_york)]
    assert days == ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-08", "2024-03-09"]
    assert employment.status == "terminated"
    # The 10th is 23 hours long (DST starts); the records sit at each local midnight.
    assert [at.astimezone(dt.UTC).hour for *_rest, at in seat_days(new_york)] == [5, 5, 5, 5, 5]


def test_recording_again_appends_nothing_and_changes_nothing(shanghai):
    hire(shanghai)
    seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 10))
    before = seat_days(shanghai)
    Employment.objects.for_organization(shanghai).update(seats=5, rate=Decimal("1.00"))

    again = seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 10))

    assert again == 0
    assert seat_days(shanghai) == before


def test_a_seat_increase_mid_month_is_billed_by_the_day(shanghai):
    employment = hire(shanghai, seats=1, rate="3100.00")
    seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 15))
    Employment.objects.for_organization(shanghai).filter(pk=employment.pk).update(seats=3)
    seats.record_seat_days(shanghai, dt.date(2024, 3, 16), dt.date(2024, 3, 31))

    rated = rating.rate(shanghai, dt.date(2024, 3, 1))

    (line,) = [line for line in rated.lines if line.kind == LineKind.SEATS]
    assert line.used == 15 * 1 + 16 * 3
    assert line.amount == Decimal(63 * 100)  # 63 seat-days × 3,100 / 31


@pytest.mark.parametrize(
    ("first", "last", "code"),
    [
        (dt.date(2024, 3, 5), dt.date(2024, 3, 1), "bad_range"),
        (dt.date(2024, 3, 1), dt.date(2099, 1, 1), "day_not_over"),
        (dt.date(2020, 1, 1), dt.date(2024, 1, 1), "range_too_long"),
    ],
)
def test_a_bad_range_is_refused_and_writes_nothing(shanghai, first, last, code):
    hire(shanghai)

    with pytest.raises(DomainError) as refused:
        seats.record_seat_days(shanghai, first, last)

    assert refused.value.code == code
    assert seat_days(shanghai) == []


def test_today_is_not_recorded_until_it_is_over(shanghai):
    hire(shanghai)
    now = local(SH, 2024, 3, 10, 23, 59)

    with pytest.raises(DomainError):
        seats.record_seat_days(shanghai, dt.date(2024, 3, 10), dt.date(2024, 3, 10), now=now)
    recent = seats.record_recent_seat_days(shanghai, now)

    # Nothing recorded yet and no statement: from the first of the month to yesterday.
    assert recent == 9
    assert seat_days(shanghai)[0][1].endswith("2024-03-01")
    assert seat_days(shanghai)[-1][1].endswith("2024-03-09")


def test_a_change_of_time_zone_records_on_without_repeating_a_day(shanghai):
    """Days recorded at Shanghai's midnights, then the organization moves to New York: the same
    days now start 13 hours later, yet they are known by their source ids — the next runs and
    the month's close record only the days still missing (a lookup by time failed them all)."""
    hire(shanghai)
    seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 10))
    type(shanghai).objects.filter(pk=shanghai.pk).update(time_zone=NY)
    shanghai.refresh_from_db()

    added = seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 12))

    assert added == 2  # the 11th and the 12th
    days = [source for _id, source, *_rest in seat_days(shanghai)]
    assert len(days) == len(set(days)) == 12


def test_a_run_missed_for_ten_days_is_caught_up_and_each_day_recorded_once(shanghai):
    """The hourly task stopped after recording the 5th; when it runs again on the 16th, every
    day since is recorded, once — also for a hire that became active during the outage."""
    veteran = hire(shanghai)
    seats.record_recent_seat_days(shanghai, local(SH, 2024, 3, 6, 1))
    newcomer = hire(shanghai, active_since=local(SH, 2024, 3, 12, 15))

    caught_up = seats.record_recent_seat_days(shanghai, local(SH, 2024, 3, 16, 1))
    again = seats.record_recent_seat_days(shanghai, local(SH, 2024, 3, 16, 2))

    assert (caught_up, again) == (10 + 4, 0)  # the 6th to the 15th, and the 12th to the 15th
    days = [source for _id, source, *_rest in seat_days(shanghai)]
    assert len(days) == len(set(days))  # each day once
    assert [d for d in days if str(veteran.pk) in d][-11:] == [
        seats.seat_source_id(veteran.pk, dt.date(2024, 3, day)) for day in range(5, 16)
    ]
    assert [d for d in days if str(newcomer.pk) in d] == [
        seats.seat_source_id(newcomer.pk, dt.date(2024, 3, day)) for day in range(12, 16)
    ]


def test_catching_up_starts_after_the_last_closed_month(shanghai):
    """A closed month recorded its days when it closed: a hire whose active history reaches
    further back is caught up from the month after the last closed one, not from its start."""
    hire(shanghai, seats=1)
    statements.close(shanghai, dt.date(2024, 2, 1), now=local(SH, 2024, 3, 3))
    february = len(seat_days(shanghai))
    backdated = hire(shanghai, seats=2)  # active since 2022, recorded nowhere yet

    recorded = seats.record_recent_seat_days(shanghai, local(SH, 2024, 3, 10, 1))

    assert february == 29  # the close recorded February
    assert recorded == 9 + 9  # March 1st-9th, of each
    backdated_days = [row for row in seat_days(shanghai) if str(backdated.pk) in row[1]]
    assert backdated_days[0][1].endswith("2024-03-01")
    assert len(backdated_days) == 9


def test_closing_records_the_months_seat_days_the_task_missed(shanghai):
    """The hourly task died on the 20th; the close after the grace bills the whole month."""
    employment = hire(shanghai, seats=2, rate="3100.00")
    seats.record_recent_seat_days(shanghai, local(SH, 2024, 3, 20, 1))

    closed = statements.close(shanghai, dt.date(2024, 3, 1), now=local(SH, 2024, 4, 3))

    (line,) = StatementLine.objects.for_organization(shanghai).filter(
        statement=closed, kind=LineKind.SEATS
    )
    assert (line.employment_id, line.used, line.amount) == (employment.pk, 62, Decimal(6200))
    assert seat_days(shanghai)[-1][1].endswith("2024-03-31")
    assert max(pk for pk, *_rest in seat_days(shanghai)) <= closed.ledger_watermark


def test_a_reversed_seat_day_rates_to_nothing_and_the_month_still_rates(shanghai):
    """A correction through `usage.reverse` carries the day's rate, so the day nets to zero and
    the statement rates, refreshes and closes."""
    employment = hire(shanghai, seats=2, rate="3100.00")
    seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    tenth = UsageRecord.objects.for_organization(shanghai).get(
        source_id=seats.seat_source_id(employment.pk, dt.date(2024, 3, 10))
    )

    reversal = usage.reverse(shanghai, tenth, "Not on duty that day.", SYSTEM)
    refreshed = statements.refresh(shanghai, dt.date(2024, 3, 1), now=local(SH, 2024, 4, 3))
    closed = statements.close(shanghai, dt.date(2024, 3, 1), now=local(SH, 2024, 4, 3))

    assert (reversal.unit_price, reversal.quantity) == (Decimal("3100.00"), -2)
    for statement in (refreshed, closed):
        (line,) = StatementLine.objects.for_organization(shanghai).filter(
            statement=statement, kind=LineKind.SEATS
        )
        assert (line.used, line.amount) == (60, Decimal(6000))  # 30 days × 2 seats × 100


def test_the_hourly_task_records_every_organization_and_survives_a_bad_one(shanghai, monkeypatch):
    hire(shanghai)
    other = make_organization(time_zone=NY)
    hire(other)
    broken = make_organization()
    hire(broken)
    # A time zone the database holds but zoneinfo does not know: that organization fails.
    type(broken).objects.filter(pk=broken.pk).update(time_zone="Mars/Olympus_Mons")
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2024, 3, 5, 12, tzinfo=dt.UTC))

    outcome = tasks.record_seat_days()

    # From the first of the month to yesterday (the 4th, in both zones).
    assert outcome == {"done": 2 * 4, "failed": 1}
    assert len(seat_days(shanghai)) == len(seat_days(other)) == 4


@pytest.mark.django_db(transaction=True)
def test_a_racing_run_counts_only_the_days_it_recorded(shanghai):
    """PostgreSQL: a run that meets a day another run is recording (not committed yet) waits,
    then leaves that day to it: it counts only the days it inserted."""
    require_row_locks()
    hire(shanghai)
    ready, commit = threading.Event(), threading.Event()

    def record_and_hold():
        with transaction.atomic():
            seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 1))
            ready.set()
            commit.wait(timeout=60)

    holder, holder_out = in_thread("holder", record_and_hold)
    racer, racer_out = in_thread(
        "racer",
        lambda: seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 3)),
    )
    holder.start()
    assert ready.wait(timeout=60)
    racer.start()
    assert someone_waits_for_a_lock()
    commit.set()
    holder.join(timeout=60)
    racer.join(timeout=60)

    assert "error" not in holder_out
    assert racer_out["result"] == 2
    assert len(seat_days(shanghai)) == 3
