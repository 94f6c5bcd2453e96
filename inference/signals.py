"""What inference tells the rest of the platform, without importing it: other packages connect
receivers (in their AppConfig.ready) and inference sends after its change has committed."""

from __future__ import annotations

import structlog
from django.db import transaction
from django.dispatch import Signal

from inference.models import Workload

logger = structlog.get_logger(__name__)

# A workload changed state, or its worker reported progress. Sent once the change has
# committed, with `organization_id`, `workload_id`, `kind`, `state` and `message` (the words of
# a progress report; empty otherwise). Receivers read the workload again for the rest; a
# receiver that fails is logged and does not undo the change (nor fail the worker's request), so
# a consumer that must not miss an end also looks at ended workloads now and then.
workload_changed = Signal()


def announce(workload: Workload, message: str = "") -> None:
    """Send `workload_changed` for this workload once the current transaction commits."""
    kwargs = {
        "organization_id": workload.organization_id,
        "workload_id": workload.pk,
        "kind": workload.kind,
        "state": workload.state,
        "message": message,
    }

    def send() -> None:
        for receiver, outcome in workload_changed.send_robust(sender=Workload, **kwargs):
            if isinstance(outcome, Exception):
                logger.error(
                    "workload_receiver_failed",
                    receiver=getattr(receiver, "__qualname__", repr(receiver)),
                    workload=str(workload.pk),
                    exc_info=outcome,
                )

    transaction.on_commit(send)
