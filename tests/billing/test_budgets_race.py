"""Two budget checks at once send one alert (PostgreSQL: real row locks between two sessions).

Real: two database sessions in two threads, the budget service's compare-and-set, the
notification and its e-mail. Simulated: the month's spend (`statements.spend_to_date` returns
a fixed 85% of the budget), so both checks judge the same numbers; and the first check is held
inside its transaction, right after it sent its alert, until the second one waits for its lock.
"""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from ironbowl.billing import budgets, notifications, statements
from ironbowl.billing.models import Budget, Notification
from tenants.audit import SYSTEM
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import local, make_organization

MARCH = local("Asia/Shanghai", 2025, 3, 20, 12)


@pytest.mark.django_db(transaction=True)
def test_two_checks_at_once_send_one_alert(vendor, monkeypatch):
    if vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run this on PostgreSQL")
        pytest.skip("SQLite serialises writers itself; the row lock race needs PostgreSQL")
    organization = make_organization(plan="trial")
    factories.MembershipFactory(organization=organization, role=Role.OWNER)
    monkeypatch.setattr(statements, "spend_to_date", lambda org, now=None: Decimal("85.00"))
    budgets.set_budget(
        SYSTEM,
        organization,
        monthly_amount=Decimal("100.00"),
        hard_stop=False,
        exempt_public_service=True,
        now=MARCH,
    )
    # set_budget's own check sent the alert: forget it, so that two fresh checks race for it.
    Budget.objects.for_organization(organization).update(alerted_80_for=None)
    Notification.objects.for_organization(organization).delete()
    mail.outbox.clear()

    alerted = threading.Event()
    release = threading.Event()
    real_notify = notifications.notify

    def notify_and_hold(*args, **kwargs):
        notification = real_notify(*args, **kwargs)
        alerted.set()
        assert release.wait(timeout=30)  # keep this transaction open
        return notification

    monkeypatch.setattr(notifications, "notify", notify_and_hold)
    outcomes: list[list[str]] = []

    def check() -> None:
        try:
            outcomes.append(budgets.check_budget(organization, MARCH))
        finally:
            connection.close()

    first = threading.Thread(target=check)
    first.start()
    assert alerted.wait(timeout=30)
    second = threading.Thread(target=check)
    second.start()
    try:
        _wait_until_a_session_waits_for_a_lock(timeout=30)
    finally:
        release.set()
        first.join(timeout=30)
        second.join(timeout=30)

    assert sorted(outcomes) == [[], ["budget_80"]]
    assert Notification.objects.for_organization(organization).count() == 1
    assert len(mail.outbox) == 1


def _wait_until_a_session_waits_for_a_lock(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
    raise AssertionError("the second check never waited for the first one's lock")
