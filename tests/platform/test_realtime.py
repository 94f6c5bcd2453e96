"""The organization activity websocket, through the real ASGI application and channel layer.

Sockets authenticate with a real session cookie (as the console's browser does); stations are
created through the HTTP API. Each test runs on the in-memory layer and, where REDIS_URL is set,
on channels-redis. The socket is driven like channels.testing.WebsocketCommunicator does, on
asgiref's communicator: importing channels.testing needs daphne, which Ironbowl does not use.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.test import Client

from ironbowl.asgi import application
from ironbowl.realtime import NOT_FOUND

pytestmark = pytest.mark.django_db(transaction=True)  # the consumer reads from other threads

ORIGIN = (b"origin", b"http://testserver")


class Socket(ApplicationCommunicator):
    """A websocket client speaking ASGI to the application, as a browser's socket would."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        scope = {
            "type": "websocket",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "subprotocols": [],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        super().__init__(application, scope)

    async def connect(self) -> tuple[bool, int | None]:
        """(True, None) when accepted; (False, close code) when refused."""
        await self.send_input({"type": "websocket.connect"})
        message = await self.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return False, message.get("code", 1000)
        assert message["type"] == "websocket.accept"
        return True, None

    async def receive_json(self) -> dict[str, Any]:
        message = await self.receive_output(timeout=5)
        assert message["type"] == "websocket.send", message
        event: dict[str, Any] = json.loads(message["text"])
        return event

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(timeout=5)


def session_cookie(membership) -> bytes:
    browser = Client()
    browser.force_login(membership.user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={browser.cookies[name].value}".encode()


async def open_socket(slug: str, membership=None, origin=ORIGIN):
    headers = [origin]
    if membership is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(membership)))
    socket = Socket(f"/ws/orgs/{slug}/activity/", headers)
    connected, code = await socket.connect()
    return socket, connected, code


async def create_station(api, organization, name: str) -> str:
    response = await sync_to_async(api.post)(
        f"/api/v1/orgs/{organization.slug}/stations/",
        {"name": name, "kind": "live_room"},
        format="json",
    )
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_member_receives_an_event_when_a_station_is_created(
    channel_layer, org_a, owner_a, api_a
):
    socket, connected, _ = await open_socket(org_a.slug, owner_a)
    assert connected
    try:
        station_id = await create_station(api_a, org_a, "Health live room")

        event = await socket.receive_json()
    finally:
        await socket.disconnect()

    assert event["type"] == "activity"
    assert event["action"] == "station.create"
    assert event["object_type"] == "scheduling.station"
    assert event["object_id"] == station_id
    assert event["actor"] == owner_a.user.email


async def test_foreign_unknown_and_anonymous_sockets_are_refused_alike(
    channel_layer, org_a, owner_b
):
    foreign = await open_socket(org_a.slug, owner_b)
    unknown = await open_socket("no-such-hospital", owner_b)
    anonymous = await open_socket(org_a.slug)

    for _, connected, code in (foreign, unknown, anonymous):
        assert not connected
        assert code == NOT_FOUND == 4404


async def test_a_socket_from_a_foreign_site_is_refused(channel_layer, org_a, owner_a):
    # A page on another site must not open a socket with the member's cookie.
    _, connected, _ = await open_socket(
        org_a.slug, owner_a, origin=(b"origin", b"https://evil.example")
    )

    assert not connected


async def test_an_organizations_events_reach_only_its_own_sockets(
    channel_layer, org_a, org_b, owner_a, owner_b, api_a, api_b
):
    socket_a, connected_a, _ = await open_socket(org_a.slug, owner_a)
    socket_b, connected_b, _ = await open_socket(org_b.slug, owner_b)
    assert connected_a and connected_b
    try:
        station_a = await create_station(api_a, org_a, "Alpha live room")
        assert (await socket_a.receive_json())["object_id"] == station_a
        # Had B's socket been given A's event, it would be queued ahead of B's own; and the same
        # the other way round: each socket's next message is its own organization's.
        station_b = await create_station(api_b, org_b, "Beta hotline")
        next_for_b = await socket_b.receive_json()
        second_a = await create_station(api_a, org_a, "Alpha kiosk")
        next_for_a = await socket_a.receive_json()
    finally:
        await socket_a.disconnect()
        await socket_b.disconnect()

    assert next_for_b["object_id"] == station_b
    assert next_for_a["object_id"] == second_a


async def test_an_idle_socket_still_receives_after_the_redis_clients_default_timeout(
    channel_layer, org_a, owner_a, api_a
):
    """redis-py 8 reads with a 5 s socket timeout by default, which cut channels-redis's
    blocking wait and closed every socket idle for 5 s; the layer's settings lift it."""
    import asyncio

    socket, connected, _ = await open_socket(org_a.slug, owner_a)
    assert connected
    try:
        await asyncio.sleep(6.5)  # idle past the client's default timeout
        station_id = await create_station(api_a, org_a, "Late-night room")
        event = await socket.receive_json()
    finally:
        await socket.disconnect()
    assert event["object_id"] == station_id


async def test_a_member_removed_while_listening_is_disconnected(
    channel_layer, org_a, owner_a, member_factory
):
    """Access is checked again when it changes, not only at connect."""
    from tenants import services
    from tenants.audit import Actor
    from tenants.roles import Role

    analyst = await sync_to_async(member_factory)(org_a, Role.ANALYST)
    socket, connected, _ = await open_socket(org_a.slug, analyst)
    assert connected
    await sync_to_async(services.remove_member)(Actor(user=owner_a.user), analyst)
    message = await socket.receive_output(timeout=5)
    while message["type"] == "websocket.send":  # the removal's own activity hint comes first
        message = await socket.receive_output(timeout=5)
    assert (message["type"], message.get("code")) == ("websocket.close", NOT_FOUND)
