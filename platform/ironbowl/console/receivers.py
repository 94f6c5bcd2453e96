"""What keeps the on-air board live: each shift's move and each new measurement is pushed to the
organization's boards once its change has committed (`console.board`).

Every move of a shift is audited as `shift.<verb>` by the duty machine (`scheduling.duty`), so
the audit entry is the one place that sees them all: the tick, the operators' actions and the
streams that came on air or ended. A push that fails is logged; it never undoes the change.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from inference.signals import interaction_recorded, stream_stats_reported
from ironbowl.console import board
from tenants.models import AuditEntry

logger = structlog.get_logger(__name__)

SHIFT_OBJECT = "scheduling.shift"


@receiver(post_save, sender=AuditEntry, dispatch_uid="console.board.shift_moved")
def _shift_moved(sender: Any, instance: AuditEntry, created: bool, **_: Any) -> None:
    if not created or instance.object_type != SHIFT_OBJECT:
        return
    if not instance.action.startswith("shift."):
        return
    after = instance.after if isinstance(instance.after, dict) else {}
    state = str(after.get("state", ""))
    organization_id, shift_id = instance.organization_id, instance.object_id

    def publish() -> None:
        try:
            board.publish_shift_moved(organization_id, shift_id, state)
        except Exception:  # a hint lost must never fail the change that was committed
            logger.warning("board_publish_failed", shift=shift_id, exc_info=True)

    transaction.on_commit(publish)


@receiver(stream_stats_reported, dispatch_uid="console.board.stream_stats")
def _stream_measured(sender: Any, organization_id: Any, workload_ids: list[str], **_: Any) -> None:
    board.publish_stats_of_workloads(organization_id, workload_ids)


@receiver(interaction_recorded, dispatch_uid="console.board.latency")
def _conversation_recorded(
    sender: Any, organization_id: Any, interaction_id: Any, **_: Any
) -> None:
    board.publish_stats_of_interaction(organization_id, interaction_id)
