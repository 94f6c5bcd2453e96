from __future__ import annotations

from typing import Any

import structlog
from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save

logger = structlog.get_logger(__name__)


class IronbowlConfig(AppConfig):
    name = "ironbowl"
    verbose_name = "Ironbowl platform"

    def ready(self) -> None:
        from tenants.models import AuditEntry

        post_save.connect(_publish_after_commit, sender=AuditEntry, dispatch_uid="activity-feed")


def _publish_after_commit(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    if not created:
        return

    def publish() -> None:
        from ironbowl.realtime import publish_activity

        try:
            publish_activity(instance)
        except Exception:  # a hint lost must never fail the change that was committed
            logger.warning("activity_publish_failed", exc_info=True)

    transaction.on_commit(publish)
