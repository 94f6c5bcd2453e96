"""A retry after a plan change is still a duplicate.

On PostgreSQL raw events are partitioned by retention class, which the plan sets, and the unique
index that catches retries holds the class: without a look into the other classes, a batch sent
on "trial" (30 days) and retried after a move to "standard" (90 days) would be stored twice.
Real: the ingestion service and the suite's database (SQLite, or PostgreSQL's partitioned table
and COPY in CI). Nothing is simulated. On SQLite the rule holds by construction (the batch's
stored ids are read whatever their class), so it is the PostgreSQL run in CI that guards the
look into other classes; the tests run on both so that the two databases answer alike.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from ironbowl.analytics import ingestion
from ironbowl.analytics.models import Event


def _batch(prefix: str, n: int, now: dt.datetime) -> list[dict[str, str]]:
    """The same ids at the same instants each time (a retry resends what was sent)."""
    return [
        {
            "id": f"{prefix}{i}",
            "type": "visit",
            "occurred_at": (now - dt.timedelta(minutes=i)).isoformat(),
        }
        for i in range(n)
    ]


def _move_to(organization, plan: str) -> None:
    organization.plan = plan
    organization.save(update_fields=["plan"])


def test_a_batch_retried_after_a_plan_change_is_stored_once(org_a):
    now = timezone.now()
    _move_to(org_a, "trial")
    first = ingestion.ingest(org_a, _batch("e", 20, now))
    assert (first.accepted, first.duplicates) == (20, 0)

    _move_to(org_a, "standard")
    retried = ingestion.ingest(org_a, _batch("e", 20, now) + _batch("n", 5, now))

    assert (retried.accepted, retried.duplicates) == (5, 20)
    rows = Event.objects.for_organization(org_a)
    assert rows.count() == 25
    assert set(rows.values_list("retention_days", flat=True)) == {30, 90}
    assert rows.filter(retention_days=90).count() == 5


def test_other_organizations_events_do_not_make_a_retry_look_stored(org_a, org_b):
    """The look into other classes is the organization's own: the same ids stored by another
    organization on another plan leave this one's events new."""
    now = timezone.now()
    _move_to(org_b, "enterprise")
    ingestion.ingest(org_b, _batch("e", 10, now))
    _move_to(org_a, "trial")
    ingestion.ingest(org_a, _batch("x", 1, now))  # another class than org_b's
    _move_to(org_a, "standard")

    result = ingestion.ingest(org_a, _batch("e", 10, now))

    assert (result.accepted, result.duplicates) == (10, 0)
    assert Event.objects.for_organization(org_a).count() == 11
