"""Dunning: a failed payment, the grace period, suspension of non-essential digital employees,
and their return when the invoice is paid.

Real: webhook deliveries through Django, signed as Stripe signs them and verified by the
`stripe` SDK; the invoices pushed to the local stand-in by the real push code; the employment
lifecycle service (suspend and resume, audited, with history); the e-mails through Django's
e-mail backend (the test backend's outbox) and the console notifications; the daily task's
service run with a chosen `now`. Simulated: Stripe's servers (the stand-in), and the passing of
the grace period (a `now` given to the task).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from celery.schedules import crontab
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from avatars import employments
from avatars.models import EmploymentStatus, EmploymentTransition
from ironbowl.billing import dunning, push
from ironbowl.billing.models import (
    BillingAccount,
    DunningState,
    LineKind,
    Notification,
    StripeInvoice,
)
from ironbowl.celery import app
from scheduling.models import StationKind
from tenants.audit import SYSTEM, Actor
from tenants.models import AuditEntry, Organization
from tenants.roles import Role
from tests import factories
from tests.avatars.factories import onboarded_employment
from tests.billing.conftest import closed_statement, make_organization
from tests.billing.stripe_standin import event, signature
from tests.scheduling import duty_world

pytestmark = pytest.mark.django_db

URL = "/api/v1/billing/stripe/webhook/"


def deliver(body: bytes) -> str:
    answer = APIClient().post(
        URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature(body)
    )
    assert answer.status_code == 200, answer.json()
    return str(answer.json()["outcome"])


def active_hire(organization):
    return onboarded_employment(organization=organization, status=EmploymentStatus.ACTIVE)


def around_the_clock(employment):
    """Put the hire on a 24/7 public-service schedule at a web widget."""
    return duty_world.schedule(
        employment,
        duty_world.station(employment.organization, StationKind.WEB_WIDGET),
        rrule="",
        start_time=None,
        duration_minutes=None,
        always_on=True,
    )


def account_of(organization) -> BillingAccount:
    return BillingAccount.objects.for_organization(organization).get()


def written_for(organization) -> tuple[int, int, int]:
    """Audit entries, notifications and e-mails so far."""
    return (
        AuditEntry.objects.for_organization(organization).count(),
        Notification.objects.for_organization(organization).count(),
        len(mail.outbox),
    )


def person(organization) -> Actor:
    """A person of the organization, as the audit log and the history name them."""
    return Actor(user=factories.MembershipFactory(organization=organization, role=Role.ADMIN).user)


def status_of(employment) -> str:
    employment.refresh_from_db()
    return employment.status


@pytest.fixture
def bureau(stripe_standin):
    """An organization with people in every role, four hires (one on a 24/7 desk, one a
    person suspended for their own reason) and an open invoice in the stand-in."""
    organization = make_organization(slug="market-bureau")
    people = {
        role: factories.MembershipFactory(organization=organization, role=role) for role in Role
    }
    anchor, presenter, desk, paused = (active_hire(organization) for _ in range(4))
    around_the_clock(desk)
    employments.suspend_employment(SYSTEM, paused, "Paused by the bureau for a review.")
    statement = closed_statement(organization, [(anchor, LineKind.SEATS, "1999.00")])
    push.statement_closed(statement)
    push.sync()
    invoice = StripeInvoice.objects.for_organization(organization).get(statement=statement)
    return {
        "organization": organization,
        "people": people,
        "anchor": anchor,
        "presenter": presenter,
        "desk": desk,
        "paused": paused,
        "invoice": invoice,
    }


def test_failed_payment_grace_suspension_and_return_on_payment(
    stripe_standin, bureau, settings, django_capture_on_commit_callbacks
):
    """The whole cycle, as an institution lives it."""
    organization, invoice = bureau["organization"], bureau["invoice"]
    people = bureau["people"]
    billing_people = sorted(people[r].user.email for r in (Role.OWNER, Role.BILLING))

    # 1. Stripe's attempt fails: past due, a grace of BILLING_GRACE_DAYS, a notice.
    failed_at = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        failure = stripe_standin.fail_payment(invoice.stripe_invoice_id)
        assert deliver(event("invoice.payment_failed", failure)) == "past_due"
    account = account_of(organization)
    assert account.dunning == DunningState.PAST_DUE
    grace = account.grace_until - failed_at
    assert dt.timedelta(days=settings.BILLING_GRACE_DAYS) <= grace
    assert grace < dt.timedelta(days=settings.BILLING_GRACE_DAYS, minutes=1)
    assert sorted(m.to[0] for m in mail.outbox) == billing_people
    assert "could not collect" in mail.outbox[0].body
    notice = Notification.objects.for_organization(organization).get()
    assert notice.kind == "payment_failed"

    # 2. Stripe retries and fails again: the grace is not extended, nobody is told twice.
    with django_capture_on_commit_callbacks(execute=True):
        again = stripe_standin.fail_payment(invoice.stripe_invoice_id)
        assert deliver(event("invoice.payment_failed", again)) == "already_past_due"
    assert account_of(organization).grace_until == account.grace_until
    assert len(mail.outbox) == 2

    # 3. The daily task, within the grace: nothing happens.
    assert dunning.enforce(account.grace_until - dt.timedelta(minutes=1))["suspended"] == 0
    assert status_of(bureau["anchor"]) == EmploymentStatus.ACTIVE

    # 4. After the grace: non-essential hires suspended, the 24/7 desk goes on.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = dunning.enforce(account.grace_until + dt.timedelta(minutes=1))
    assert result == {"organizations": 1, "suspended": 2}
    assert status_of(bureau["anchor"]) == EmploymentStatus.SUSPENDED
    assert status_of(bureau["presenter"]) == EmploymentStatus.SUSPENDED
    assert status_of(bureau["desk"]) == EmploymentStatus.ACTIVE
    account = account_of(organization)
    assert account.dunning == DunningState.SUSPENDED
    assert dunning.suspended_ids(account) == sorted(
        str(e.pk) for e in (bureau["anchor"], bureau["presenter"])
    )
    assert dunning.suspensions(account)[str(bureau["anchor"].pk)] == (
        EmploymentTransition.objects.for_organization(organization)
        .filter(employment=bureau["anchor"])
        .latest("id")
        .pk
    )
    assert sorted(m.to[0] for m in mail.outbox) == billing_people
    assert "suspended" in mail.outbox[0].body
    history = EmploymentTransition.objects.for_organization(organization).filter(
        employment=bureau["anchor"], to_status=EmploymentStatus.SUSPENDED
    )
    assert "non-payment" in history.get().reason
    # The hourly task again: nothing new to suspend, nothing written, nobody told again.
    written = written_for(organization)
    assert dunning.enforce(account.grace_until + dt.timedelta(days=1))["suspended"] == 0
    assert written_for(organization) == written

    # 5. Meanwhile a person lets the presenter go: payment will not bring it back.
    employments.transition_employment(
        SYSTEM, bureau["presenter"], EmploymentStatus.TERMINATED, "Contract ended."
    )

    # 6. Paid: good standing, the anchor back at work; the person's own suspension stays.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        paid = stripe_standin.pay(invoice.stripe_invoice_id)
        assert deliver(event("invoice.paid", paid)) == "paid; resumed 1"
    account = account_of(organization)
    assert (account.dunning, account.grace_until, account.suspended_employments) == (
        DunningState.GOOD,
        None,
        [],
    )
    assert status_of(bureau["anchor"]) == EmploymentStatus.ACTIVE
    assert status_of(bureau["presenter"]) == EmploymentStatus.TERMINATED
    assert status_of(bureau["paused"]) == EmploymentStatus.SUSPENDED
    assert status_of(bureau["desk"]) == EmploymentStatus.ACTIVE
    assert sorted(m.to[0] for m in mail.outbox) == billing_people
    received = Notification.objects.for_organization(organization).filter(kind="payment_received")
    assert received.get().data["resumed"] == [str(bureau["anchor"].pk)]


def test_the_grace_period_is_a_setting(stripe_standin, bureau, settings):
    settings.BILLING_GRACE_DAYS = 3
    invoice = bureau["invoice"]
    before = timezone.now()
    deliver(event("invoice.payment_failed", stripe_standin.fail_payment(invoice.stripe_invoice_id)))
    grace = account_of(bureau["organization"]).grace_until - before
    assert dt.timedelta(days=3) <= grace < dt.timedelta(days=3, minutes=1)


def test_a_second_organization_is_never_touched(stripe_standin, bureau):
    """Another organization in dunning long past its grace is suspended; the bureau, in good
    standing, keeps all its hires, its account and its inbox."""
    other = make_organization(slug="other-hospital")
    other_hire = active_hire(other)
    other_statement = closed_statement(other, [(other_hire, LineKind.SEATS, "10.00")])
    push.statement_closed(other_statement)
    push.sync()
    other_invoice = StripeInvoice.objects.for_organization(other).get()
    deliver(
        event(
            "invoice.payment_failed",
            stripe_standin.fail_payment(other_invoice.stripe_invoice_id),
            created=int(time.time()),
        )
    )
    statuses = {key: status_of(bureau[key]) for key in ("anchor", "presenter", "desk", "paused")}

    result = dunning.enforce(timezone.now() + dt.timedelta(days=30))

    assert result == {"organizations": 1, "suspended": 1}
    assert status_of(other_hire) == EmploymentStatus.SUSPENDED
    assert {key: status_of(bureau[key]) for key in statuses} == statuses
    assert account_of(bureau["organization"]).dunning == DunningState.GOOD
    assert not Notification.objects.for_organization(bureau["organization"]).exists()


def _fail_and_suspend(stripe_standin, bureau) -> BillingAccount:
    """The bureau's payment fails and its grace runs out: its hires are suspended."""
    invoice = bureau["invoice"]
    deliver(event("invoice.payment_failed", stripe_standin.fail_payment(invoice.stripe_invoice_id)))
    grace_until = account_of(bureau["organization"]).grace_until
    dunning.enforce(grace_until + dt.timedelta(minutes=1))
    return account_of(bureau["organization"])


