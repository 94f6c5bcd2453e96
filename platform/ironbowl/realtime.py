"""Websockets: an organization's live activity feed.

A member connects to /ws/orgs/{org}/activity/ and receives a small hint for each audited change
in that organization. Hints may be dropped under load (channel layers drop over capacity), so
clients re-fetch what they show; a socket never carries another organization's events.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from tenants import selectors
from tenants.models import AuditEntry, Organization

NOT_FOUND = 4404  # the same close code for "no such organization" and "not yours"


def activity_group(organization_id: object) -> str:
    return f"org.{organization_id}.activity"


class ActivityConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["org"]
        organization = await database_sync_to_async(self._organization_of_member)(slug)
        if organization is None:
            await self.close(code=NOT_FOUND)
            return
        self.group = activity_group(organization.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    def _organization_of_member(self, slug: str) -> Organization | None:
        user = self.scope.get("user")
        organization = selectors.organization_by_slug(slug)
        if user is None or organization is None or not user.is_authenticated:
            return None
        return organization if selectors.membership_of(user, organization) else None

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def activity_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])


def publish_activity(entry: AuditEntry) -> None:
    """Push a hint about an audit entry to its organization's sockets (after commit)."""
    layer = get_channel_layer()
    if layer is None:
        return
    payload = {
        "type": "activity",
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "actor": entry.actor_label,
        "at": entry.created_at.isoformat(),
    }
    async_to_sync(layer.group_send)(
        activity_group(entry.organization_id), {"type": "activity.event", "payload": payload}
    )
