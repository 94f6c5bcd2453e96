"""Websockets: an organization's live activity feed.

A member connects to /ws/orgs/{org}/activity/ and receives a small hint for each audited change
in that organization. Access is checked at connect and again when it changes (a membership
removed or its role changed, a sign-out): a socket whose person may no longer listen closes.
Hints may be dropped under load (channel layers drop over capacity), so clients re-fetch what
they show; a socket never carries another organization's events.
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


def access_group(user_id: object) -> str:
    """Every open socket of one person: told to check its access again."""
    return f"user.{user_id}.access"


def access_changed(user_id: object, ended_session: str | None = None) -> None:
    """Tell a person's open sockets to check again that they may still listen (a membership
    removed or its role changed); those that may not close. `ended_session`: the session just
    signed out, whose sockets close at once (its row may not be gone yet)."""
    layer = get_channel_layer()
    if layer is not None:
        event = {"type": "access.changed", "ended_session": ended_session}
        async_to_sync(layer.group_send)(access_group(user_id), event)


class RecheckedAccess(AsyncJsonWebsocketConsumer):
    """A socket whose right to listen is checked at connect and again whenever the person's
    access changes (`access_changed`): the session must still exist and `allowed()` still hold,
    or the socket closes with the code `allowed()` gives."""

    groups_joined: tuple[str, ...] = ()

    def allowed(self) -> int | None:
        """None while the person may listen; else the close code. Runs in a thread."""
        raise NotImplementedError

    def _still_allowed(self) -> int | None:
        session = self.scope.get("session")
        if session is None or not session.exists(session.session_key):
            return NOT_FOUND
        return self.allowed()

    async def join(self, *groups: str) -> None:
        user = self.scope["user"]
        self.groups_joined = (*groups, access_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def access_changed(self, event: dict[str, Any]) -> None:
        session = self.scope.get("session")
        ended = event.get("ended_session")
        if ended and session is not None and session.session_key == ended:
            await self.close(code=NOT_FOUND)
            return
        code = await database_sync_to_async(self._still_allowed)()
        if code is not None:
            await self.close(code=code)


class ActivityConsumer(RecheckedAccess):
    organization: Organization | None = None

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["org"]
        self.organization = await database_sync_to_async(self._organization_of_member)(slug)
        if self.organization is None:
            await self.close(code=NOT_FOUND)
            return
        await self.join(activity_group(self.organization.pk))
        await self.accept()

    def allowed(self) -> int | None:
        slug = self.organization.slug if self.organization else ""
        return None if self._organization_of_member(slug) is not None else NOT_FOUND

    def _organization_of_member(self, slug: str) -> Organization | None:
        user = self.scope.get("user")
        organization = selectors.organization_by_slug(slug)
        if user is None or organization is None or not user.is_authenticated:
            return None
        return organization if selectors.membership_of(user, organization) else None

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
