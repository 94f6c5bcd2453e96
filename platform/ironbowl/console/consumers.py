"""The on-air board's websocket: /ws/console/orgs/{org}/board/.

A member whose role may view stations joins the organization's board group and receives its
updates (`console.board`), nothing else. The socket authenticates with the console's session
cookie; "no such organization", "not a member" and "not signed in" close alike (4404), a member
whose role may not view stations gets 4403. Access is checked again whenever it changes
(`ironbowl.realtime.RecheckedAccess`): a member removed, moved to a role without the right, or
signed out is disconnected. The console sends nothing over it.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from ironbowl.console.board import board_group
from ironbowl.realtime import NOT_FOUND, RecheckedAccess
from tenants import selectors
from tenants.models import Organization
from tenants.roles import Permission, role_allows

FORBIDDEN = 4403  # a member whose role may not view stations


class BoardConsumer(RecheckedAccess):
    slug: str = ""

    async def connect(self) -> None:
        self.slug = self.scope["url_route"]["kwargs"]["org"]
        organization, allowed = await database_sync_to_async(self._organization_of_member)(
            self.slug
        )
        if organization is None:
            await self.close(code=NOT_FOUND)
            return
        if not allowed:
            await self.close(code=FORBIDDEN)
            return
        await self.join(board_group(organization.pk))
        await self.accept()

    def allowed(self) -> int | None:
        organization, allowed = self._organization_of_member(self.slug)
        if organization is None:
            return NOT_FOUND
        return None if allowed else FORBIDDEN

    def _organization_of_member(self, slug: str) -> tuple[Organization | None, bool]:
        """The organization and whether the member may view its stations; (None, False) for
        an unknown organization, one the person is not a member of, or no one signed in."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return None, False
        organization = selectors.organization_by_slug(slug)
        if organization is None:
            return None, False
        membership = selectors.membership_of(user, organization)
        if membership is None:
            return None, False
        return organization, role_allows(membership.role, Permission.STATIONS_VIEW)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The board only listens; what a console sends is ignored."""

    async def board_update(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
