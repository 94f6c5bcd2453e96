"""Telling an organization's people about its money: budget alerts, payments failed or received.

`notify` is the one way in. It stores a `Notification` (the console lists them) and, once the
transaction commits, e-mails the organization's owners and billing members through Django's
e-mail backend and hints the console over the organization's activity socket. Text is written
in the organization's language (`Organization.locale`), whoever triggered it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.mail import get_connection, send_mail
from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from ironbowl.billing.models import Notification, NotificationKind
from ironbowl.realtime import activity_group
from tenants.models import Membership, Organization
from tenants.roles import Role

logger = structlog.get_logger(__name__)

# Who is e-mailed: the people who answer for the organization's money.
RECIPIENT_ROLES = (Role.OWNER, Role.BILLING)

# A message: text already written, a lazy translation, or a function that writes it (called in
# the organization's language, so that numbers and months in it are formatted for its readers).
Message = str | Promise | Callable[[], str]


def notify(
    organization: Organization,
    kind: str,
    message: Message,
    data: dict[str, Any] | None = None,
    *,
    email: bool = True,
) -> Notification:
    """Store a notification for the organization; after commit, e-mail its owners and billing
    members (unless `email` is false) and push a hint to its open consoles.

    Call it inside the transaction that makes the news true: if that rolls back, nothing is
    stored and nobody is told. A failed e-mail or push is logged; the notification stays.
    """
    kind = NotificationKind(kind)
    with translation.override(organization.locale):
        text = message() if callable(message) else str(message)
    notification = Notification.objects.create(
        organization=organization,
        kind=kind,
        message=text,
        data=data or {},
    )

    def deliver() -> None:
        if email:
            _email(organization, notification)
        _push(notification)

    transaction.on_commit(deliver)
    return notification


def recipients_of(organization: Organization) -> list[str]:
    """E-mail addresses of the organization's active owners and billing members."""
    return sorted(
        Membership.objects.for_organization(organization)
        .filter(role__in=RECIPIENT_ROLES, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def _email(organization: Organization, notification: Notification) -> None:
    """One message per person (nobody sees the others' addresses), in the organization's
    language, over one connection."""
    addresses = recipients_of(organization)
    if not addresses:
        return
    with translation.override(organization.locale):
        subject = f"[{organization.name}] {NotificationKind(notification.kind).label}"
        footer = _(
            "You receive this e-mail as an owner or billing member of %(organization)s. "
            "The console lists every notification under Notifications."
        ) % {"organization": organization.name}
    body = f"{notification.message}\n\n-- \n{footer}\n"
    try:
        connection = get_connection()
        for address in addresses:
            send_mail(subject, body, None, [address], connection=connection)
    except Exception:  # the notification is stored and shown in the console either way
        logger.exception(
            "notification_email_failed",
            notification_id=str(notification.pk),
            organization_id=str(organization.pk),
        )


def _push(notification: Notification) -> None:
    """A hint on the organization's activity socket: what kind of news, not its content (every
    member may listen there; the text is for those who may read billing)."""
    layer = get_channel_layer()
    if layer is None:
        return
    payload = {
        "type": "notification",
        "id": str(notification.pk),
        "kind": notification.kind,
        "at": notification.created_at.isoformat(),
    }
    try:
        async_to_sync(layer.group_send)(
            activity_group(notification.organization_id),
            {"type": "activity.event", "payload": payload},
        )
    except Exception:  # a lost hint costs a refresh; the notification is stored
        logger.warning("notification_push_failed", notification_id=str(notification.pk))


def mark_read(organization: Organization, notification: Notification) -> Notification:
    """Mark one of the organization's notifications read; reading it again keeps the first
    time (two at once: one write wins, both answer with it)."""
    if notification.read_at is None:
        now = timezone.now()
        updated = (
            Notification.objects.for_organization(organization)
            .filter(pk=notification.pk, read_at__isnull=True)
            .update(read_at=now)
        )
        if updated:
            notification.read_at = now
        else:
            notification.refresh_from_db(fields=["read_at"])
    return notification


def unread_count(organization: Organization) -> int:
    return Notification.objects.for_organization(organization).filter(read_at__isnull=True).count()
