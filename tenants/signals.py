"""Signals other packages listen to, so that tenants imports none of them."""

from typing import Any

import structlog
from django.db import transaction
from django.dispatch import Signal

logger = structlog.get_logger(__name__)

# Sent inside remove_member's transaction, before the membership row goes: packages that hold
# per-object grants for the member (e.g. station operators) drop them.
membership_removed = Signal()

# Sent inside change_member_role's transaction after the new role is saved: grants that only
# make sense for the old role (an operator's stations) are dropped.
membership_role_changed = Signal()


def send_after_commit(signal: Signal, sender: type, event: str, **kwargs: Any) -> None:
    """Send `signal` once the current transaction commits. A receiver that fails is logged as
    `event` and does not undo the change (nor fail the request that made it)."""

    def send() -> None:
        for receiver, outcome in signal.send_robust(sender=sender, **kwargs):
            if isinstance(outcome, Exception):
                logger.error(
                    event,
                    receiver=getattr(receiver, "__qualname__", repr(receiver)),
                    exc_info=outcome,
                    **{key: str(value) for key, value in kwargs.items() if key.endswith("_id")},
                )

    transaction.on_commit(send)
