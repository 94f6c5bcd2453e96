"""Corrections: POST /api/v1/billing/usage/{id}/reversal/ (platform staff only) appends the
reversing record of a usage record with a reason — once: asked again, it answers the same
reversal. Audited in the record's organization; a reversal is never reversed; a reversal of a
closed month's usage is credited on the next statement, marked late.

Real: the HTTP requests through Django and DRF with session users and API keys, the services,
the audit log, rating and statements, the database (PostgreSQL's unique index in the race test,
skipped on SQLite, which has a single writer). Simulated: the clock of the statements (`now`
passed in).
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from ironbowl.analytics import usage as ledger_usage
from ironbowl.analytics.models import UsageRecord
from ironbowl.billing import seats, statements
from ironbowl.billing.models import LineKind, StatementLine
from tenants.audit import Actor
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import hire, local, make_organization, usage
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock

pytestmark = pytest.mark.django_db

SH = "Asia/Shanghai"
MARCH, APRIL = dt.date(2024, 3, 1), dt.date(2024, 4, 1)
IN_MAY = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)
REASON = "The worker reported this stream twice."


def url(record) -> str:
    return f"/api/v1/billing/usage/{getattr(record, 'pk', record)}/reversal/"


@pytest.fixture
def staff_user():
    return factories.UserFactory(is_staff=True)


@pytest.fixture
def staff(staff_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=staff_user)
    return client


@pytest.fixture
def streamed(org_a):
    return usage(org_a, "stream_minutes", 600, local(SH, 2024, 3, 3))


def ledger_of(organization):
    return list(
        UsageRecord.objects.for_organization(organization)
        .order_by("id")
        .values_list("id", "quantity", "reverses_id")
    )


def reversals_audited(organization):
    return AuditEntry.objects.for_organization(organization).filter(action="usage.reverse")


def test_staff_reverse_a_record_with_a_reason_and_it_is_audited(staff, staff_user, streamed):
    answer = staff.post(url(streamed), {"reason": REASON}, format="json")

    assert answer.status_code == 201
    body = answer.json()
    assert (body["organization"], body["reverses"], body["quantity"]) == (
        streamed.organization.slug,
        streamed.pk,
        "-600.000000",
    )
    assert body["source_id"] == f"reversal:{streamed.pk}"
    assert ledger_of(streamed.organization)[-1] == (body["id"], Decimal(-600), streamed.pk)
    (entry,) = reversals_audited(streamed.organization)
    assert (entry.actor_label, entry.object_id) == (staff_user.email, str(body["id"]))
    assert entry.after["reason"] == REASON


def test_reversing_again_answers_the_same_reversal(staff, streamed):
    first = staff.post(url(streamed), {"reason": REASON}, format="json")
    again = staff.post(url(streamed), {"reason": "Retried."}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(ledger_of(streamed.organization)) == 2
    assert reversals_audited(streamed.organization).count() == 1


def test_a_reversal_is_never_reversed(staff, streamed):
    reversal = staff.post(url(streamed), {"reason": REASON}, format="json").json()
    before = ledger_of(streamed.organization)

    answer = staff.post(url(reversal["id"]), {"reason": "Undo the undo."}, format="json")

    assert answer.status_code == 409
    assert answer.json()["code"] == "reversal_not_reversible"
    assert ledger_of(streamed.organization) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "ok", "quantity": "-1"}, "quantity"),
    ],
    ids=["missing", "empty", "blank", "too-long", "unknown-field"],
)
def test_bad_input_is_refused_and_nothing_changes(staff, streamed, payload, field):
    before = ledger_of(streamed.organization)

    answer = staff.post(url(streamed), payload, format="json")

    assert answer.status_code == 400
    assert field in str(answer.json())
    assert ledger_of(streamed.organization) == before
    assert not reversals_audited(streamed.organization).exists()


def test_an_unknown_record_is_404(staff, streamed):
    assert staff.post(url(streamed.pk + 1000), {"reason": REASON}, format="json").status_code == 404
    assert staff.post("/api/v1/billing/usage/x/reversal/", {"reason": REASON}).status_code == 404


def test_only_platform_staff_may_correct_the_ledger(streamed, org_b, client_for):
    """Not a member of the record's organization, however senior; not another organization's
    owner; not an API key; not anyone signed out. Each is refused before the record is looked
    up, exactly as for an id that does not exist, and nothing changes."""
    before = ledger_of(streamed.organization)
    refused = []
    for organization, role in (
        (streamed.organization, Role.OWNER),
        (streamed.organization, Role.BILLING),
        (org_b, Role.OWNER),
    ):
        member = factories.MembershipFactory(organization=organization, role=role)
        for target in (streamed, streamed.pk + 1000):
            refused.append(client_for(member).post(url(target), {"reason": REASON}, format="json"))
    _key, raw = factories.make_api_key(streamed.organization, scopes=["billing.view"])
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    refused.append(keyed.post(url(streamed), {"reason": REASON}, format="json"))

    assert [answer.status_code for answer in refused] == [403] * 7
    assert len({answer.content for answer in refused[:6]}) == 1  # existing or not: the same
    assert APIClient().post(url(streamed), {"reason": REASON}, format="json").status_code == 401
    assert ledger_of(streamed.organization) == before
    assert not reversals_audited(streamed.organization).exists()


def test_a_reversal_of_a_closed_month_is_credited_late_on_the_next_statement(staff):
    """March is closed; a reversal of its usage and of one of its seat-days goes to April,
    each line marked with March, and March stays as it was."""
    organization = make_organization()
    employment = hire(organization, rate="3100.00")
    # 350 hours: 50 past the standard plan's 300 included, at 18.00.
    streamed = usage(organization, "stream_minutes", 350 * 60, local(SH, 2024, 3, 3), employment)
    march = statements.close(organization, MARCH, now=IN_MAY)
    frozen = march.total
    day = UsageRecord.objects.for_organization(organization).get(
        source_id=seats.seat_source_id(employment.pk, dt.date(2024, 3, 10))
    )

    for record in (streamed, day):
        assert staff.post(url(record), {"reason": REASON}, format="json").status_code == 201
    april = statements.refresh(organization, APRIL, now=IN_MAY)

    march.refresh_from_db()
    assert march.total == frozen
    late = {
        row.kind: (row.used, row.amount)
        for row in StatementLine.objects.for_organization(organization).filter(
            statement=april, late_period=MARCH
        )
    }
    assert late == {
        LineKind.SEATS: (Decimal(-1), Decimal("-100.00")),
        LineKind.STREAM_HOURS: (Decimal(-350), Decimal("-900.00")),
    }


@pytest.mark.django_db(transaction=True)
def test_two_corrections_at_once_make_one_reversal(org_a, staff_user):
    """PostgreSQL: a correction racing another of the same record (not committed yet) waits for
    it, then answers its reversal instead of failing or making a second."""
    require_row_locks()
    record = usage(org_a, "stream_minutes", 600, local(SH, 2024, 3, 3))
    actor = Actor(user=staff_user)
    ready, commit = threading.Event(), threading.Event()

    def reverse_and_hold():
        with transaction.atomic():
            made = ledger_usage.ensure_reversed(org_a, record, REASON, actor)
            ready.set()
            commit.wait(timeout=60)
        return made

    first, first_out = in_thread("first", reverse_and_hold)
    second, second_out = in_thread(
        "second", lambda: ledger_usage.ensure_reversed(org_a, record, "Retried.", actor)
    )
    first.start()
    assert ready.wait(timeout=60)
    second.start()
    assert someone_waits_for_a_lock()
    commit.set()
    first.join(timeout=60)
    second.join(timeout=60)

    (made, created), (answered, again) = first_out["result"], second_out["result"]
    assert (created, again) == (True, False)
    assert answered.pk == made.pk
    assert len(ledger_of(org_a)) == 2
    assert reversals_audited(org_a).count() == 1