def test_hires_are_resumed_after_the_organizations_language_changed(stripe_standin, bureau):
    """Suspended while the bureau used English, paid after it switched to Chinese: the hires
    dunning suspended are found by the ids it kept, not by the reason's words."""
    organization = bureau["organization"]
    Organization.objects.filter(pk=organization.pk).update(locale="en")
    organization.refresh_from_db()
    _fail_and_suspend(stripe_standin, bureau)
    bureau["anchor"].refresh_from_db()
    assert bureau["anchor"].status_reason.startswith("Suspended for non-payment")
    Organization.objects.filter(pk=organization.pk).update(locale="zh-hans")

    paid = stripe_standin.pay(bureau["invoice"].stripe_invoice_id)
    assert deliver(event("invoice.paid", paid)) == "paid; resumed 2"

    assert status_of(bureau["anchor"]) == status_of(bureau["presenter"]) == "active"
    assert status_of(bureau["paused"]) == EmploymentStatus.SUSPENDED


def test_a_hire_activated_while_suspended_is_suspended_within_the_hour_and_resumed(
    stripe_standin, bureau
):
    """A person resumes a suspended hire while the invoice is still unpaid: the next hourly
    run suspends it again (and tells the organization); the payment resumes it with the
    others. A hire a person resumed and suspended again for their own reason stays so."""
    organization = bureau["organization"]
    account = _fail_and_suspend(stripe_standin, bureau)
    anchor, presenter = bureau["anchor"], bureau["presenter"]
    employments.transition_employment(SYSTEM, anchor, EmploymentStatus.ACTIVE, "We need it.")
    employments.transition_employment(SYSTEM, presenter, EmploymentStatus.ACTIVE, "Review.")
    employments.suspend_employment(SYSTEM, presenter, "Paused again by the bureau.")
    notices = Notification.objects.for_organization(organization).filter(kind="suspended")

    result = dunning.enforce(account.grace_until + dt.timedelta(hours=2))

    assert result["suspended"] == 1
    assert status_of(anchor) == EmploymentStatus.SUSPENDED
    assert notices.count() == 2
    assert notices.first().data["suspended"] == [str(anchor.pk)]
    assert "became active while the account is suspended" in notices.first().message
    latest = EmploymentTransition.objects.for_organization(organization).filter(employment=anchor)
    assert dunning.suspensions(account_of(organization))[str(anchor.pk)] == latest.latest("id").pk

    paid = stripe_standin.pay(bureau["invoice"].stripe_invoice_id)
    assert deliver(event("invoice.paid", paid)) == "paid; resumed 1"
    assert status_of(anchor) == EmploymentStatus.ACTIVE
    assert status_of(presenter) == EmploymentStatus.SUSPENDED


def test_an_account_suspended_before_transition_ids_were_kept_is_resumed(stripe_standin, bureau):
    """An account written with bare employment ids (before this change): a hire whose latest
    transition is still the system's suspension is resumed; one a person suspended is not."""
    organization = bureau["organization"]
    _fail_and_suspend(stripe_standin, bureau)
    anchor, paused = bureau["anchor"], bureau["paused"]
    employments.transition_employment(SYSTEM, paused, EmploymentStatus.ACTIVE, "Review over.")
    employments.suspend_employment(person(organization), paused, "Paused for a review.")
    BillingAccount.objects.for_organization(organization).update(
        suspended_employments=[str(anchor.pk), str(paused.pk)]
    )

    paid = stripe_standin.pay(bureau["invoice"].stripe_invoice_id)
    assert deliver(event("invoice.paid", paid)) == "paid; resumed 1"

    assert status_of(anchor) == EmploymentStatus.ACTIVE
    assert status_of(paused) == EmploymentStatus.SUSPENDED


def test_the_dunning_task_runs_hourly():
    """Suspension follows the grace within the hour, not up to a day later."""
    schedule = app.conf.beat_schedule["billing.enforce_dunning"]["schedule"]
    assert schedule == crontab(minute="50")
