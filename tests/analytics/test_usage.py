"""Usage reports become usage records exactly once, attributed from their workload's spec; the
ledger is append-only and corrected by reversals.

Real: the conversion and reversal services, the worker protocol over HTTP (one test), the
audit log, the cache holding the sweep's floor, the database the suite runs on. Simulated:
usage reports are mostly stored directly, as the protocol stores them, without the signal that
would convert them at once (so the sweep has something to find); the worker in the HTTP test is
the test client, its cluster a fake backend.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from inference import contracts
from inference.models import UsageReport
from ironbowl.analytics import marks, usage
from ironbowl.analytics.models import ConvertedUsageReport, RollupMark, UsageRecord
from tenants.audit import SYSTEM
from tenants.errors import ConflictError, DomainError
from tenants.models import AuditEntry
from tenants.scoping import AppendOnlyError
from tests.analytics import usage_world as world
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker


def records(organization) -> dict[str, tuple]:
    return {
        r.source_id: (
            r.usage_type,
            r.quantity,
            r.gpu_class,
            r.employment_id,
            r.station_id,
            r.workload_id,
            r.occurred_at,
        )
        for r in UsageRecord.objects.for_organization(organization)
    }


def claimed() -> set[int]:
    return set(ConvertedUsageReport.objects.values_list("report_id", flat=True))


def test_a_report_becomes_one_record_per_quantity_attributed_from_its_spec(org_a):
    employment, station = world.hire(org_a)
    streamed = world.workload(
        org_a, {"employment": str(employment.pk), "station": str(station.pk), "shift": "x"}
    )
    report = world.report(streamed, gpu_seconds=30.25, stream_minutes=2.0, interactions=3)

    result = usage.convert_reports([report.pk])

    assert (result.converted, result.records) == (1, 3)
    attribution = ("l4", employment.pk, station.pk, streamed.pk, report.reported_at)
    assert records(org_a) == {
        f"usage-report:{report.pk}:gpu_seconds": ("gpu_seconds", Decimal("30.25"), *attribution),
        f"usage-report:{report.pk}:stream_minutes": (
            "stream_minutes",
            Decimal("2"),
            *attribution,
        ),
        f"usage-report:{report.pk}:interactions": ("interactions", Decimal("3"), *attribution),
    }
    assert claimed() == {report.pk}
    # GPU-seconds feed the rollups: the report's hour is marked stale.
    assert list(RollupMark.objects.for_organization(org_a).values_list("hour", flat=True)) == [
        marks.hour_of(report.reported_at)
    ]


def test_converting_again_by_either_path_writes_nothing_more(org_a):
    report = world.report(world.attributed_workload(org_a), gpu_seconds=12.0)
    usage.convert_reports([report.pk])
    before = (records(org_a), RollupMark.objects.for_organization(org_a).count())

    replayed = usage.convert_reports([report.pk])
    swept = usage.convert_pending()

    assert (replayed.converted, replayed.records, swept.converted) == (0, 0, 0)
    assert (records(org_a), RollupMark.objects.for_organization(org_a).count()) == before
    assert claimed() == {report.pk}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"employment": "not-an-id", "station": 42},
        {"employment": str(uuid.uuid4()), "station": str(uuid.uuid4())},
    ],
    ids=["names nothing", "names garbage", "names rows that do not exist"],
)
def test_a_report_whose_spec_names_nothing_of_the_organization_converts_unattributed(org_a, spec):
    report = world.report(world.workload(org_a, spec), rendered_seconds=61.5)

    usage.convert_reports([report.pk])

    (record,) = UsageRecord.objects.for_organization(org_a)
    assert (record.usage_type, record.quantity) == ("rendered_seconds", Decimal("61.5"))
    assert (record.employment_id, record.station_id) == (None, None)
    assert record.workload_id == report.workload_id


def test_another_organizations_employment_in_a_spec_is_not_attributed(org_a, org_b):
    """A spec is partly the API caller's: naming another organization's hire or station
    attributes nothing to it (and reveals nothing)."""
    employment_b, station_b = world.hire(org_b)
    spec = {"employment": str(employment_b.pk), "station": str(station_b.pk)}
    report = world.report(world.workload(org_a, spec), gpu_seconds=5.0)

    usage.convert_reports([report.pk])

    (record,) = UsageRecord.objects.for_organization(org_a)
    assert (record.employment_id, record.station_id) == (None, None)
    assert not UsageRecord.objects.for_organization(org_b).exists()


def test_a_report_with_nothing_billable_is_converted_without_records(org_a):
    report = world.report(world.attributed_workload(org_a), gpu_seconds=0.0000001)

    result = usage.convert_reports([report.pk])

    assert (result.converted, result.records) == (1, 0)
    assert not UsageRecord.objects.for_organization(org_a).exists()
    assert claimed() == {report.pk}
    assert usage.pending_reports() == []
    assert not RollupMark.objects.for_organization(org_a).exists()


def test_an_absurd_quantity_is_not_billed_and_the_rest_of_the_report_is(org_a):
    report = world.report(world.attributed_workload(org_a), gpu_seconds=1e300, stream_minutes=1)

    usage.convert_reports([report.pk])

    assert [r.usage_type for r in UsageRecord.objects.for_organization(org_a)] == ["stream_minutes"]
    assert claimed() == {report.pk}


@pytest.fixture
def placed(org_a):
    """A live workload of a hire at a station, placed on a registered (fake) worker."""
    employment, station = world.hire(org_a)
    spec = {"employment": str(employment.pk), "station": str(station.pk)}
    streamed = world.workload(org_a, spec)
    client, _token = place_on_new_worker(FakeBackend(), streamed, "live")
    return streamed, client, employment


def test_a_report_sent_by_a_worker_is_converted_once_it_commits(
    placed, org_a, django_capture_on_commit_callbacks
):
    streamed, client, employment = placed
    body = {
        "reports": [
            {
                "report_id": "usage-0001",
                "workload_id": str(streamed.pk),
                "attempt": streamed.attempts,
                "kind": "usage",
                "usage": {"gpu_seconds": 30.0, "stream_minutes": 0.5},
            }
        ]
    }

    for _attempt in range(2):  # a retried report (its reply was lost) counts once
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(contracts.REPORTS_PATH, body, format="json")
        assert response.status_code == 200, response.content

    stored = UsageReport.objects.for_organization(org_a).get()
    assert {
        source: (kind, quantity, employment_id)
        for source, (kind, quantity, _gpu, employment_id, *_rest) in records(org_a).items()
    } == {
        f"usage-report:{stored.pk}:gpu_seconds": ("gpu_seconds", Decimal(30), employment.pk),
        f"usage-report:{stored.pk}:stream_minutes": (
            "stream_minutes",
            Decimal("0.5"),
            employment.pk,
        ),
    }
    assert usage.pending_reports() == []


# --- The sweep ----------------------------------------------------------------------------------


def test_the_sweep_converts_reports_whose_signal_was_lost_oldest_first_in_bounded_runs(org_a):
    streamed = world.attributed_workload(org_a)
    reports = [world.report(streamed, gpu_seconds=float(n + 1)) for n in range(5)]

    first = usage.convert_pending(batch=2, max_batches=2)
    assert (first.converted, first.records) == (4, 4)
    assert claimed() == {report.pk for report in reports[:4]}

    second = usage.convert_pending(batch=2, max_batches=2)
    assert second.converted == 1
    assert claimed() == {report.pk for report in reports}
    assert sum(r.quantity for r in UsageRecord.objects.for_organization(org_a)) == Decimal(15)


def test_a_report_that_fails_to_convert_is_retried_by_the_next_sweep(org_a, monkeypatch):
    streamed = world.attributed_workload(org_a)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    bad, good = (world.report(streamed, gpu_seconds=1.0, reported_at=long_ago) for _ in "ab")
    quantities = usage._quantities

    def failing(report):
        if report.pk == bad.pk:
            raise DatabaseError("simulated: the database went away mid-report")
        return quantities(report)

    monkeypatch.setattr(usage, "_quantities", failing)
    first = usage.convert_pending()
    monkeypatch.setattr(usage, "_quantities", quantities)
    second = usage.convert_pending()

    assert (first.converted, first.failed) == (1, 1)
    assert (second.converted, second.failed) == (1, 0)
    assert claimed() == {bad.pk, good.pk}


def test_the_sweeps_floor_never_passes_a_recent_report_and_expires_within_the_hour(org_a):
    """The floor lets a sweep skip reports known converted. A report stored in the last
    minutes may still be invisible to the sweep (its transaction open), so the floor stays
    below it; and an hour after the floor was set, a sweep looks at every report again."""
    streamed = world.attributed_workload(org_a)
    now = timezone.now()
    settled = world.report(streamed, gpu_seconds=1.0, reported_at=now - dt.timedelta(hours=1))
    recent = world.report(streamed, gpu_seconds=2.0, reported_at=now - dt.timedelta(minutes=1))
    usage.convert_pending(now=now)
    before = records(org_a)
    # Simulate "not visible to that sweep": the claims vanish as if never written.
    ConvertedUsageReport.objects.filter(report_id__in=[settled.pk, recent.pk]).delete()

    usage.convert_pending(now=now + dt.timedelta(minutes=1))
    assert claimed() == {recent.pk}  # above the floor: found again
    usage.convert_pending(now=now + dt.timedelta(minutes=59))
    assert claimed() == {recent.pk}  # below the floor, within the hour: skipped

    usage.convert_pending(now=now + dt.timedelta(minutes=61))  # the floor has expired
    assert claimed() == {settled.pk, recent.pk}
    assert records(org_a) == before  # converting again wrote no second record


# --- Corrections --------------------------------------------------------------------------------


@pytest.fixture
def gpu_record(org_a) -> UsageRecord:
    report = world.report(world.attributed_workload(org_a), gpu_seconds=90.0)
    usage.convert_reports([report.pk])
    return UsageRecord.objects.for_organization(org_a).get()


def test_a_reversal_appends_the_opposite_record_and_audits_why(org_a, gpu_record):
    RollupMark.objects.for_organization(org_a).delete()

    reversal = usage.reverse(org_a, gpu_record, "  Billed twice by a worker bug. ", SYSTEM)

    assert (reversal.source_id, reversal.reverses_id) == (
        f"reversal:{gpu_record.pk}",
        gpu_record.pk,
    )
    assert (reversal.usage_type, reversal.quantity) == ("gpu_seconds", Decimal(-90))
    same = ("gpu_class", "employment_id", "station_id", "workload_id", "occurred_at")
    assert all(getattr(reversal, field) == getattr(gpu_record, field) for field in same)
    rows = UsageRecord.objects.for_organization(org_a)
    assert usage.totals(rows, "usage_type") == [
        {"usage_type": "gpu_seconds", "quantity": Decimal(0)}
    ]
    entry = AuditEntry.objects.for_organization(org_a).get(action="usage.reverse")
    assert entry.object_id == str(reversal.pk)
    assert entry.after["reason"] == "Billed twice by a worker bug."
    assert RollupMark.objects.for_organization(org_a).get().hour == marks.hour_of(
        gpu_record.occurred_at
    )


def test_a_record_is_reversed_at_most_once_and_a_reversal_never(org_a, gpu_record):
    reversal = usage.reverse(org_a, gpu_record, "Duplicate.", SYSTEM)
    before = records(org_a), AuditEntry.objects.for_organization(org_a).count()

    with pytest.raises(ConflictError) as twice:
        usage.reverse(org_a, gpu_record, "Again.", SYSTEM)
    with pytest.raises(ConflictError) as of_reversal:
        usage.reverse(org_a, reversal, "Undo the undo.", SYSTEM)
    with pytest.raises(DomainError) as no_reason:
        usage.reverse(org_a, gpu_record, "   ", SYSTEM)

    assert twice.value.code == "already_reversed"
    assert of_reversal.value.code == "reversal_not_reversible"
    assert (no_reason.value.code, no_reason.value.field) == ("reason_required", "reason")
    assert (records(org_a), AuditEntry.objects.for_organization(org_a).count()) == before


def test_the_orm_refuses_to_change_or_delete_a_record(org_a, gpu_record):
    gpu_record.quantity = Decimal(1)
    attempts = [
        gpu_record.save,
        gpu_record.delete,
        lambda: UsageRecord.objects.for_organization(org_a).update(quantity=0),
        lambda: UsageRecord.objects.for_organization(org_a).delete(),
    ]
    for attempt in attempts:
        with pytest.raises(AppendOnlyError):
            attempt()
    assert UsageRecord.objects.for_organization(org_a).get().quantity == Decimal(90)


def _require_postgresql() -> None:
    if connection.vendor == "postgresql":
        return
    reason = (
        "The append-only trigger exists on PostgreSQL only (SQLite relies on the ORM's guard). "
        "Run with DATABASE_URL=postgres://… (CI does)."
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE analytics_usagerecord SET quantity = 0 WHERE id = %s",
        "DELETE FROM analytics_usagerecord WHERE id = %s",
    ],
    ids=["update", "delete"],
)
def test_on_postgresql_not_even_raw_sql_changes_a_record(gpu_record, sql):
    _require_postgresql()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [gpu_record.pk])
    assert UsageRecord.objects.for_organization(gpu_record.organization).get().quantity == 90
