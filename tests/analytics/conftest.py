"""Shared fixtures of the analytics tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from ironbowl.analytics import marks, partitions
from ironbowl.analytics.models import Event
from tenants.models import Organization
from tenants.plans import limits_of


@pytest.fixture(autouse=True)
def _partitions_forgotten():
    """A test's rollback (or flush) drops the partitions it made behind the process's back."""
    partitions.forget()
    yield
    partitions.forget()


WriteEvents = Callable[..., list[Event]]


def write_events(
    organization: Organization, events: Iterable[dict[str, Any]], *, mark: bool = True
) -> list[Event]:
    """Stores events as ingestion does — the organization's plan's retention class, partitions
    made first (PostgreSQL), the hours marked stale in the same transaction — without the API.
    Each dict holds Event fields; `type` and `occurred_at` are required, a unique client event id
    and `received_at` (now) are filled in. `mark=False` leaves the hours unmarked."""
    retention = limits_of(organization).event_retention_days
    now = timezone.now()
    rows = [
        Event(
            organization=organization,
            client_event_id=uuid.uuid4().hex,
            received_at=now,
            retention_days=retention,
            **fields,
        )
        for fields in events
    ]
    partitions.ensure(retention, {row.occurred_at.astimezone(dt.UTC).date() for row in rows})
    with transaction.atomic():
        stored = Event.objects.for_organization(organization).bulk_create(rows, batch_size=1000)
        if mark:
            marks.mark_hours(organization, [row.occurred_at for row in rows])
    return stored


@pytest.fixture
def events() -> WriteEvents:
    """`events(organization, [{"type": "visit", "occurred_at": …}, …], mark=True)`: see
    `write_events`."""
    return write_events
