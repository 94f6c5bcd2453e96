"""What avatars tells other packages without importing them: they connect receivers (in their
AppConfig.ready) and avatars sends once its change has committed."""

from __future__ import annotations

from django.dispatch import Signal

from avatars.models import Employment
from tenants.signals import send_after_commit

# An employment moved along its lifecycle. Sent once the change has committed, with
# `organization_id`, `employment_id`, `from_status`, `to_status` and `reason`. A receiver that
# fails is logged and does not undo the change; consumers that must not miss one (scheduling
# stops the shifts of a suspended hire) also check the status where it matters.
employment_status_changed = Signal()


def announce_status_change(employment: Employment, from_status: str, reason: str) -> None:
    """Send `employment_status_changed` once the current transaction commits."""
    send_after_commit(
        employment_status_changed,
        Employment,
        "employment_receiver_failed",
        organization_id=employment.organization_id,
        employment_id=employment.pk,
        from_status=from_status,
        to_status=employment.status,
        reason=reason,
    )
