"""Notifications: stored, e-mailed to the owners and billing members in the organization's
language once the change commits, hinted over the organization's socket; listed and marked read
through the API, by nobody outside the organization.

Real: the database, Django's e-mail backend (locmem, as the test runner sets it), the in-memory
channel layer, the API with its permission checks. Simulated: nothing, except an SMTP failure
(send_mail replaced by one that raises) in the test that is about it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import mail
from django.db import transaction
from django.utils import timezone

from ironbowl.billing import budgets, notifications, statements
from ironbowl.billing.models import Notification
from ironbowl.realtime import activity_group
from tenants.audit import SYSTEM
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import local, make_organization

MARCH = local("Asia/Shanghai", 2025, 3, 20, 12)


def _url(organization, suffix: str = "") -> str:
    return f"/api/v1/orgs/{organization.slug}/notifications/{suffix}"


def _members(organization, *roles: str):
    return {
        role: factories.MembershipFactory(organization=organization, role=role) for role in roles
    }


def test_owners_and_billing_members_are_emailed_one_message_each(
    org_a, django_capture_on_commit_callbacks
):
    people = _members(org_a, Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST, Role.BILLING)
    gone = factories.MembershipFactory(organization=org_a, role=Role.BILLING)
    gone.user.is_active = False
    gone.user.save()

    with django_capture_on_commit_callbacks(execute=True):
        notification = notifications.notify(
            org_a, "payment_failed", "The payment for March failed.", {"statement": "x"}
        )

    expected = sorted([people[Role.OWNER].user.email, people[Role.BILLING].user.email])
    assert sorted(address for m in mail.outbox for address in m.to) == expected
    assert all(len(m.to) == 1 for m in mail.outbox)
    first = mail.outbox[0]
    assert first.subject == "[Alpha Hospital] Payment failed"
    assert first.body.startswith("The payment for March failed.\n\n-- \n")
    stored = Notification.objects.for_organization(org_a).get()
    assert (stored.pk, stored.kind, stored.data, stored.read_at) == (
        notification.pk,
        "payment_failed",
        {"statement": "x"},
        None,
    )


def test_email_false_stores_without_emailing(org_a, owner_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(org_a, "payment_received", "Paid, thank you.", email=False)

    assert mail.outbox == []
    assert Notification.objects.for_organization(org_a).count() == 1


def test_a_rolled_back_change_tells_nobody(org_a, owner_a, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        notifications.notify(org_a, "payment_failed", "The payment failed.")
        raise RuntimeError("the change that made it true failed")

    assert mail.outbox == []
    assert not Notification.objects.for_organization(org_a).exists()


def test_a_failed_email_keeps_the_notification(
    org_a, owner_a, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise OSError("SMTP server unreachable")

    monkeypatch.setattr(notifications, "send_mail", refuse)

    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(org_a, "payment_failed", "The payment failed.")

    assert Notification.objects.for_organization(org_a).count() == 1


def test_the_console_gets_a_hint_without_the_text(
    org_a, owner_a, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(activity_group(org_a.pk), channel)

    with django_capture_on_commit_callbacks(execute=True):
        notification = notifications.notify(org_a, "budget_80", "Spent 8,000.00 CNY of 10,000.")

    message = async_to_sync(layer.receive)(channel)
    assert message["payload"] == {
        "type": "notification",
        "id": str(notification.pk),
        "kind": "budget_80",
        "at": notification.created_at.isoformat(),
    }


def test_budget_emails_are_written_in_the_organizations_language(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    """The spend is a stand-in (see test_budgets.py); the language is the point. The month is
    formatted by Django's own zh-hans formats, so this holds before our catalogue is
    translated; the message text follows the catalogue."""
    chinese = make_organization(plan="trial", locale="zh-hans", name="北京协和医院")
    english = make_organization(plan="trial", locale="en", name="Union Hospital")
    for organization in (chinese, english):
        factories.MembershipFactory(organization=organization, role=Role.OWNER)
    monkeypatch.setattr(
        statements, "spend_to_date", lambda organization, now=None: Decimal("12345.60")
    )

    with django_capture_on_commit_callbacks(execute=True):
        for organization in (chinese, english):
            budgets.set_budget(
                SYSTEM,
                organization,
                monthly_amount=Decimal("15000"),
                hard_stop=False,
                exempt_public_service=True,
                now=MARCH,
            )

    by_org = {m.subject.split("]")[0].lstrip("["): m for m in mail.outbox}
    assert "2025年3月" in by_org["北京协和医院"].body
    assert "March 2025" not in by_org["北京协和医院"].body
    assert "12345.60 CNY" in by_org["北京协和医院"].body  # zh-hans groups no thousands
    assert "March 2025" in by_org["Union Hospital"].body
    assert by_org["Union Hospital"].body.startswith(
        "Union Hospital has spent 12,345.60 CNY of its 15,000.00 CNY budget for March 2025."
    )
    stored = Notification.objects.for_organization(chinese).get()
    assert "2025年3月" in stored.message


# --- API --------------------------------------------------------------------------------------


def _notification(organization, kind="budget_80", minutes_ago=0, **fields) -> Notification:
    return Notification.objects.create(
        organization=organization,
        kind=kind,
        message=f"{kind} {minutes_ago}",
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        **fields,
    )


def test_the_list_is_paged_newest_first_and_filters_unread(org_a, api_a):
    for minutes in range(5):
        _notification(org_a, minutes_ago=minutes)
    read = _notification(org_a, kind="payment_received", minutes_ago=10, read_at=timezone.now())

    first = api_a.get(_url(org_a), {"page_size": 3})
    assert first.status_code == 200
    assert [n["message"] for n in first.json()["results"]] == [
        "budget_80 0",
        "budget_80 1",
        "budget_80 2",
    ]
    second = api_a.get(first.json()["next"])
    assert [n["message"] for n in second.json()["results"]] == [
        "budget_80 3",
        "budget_80 4",
        "payment_received 10",
    ]
    assert second.json()["next"] is None

    unread = api_a.get(_url(org_a), {"unread": "true"})
    assert str(read.pk) not in [n["id"] for n in unread.json()["results"]]
    assert len(unread.json()["results"]) == 5
    received = api_a.get(_url(org_a), {"kind": "payment_received"})
    assert [n["id"] for n in received.json()["results"]] == [str(read.pk)]


def test_marking_read_is_idempotent(org_a, api_a):
    notification = _notification(org_a)

    first = api_a.post(_url(org_a, f"{notification.pk}/read/"))
    again = api_a.post(_url(org_a, f"{notification.pk}/read/"))

    assert first.status_code == again.status_code == 200
    assert first.json()["read_at"] is not None
    assert again.json()["read_at"] == first.json()["read_at"]
    notification.refresh_from_db()
    assert notification.read_at is not None


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.OWNER, 200),
        (Role.ADMIN, 200),
        (Role.BILLING, 200),
        (Role.OPERATOR, 403),
        (Role.ANALYST, 403),
    ],
)
def test_notifications_are_for_those_who_may_see_billing(
    org_a, member_factory, client_for, role, status
):
    notification = _notification(org_a)
    client = client_for(member_factory(org_a, role))

    assert client.get(_url(org_a)).status_code == status
    assert client.post(_url(org_a, f"{notification.pk}/read/")).status_code == status


def test_another_organization_sees_none_of_them(org_a, org_b, api_b):
    """A member of B, with billing rights in B: A's notifications answer 404, by A's URL and
    by B's URL with A's id, and marking one read changes nothing."""
    notification = _notification(org_a)

    assert api_b.get(_url(org_a)).status_code == 404
    assert api_b.get(_url(org_a, f"{notification.pk}/")).status_code == 404
    assert api_b.post(_url(org_a, f"{notification.pk}/read/")).status_code == 404
    assert api_b.get(_url(org_b, f"{notification.pk}/")).status_code == 404
    assert api_b.post(_url(org_b, f"{notification.pk}/read/")).status_code == 404
    assert api_b.get(_url(org_b)).json()["results"] == []
    notification.refresh_from_db()
    assert notification.read_at is None
