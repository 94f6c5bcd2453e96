"""Retention: raw events go when the plan says, whole days at a time on PostgreSQL.

Real: the database the suite runs on — on PostgreSQL the partitions are real tables created and
dropped with DDL; on SQLite rows are deleted. The clock is the only thing chosen: `enforce`
is given a `now` a plan's retention later.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from ironbowl.analytics import partitions, retention
from ironbowl.analytics.ingestion import ingest
from ironbowl.analytics.models import Event
from tests import factories


@pytest.fixture(autouse=True)
def _partitions_forgotten():
    partitions.forget()
    yield
    partitions.forget()


def visit(event_id: str, when: dt.datetime) -> dict[str, str]:
    return {"id": event_id, "type": "visit", "occurred_at": when.isoformat()}


def test_each_plan_keeps_events_for_its_own_period(db):
    """A trial organization (30 days) and a standard one (90 days) send events the same day;
    60 days later the trial's are gone and the standard's kept; 100 days later both are."""
    trial = factories.OrganizationFactory(plan="trial")
    standard = factories.OrganizationFactory(plan="standard")
    sent = timezone.now() - dt.timedelta(hours=1)
    for org in (trial, standard):
        assert ingest(org, [visit("a", sent), visit("b", sent)]).accepted == 2

    report = retention.enforce(sent + dt.timedelta(days=60))
    assert Event.objects.for_organization(trial).count() == 0
    assert Event.objects.for_organization(standard).count() == 2
    if connection.vendor == "postgresql":
        assert partitions.day_table(30, sent.astimezone(dt.UTC).date()) in report.partitions_dropped
        assert report.rows_deleted == 0
    else:
        assert report.rows_deleted == 2

    retention.enforce(sent + dt.timedelta(days=100))
    assert Event.objects.for_organization(standard).count() == 0


def test_partitions_are_made_a_week_ahead(db):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no partitions; PostgreSQL (CI) runs this")
    today = timezone.now().astimezone(dt.UTC).date()
    retention.enforce()
    names = partitions.existing()
    for offset in range(partitions.DAYS_AHEAD + 1):
        assert partitions.day_table(90, today + dt.timedelta(days=offset)) in names
    assert retention.enforce().partitions_made == 0  # again: nothing more to make


def test_a_partition_dropped_behind_the_process_back_is_made_again(db):
    """Ingestion believes in partitions it has seen; when one is gone it looks again."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no partitions; PostgreSQL (CI) runs this")
    org = factories.OrganizationFactory(plan="trial")
    now = timezone.now()
    assert ingest(org, [visit("a", now)]).accepted == 1
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{partitions.day_table(30, now.astimezone(dt.UTC).date())}"')
    assert ingest(org, [visit("b", now)]).accepted == 1
