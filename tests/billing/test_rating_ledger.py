"""Appending usage to the ledger (`billing.ledger.append_usage`): bad input — negative or
non-numeric quantities, unknown usage types, another organization's hire, a time without an
offset or in the future, the ledger's own source ids — is refused with a code and the entry's
place, and nothing of the batch is written; a batch sent twice appends nothing the second time;
a source id recorded with other usage is a conflict; a batch racing another counts only what it
inserted.

Real: the service and the database; PostgreSQL's unique index in the race test (skipped on
SQLite, which has a single writer). Simulated: nothing (hypothesis draws the bad values).
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironbowl.analytics.models import RollupMark, UsageRecord
from ironbowl.billing import ledger
from tenants.errors import ConflictError, DomainError
from tests.billing.conftest import hire, make_organization
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock

pytestmark = pytest.mark.django_db

AT = dt.datetime(2024, 3, 5, 2, tzinfo=dt.UTC)
SHANGHAI_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")


def entry(**fields):
    return {
        "usage_type": "stream_minutes",
        "quantity": "90",
        "source_id": f"import:{fields.pop('n', 1)}",
        "occurred_at": AT,
        **fields,
    }


def count(organization):
    return UsageRecord.objects.for_organization(organization).count()


def test_a_batch_is_appended_once(shanghai):
    employment = hire(shanghai)
    batch = [
        entry(n=1, employment_id=str(employment.pk)),
        entry(n=2, usage_type="gpu_seconds", quantity=Decimal("3600.5")),
        entry(n=3, usage_type="interactions", quantity=12),
    ]

    first = ledger.append_usage(shanghai, batch)
    second = ledger.append_usage(shanghai, batch)

    assert (first.appended, first.duplicates) == (3, 0)
    assert (second.appended, second.duplicates) == (0, 3)
    assert count(shanghai) == 3
    stored = UsageRecord.objects.for_organization(shanghai).get(source_id="import:2")
    assert stored.quantity == Decimal("3600.5")
    # GPU seconds feed the rollups: their hour is marked stale.
    assert RollupMark.objects.for_organization(shanghai).filter(hour=AT).exists()


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"quantity": "-1"}, "negative_quantity", "quantity"),
        ({"quantity": "lots"}, "invalid_quantity", "quantity"),
        ({"quantity": "NaN"}, "invalid_quantity", "quantity"),
        ({"quantity": float("inf")}, "invalid_quantity", "quantity"),
        ({"quantity": True}, "invalid_quantity", "quantity"),
        ({"quantity": None}, "invalid_quantity", "quantity"),
        ({"quantity": "0.0000001"}, "quantity_too_precise", "quantity"),
        ({"quantity": "1234567890123.456"}, "quantity_too_precise", "quantity"),
        ({"quantity": "1e20"}, "quantity_too_large", "quantity"),
        ({"usage_type": "teleports"}, "unknown_usage_type", "usage_type"),
        ({"usage_type": "seat_days"}, "unknown_usage_type", "usage_type"),
        ({"source_id": ""}, "invalid_source_id", "source_id"),
        ({"source_id": "x" * 101}, "invalid_source_id", "source_id"),
        ({"occurred_at": dt.datetime(2024, 3, 5)}, "invalid_time", "occurred_at"),  # noqa: DTZ001
        ({"occurred_at": "2024-03-05"}, "invalid_time", "occurred_at"),
        ({"occurred_at": dt.datetime(2999, 1, 1, tzinfo=dt.UTC)}, "future_time", "occurred_at"),
        ({"employment_id": "not-a-uuid"}, "unknown_employment", "employment_id"),
    ],
)
def test_bad_input_is_refused_with_its_place_and_nothing_is_written(shanghai, fields, code, field):
    batch = [entry(n=1), entry(n=2, **fields)]

    with pytest.raises(DomainError) as refused:
        ledger.append_usage(shanghai, batch)

    assert refused.value.code == code
    assert refused.value.field == f"entries.1.{field}"
    assert count(shanghai) == 0  # not even the good first entry


def test_another_organizations_hire_is_refused_like_a_missing_one(shanghai):
    theirs = hire(make_organization())

    with pytest.raises(DomainError) as refused:
        ledger.append_usage(shanghai, [entry(employment_id=theirs.pk)])

    assert refused.value.code == "unknown_employment"
    assert count(shanghai) == 0


def test_a_batch_repeating_a_source_id_is_refused(shanghai):
    with pytest.raises(DomainError) as refused:
        ledger.append_usage(shanghai, [entry(n=1), entry(n=1, quantity="2")])

    assert refused.value.code == "duplicate_source_id"
    assert count(shanghai) == 0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    quantity=st.one_of(
        st.text(max_size=12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**16), max_value=10**16),
        st.decimals(allow_nan=True, allow_infinity=True),
    )
)
def test_any_quantity_is_either_appended_exactly_or_refused_without_a_write(shanghai, quantity):
    before = count(shanghai)
    source = f"fuzz:{before}"
    try:
        ledger.append_usage(shanghai, [entry(quantity=quantity, source_id=source)])
    except DomainError as refused:
        assert refused.code in {
            "invalid_quantity",
            "negative_quantity",
            "quantity_too_precise",
            "quantity_too_large",
        }
        assert count(shanghai) == before
        return
    stored = UsageRecord.objects.for_organization(shanghai).get(source_id=source)
    assert stored.quantity == Decimal(str(quantity).strip())
    assert Decimal(0) <= stored.quantity < Decimal(10) ** 14


@pytest.mark.parametrize(
    "changed",
    [
        {"quantity": "91"},
        {"usage_type": "interactions"},
        {"occurred_at": AT + dt.timedelta(hours=1)},
        {"employment_id": "hire"},
    ],
    ids=["quantity", "usage_type", "occurred_at", "employment"],
)
def test_a_source_id_recorded_with_other_usage_is_a_conflict_and_nothing_is_written(
    shanghai, changed
):
    employment = hire(shanghai)
    if changed.get("employment_id") == "hire":
        changed = {"employment_id": str(employment.pk)}
    ledger.append_usage(shanghai, [entry(n=1)])

    with pytest.raises(ConflictError) as refused:
        ledger.append_usage(shanghai, [entry(n=2), entry(n=1, **changed)])

    assert (refused.value.code, refused.value.field) == (
        "source_id_conflict",
        "entries.1.source_id",
    )
    assert count(shanghai) == 1  # the new entry before it was not written either
    assert UsageRecord.objects.for_organization(shanghai).get().quantity == 90


def test_the_same_usage_again_is_a_duplicate_whatever_the_form_of_its_figures(shanghai):
    ledger.append_usage(shanghai, [entry(n=1)])

    # The same quantity and instant, written differently: the same usage.
    again = ledger.append_usage(
        shanghai,
        [entry(n=1, quantity=Decimal("90.000"), occurred_at=AT.astimezone(SHANGHAI_ZONE))],
    )

    assert (again.appended, again.duplicates) == (0, 1)
    assert count(shanghai) == 1


@pytest.mark.parametrize("source", ["seat:x:2024-03-01", "reversal:1", "usage-report:1:gpu"])
def test_the_ledgers_own_source_ids_are_refused(shanghai, source):
    with pytest.raises(DomainError) as refused:
        ledger.append_usage(shanghai, [entry(source_id=source)])

    assert (refused.value.code, refused.value.field) == (
        "reserved_source_id",
        "entries.0.source_id",
    )
    assert count(shanghai) == 0


@pytest.mark.django_db(transaction=True)
def test_a_racing_batch_counts_only_what_it_inserted(shanghai):
    """PostgreSQL: a batch whose source id another transaction inserts (not committed yet when
    the batch reads the ledger) waits for it, then counts that entry as a duplicate rather than
    as appended — and still appends the rest."""
    require_row_locks()
    ready, commit = threading.Event(), threading.Event()

    def insert_and_hold():
        with transaction.atomic():
            ledger.append_usage(shanghai, [entry(n=1)])
            ready.set()
            commit.wait(timeout=60)

    holder, holder_out = in_thread("holder", insert_and_hold)
    racer, racer_out = in_thread(
        "racer", lambda: ledger.append_usage(shanghai, [entry(n=1), entry(n=2)])
    )
    holder.start()
    assert ready.wait(timeout=60)
    racer.start()
    assert someone_waits_for_a_lock()  # the racer's insert waits on the unique source id
    commit.set()
    holder.join(timeout=60)
    racer.join(timeout=60)

    assert "error" not in holder_out
    appended = racer_out["result"]
    assert (appended.appended, appended.duplicates) == (1, 1)
    assert count(shanghai) == 2
