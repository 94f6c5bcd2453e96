"""Rollup runs at once, with ingestion going on, never lose an event.

Real: `rollups.run` in threads, each on its own database connection, against PostgreSQL's
advisory locks and READ COMMITTED snapshots; events written and marked as ingestion writes them
(rows and marks committed together) by other threads. Simulated: where a run stops — a hook on
`rollups.read_hours` holds run A after it read the raw rows and before it writes.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.utils import timezone

from ironbowl.analytics import rollups
from ironbowl.analytics.models import Event, Rollup, RollupMark
from tenants.models import Organization
from tests.races import in_thread, require_row_locks

H = dt.datetime(2025, 6, 3, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai, the organizations' zone
MIDNIGHT = dt.datetime(2025, 6, 2, 16, tzinfo=dt.UTC)
# The runs' clock: the same day, so the events are well within their retention (an hour older
# than that keeps what it counted from events, and would not count the late ones).
NOW = H + dt.timedelta(hours=6)
WAIT_S = 120


def _finish(thread: threading.Thread, out: dict[str, Any]) -> Any:
    thread.join(timeout=WAIT_S)
    assert not thread.is_alive(), f"{thread.name} did not finish"
    if "error" in out:
        raise out["error"]
    return out["result"]


def _visits(organization: Organization) -> dict[tuple[str, dt.datetime], int]:
    rows = Rollup.objects.for_organization(organization).filter(employment_id=None)
    return {(row.grain, row.bucket): row.visits for row in rows}


def _raw_visits(organization: Organization, start: dt.datetime, end: dt.datetime) -> int:
    events = Event.objects.for_organization(organization)
    return events.filter(type="visit", occurred_at__gte=start, occurred_at__lt=end).count()


def _visits_at(at: dt.datetime, count: int) -> list[dict[str, Any]]:
    return [{"type": "visit", "occurred_at": at}] * count


@pytest.mark.django_db(transaction=True)
def test_events_written_while_a_run_holds_their_day_are_counted_by_the_next(
    org_a, org_b, events, monkeypatch
):
    """Run A has read hour H's marks and its 50 visits, and waits. Meanwhile 30 more visits of H
    are written and marked, and run B runs: it skips the day A holds (without waiting for it)
    and rolls up another organization's day. A writes what it read (50) and deletes only the
    marks it read; the 30 visits' mark stays, and the next run counts all 80."""
    require_row_locks()
    events(org_a, _visits_at(H, 50))
    events(org_b, _visits_at(H, 7))
    a_read, b_done = threading.Event(), threading.Event()
    read = rollups.read_hours

    def read_then_wait(organization, hours, now):
        counted = read(organization, hours, now)
        if threading.current_thread().name == "A" and organization.pk == org_a.pk:
            a_read.set()
            assert b_done.wait(timeout=WAIT_S), "run B never finished"
        return counted

    monkeypatch.setattr(rollups, "read_hours", read_then_wait)
    # A takes org_a's day first: its marks are the oldest.
    RollupMark.objects.for_organization(org_b).update(marked_at=timezone.now() + dt.timedelta(1))
    a, a_out = in_thread("A", lambda: rollups.run(limit=1, now=NOW))
    a.start()
    assert a_read.wait(timeout=WAIT_S), "run A never read its hour"

    events(org_a, _visits_at(H + dt.timedelta(minutes=30), 30))
    b, b_out = in_thread("B", lambda: rollups.run(now=NOW))
    b.start()
    try:
        b_report = _finish(b, b_out)
    finally:
        b_done.set()
    a_report = _finish(a, a_out)

    assert (a_report.groups, a_report.skipped) == (1, 0)
    assert (b_report.groups, b_report.skipped) == (1, 1)
    assert _visits(org_b) == {("hour", H): 7, ("day", MIDNIGHT): 7}
    assert _visits(org_a) == {("hour", H): 50, ("day", MIDNIGHT): 50}  # what A saw
    assert RollupMark.objects.for_organization(org_a).count() == 1  # the 30 visits' mark

    assert rollups.run(now=NOW).groups == 1
    assert _visits(org_a) == {("hour", H): 80, ("day", MIDNIGHT): 80}
    assert _raw_visits(org_a, H, H + dt.timedelta(hours=1)) == 80
    assert not RollupMark.objects.for_organization(org_a).exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_racing_with_ingestion_end_equal_to_the_raw_events(org_a, events):
    """Two threads roll up over and over while a third writes 40 batches of visits into four
    hours of one day, so that runs collide on that day. Whatever the interleaving, once
    ingestion has stopped and one more run has gone, every hour and the day equal a count of
    the raw events."""
    require_row_locks()
    hours = [H + dt.timedelta(hours=n) for n in range(4)]
    writing = threading.Event()
    writing.set()

    def ingest() -> int:
        try:
            for batch in range(40):
                at = hours[batch % 4] + dt.timedelta(minutes=batch)
                events(org_a, _visits_at(at, 1 + batch % 5))
        finally:
            writing.clear()
        return 40

    def roll_up_while_writing() -> int:
        runs = 0
        while writing.is_set() or runs < 2:
            rollups.run(now=NOW)
            runs += 1
        return runs

    threads = [
        in_thread("ingest", ingest),
        in_thread("run-1", roll_up_while_writing),
        in_thread("run-2", roll_up_while_writing),
    ]
    for thread, _out in threads:
        thread.start()
    for thread, out in threads:
        _finish(thread, out)

    rollups.run(now=NOW)
    visits = _visits(org_a)
    for hour in hours:
        assert visits[("hour", hour)] == _raw_visits(org_a, hour, hour + dt.timedelta(hours=1))
    day_end = MIDNIGHT + dt.timedelta(days=1)
    assert visits[("day", MIDNIGHT)] == _raw_visits(org_a, MIDNIGHT, day_end) == 120
    assert not RollupMark.objects.for_organization(org_a).exists()
