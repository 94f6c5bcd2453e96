from __future__ import annotations

from typing import Any

import structlog
from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save

from tenants.signals import membership_removed, membership_role_changed

logger = structlog.get_logger(__name__)


class IronbowlConfig(AppConfig):
    name = "ironbowl"
    verbose_name = "Ironbowl platform"

    def ready(self) -> None:
        from tenants.models import AuditEntry

        post_save.connect(_publish_after_commit, sender=AuditEntry, dispatch_uid="activity-feed")
        # Open sockets check again that their person may still listen.
        membership_removed.connect(_access_changed, dispatch_uid="sockets-member-removed")
        membership_role_changed.connect(_access_changed, dispatch_uid="sockets-role-changed")
        user_logged_out.connect(_signed_out, dispatch_uid="sockets-signed-out")


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


def _tell_sockets(user_id: Any, ended_session: str | None = None) -> None:
    from ironbowl.realtime import access_changed

    try:
        access_changed(user_id, ended_session)
    except Exception:  # sockets are told at best effort; the change itself stands
        logger.warning("access_changed_publish_failed", exc_info=True)


def _access_changed(sender: Any, membership: Any, **_: Any) -> None:
    user_id = membership.user_id
    transaction.on_commit(lambda: _tell_sockets(user_id))


def _signed_out(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        _tell_sockets(user.pk, getattr(request.session, "session_key", None))
