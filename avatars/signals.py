"""What avatars tells other packages without importing them: they connect receivers (in their
AppConfig.ready) and avatars sends once its change has committed."""

from __future__ import annotations

import structlog
from django.db import transaction
from django.dispatch import Signal

from avatars.models import Employment

logger = structlog.get_logger(__name__)

# An employment moved along its lifecycle. Sent once the change has committed, with
# `organization_id`, `employment_id`, `from_status`, `to_status` and `reason`. A receiver that
# fails is logged and does not undo the change; consumers that must not miss one (scheduling
# stops the shifts of a suspended hire) also check the status where it matters.
employment_status_changed = Signal()


def announce_status_change(employment: Employment, from_status: str, reason: str) -> None:
    """Send `employment_status_changed` once the current transaction commits."""
    kwargs = {
        "organization_id": employment.organization_id,
        "employment_id": employment.pk,
        "from_status": from_status,
        "to_status": employment.status,
        "reason": reason,
    }

    def send() -> None:
        for receiver, outcome in employment_status_changed.send_robust(sender=Employment, **kwargs):
            if isinstance(outcome, Exception):
                logger.error(
                    "employment_receiver_failed",
                    receiver=getattr(receiver, "__qualname__", repr(receiver)),
                    employment=str(employment.pk),
                    exc_info=outcome,
                )

    transaction.on_commit(send)
