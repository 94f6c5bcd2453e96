"""The on-air board's websocket, through the real ASGI application and channel layer.

Sockets authenticate with a real session cookie (as the console's browser does). Each test runs
on the in-memory layer and, where REDIS_URL is set, on channels-redis (its own key prefix). A
shift is moved through the console's own stop button; a worker's heartbeat through the worker
protocol's HTTP endpoint (the worker itself is simulated: the test posts its heartbeat).
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from inference import tokens as worker_tokens
from inference.contracts import HEARTBEAT_PATH
from ironbowl.console import board
from ironbowl.console.consumers import FORBIDDEN
from ironbowl.realtime import NOT_FOUND
from tenants import services as tenant_services
from tenants.audit import Actor
from tenants.roles import Role
from tests.console.test_board import on_a_worker, on_air
from tests.platform.test_realtime import ORIGIN, Socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)  # the consumer reads from other threads


async def open_board(slug: str, membership=None, origin=ORIGIN):
    headers = [origin]
    if membership is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(membership)))
    socket = Socket(f"/ws/console/orgs/{slug}/board/", headers)
    connected, code = await socket.connect()
    return socket, connected, code


async def test_a_member_receives_what_is_published_for_the_organization(
    channel_layer, org_a, owner_a
):
    socket, connected, _ = await open_board(org_a.slug, owner_a)
    assert connected
    try:
        await board.apublish_board(org_a.pk, {"type": "stats", "shift": "s1", "fps": 25.0})
        event = await socket.receive_json()
    finally:
        await socket.disconnect()
    assert event == {"type": "stats", "shift": "s1", "fps": 25.0}


async def test_a_foreign_member_is_refused_like_a_missing_organization(
    channel_layer, org_a, owner_b
):
    foreign = await open_board(org_a.slug, owner_b)
    missing = await open_board("no-such-hospital", owner_b)
    anonymous = await open_board(org_a.slug)

    for _, connected, code in (foreign, missing, anonymous):
        assert not connected
        assert code == NOT_FOUND == 4404


async def test_a_role_without_the_board_is_refused(channel_layer, org_a, member_factory):
    billing = await sync_to_async(member_factory)(org_a, Role.BILLING)
    analyst = await sync_to_async(member_factory)(org_a, Role.ANALYST)

    _, billing_connected, code = await open_board(org_a.slug, billing)
    socket, analyst_connected, _ = await open_board(org_a.slug, analyst)
    await socket.disconnect()

    assert (billing_connected, code) == (False, FORBIDDEN)
    assert analyst_connected


async def test_a_socket_from_a_foreign_site_is_refused(channel_layer, org_a, owner_a):
    _, connected, _ = await open_board(
        org_a.slug, owner_a, origin=(b"origin", b"https://evil.example")
    )
    assert not connected


async def test_an_update_for_one_organization_reaches_only_its_boards(
    channel_layer, org_a, org_b, owner_a, owner_b
):
    socket_a, connected_a, _ = await open_board(org_a.slug, owner_a)
    socket_b, connected_b, _ = await open_board(org_b.slug, owner_b)
    assert connected_a and connected_b
    try:
        await sync_to_async(board.publish_board)(org_a.pk, {"type": "shift", "shift": "a1"})
        first_a = await socket_a.receive_json()
        # Had B's socket been given A's update, it would be queued ahead of B's own.
        await sync_to_async(board.publish_board)(org_b.pk, {"type": "shift", "shift": "b1"})
        first_b = await socket_b.receive_json()
        await sync_to_async(board.publish_board)(org_a.pk, {"type": "shift", "shift": "a2"})
        second_a = await socket_a.receive_json()
    finally:
        await socket_a.disconnect()
        await socket_b.disconnect()

    assert [first_a["shift"], first_b["shift"], second_a["shift"]] == ["a1", "b1", "a2"]


async def test_stopping_a_shift_in_the_console_updates_the_board(
    channel_layer, org_a, owner_a, console_a
):
    shift = await sync_to_async(on_air)(org_a)
    socket, connected, _ = await open_board(org_a.slug, owner_a)
    assert connected
    try:
        url = reverse("console:board-stop", args=[org_a.slug, shift.pk])
        response = await sync_to_async(console_a.post)(url, {"submit_token": "stop-1"})
        assert response.status_code == 302
        event = await socket.receive_json()
    finally:
        await socket.disconnect()

    assert event == {"type": "shift", "shift": str(shift.pk), "state": "ended"}


def _heartbeat(worker, workload_ids: list[str], stats: dict[str, Any]) -> int:
    token = worker_tokens.new_token()
    worker.token_hash = worker_tokens.hash_token(token)
    worker.save(update_fields=["token_hash"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {"slots_used": 1, "running": workload_ids, "stats": stats}
    return client.post(HEARTBEAT_PATH, body, format="json").status_code


async def test_a_workers_heartbeat_pushes_the_streams_frames_per_second(
    channel_layer, org_a, org_b, owner_a, owner_b
):
    shift = await sync_to_async(on_air)(org_a)
    foreign = await sync_to_async(on_air)(org_b)
    worker = await sync_to_async(on_a_worker)(shift)
    socket_a, connected_a, _ = await open_board(org_a.slug, owner_a)
    socket_b, connected_b, _ = await open_board(org_b.slug, owner_b)
    assert connected_a and connected_b
    try:
        # The worker also names a workload it does not run (another organization's): ignored.
        status = await sync_to_async(_heartbeat)(
            worker,
            [str(shift.workload_id)],
            {str(shift.workload_id): {"fps": 24.5}, str(foreign.workload_id): {"fps": 3.0}},
        )
        assert status == 200
        event = await socket_a.receive_json()
        # Had B's board been given the foreign workload's numbers, they would come first.
        await sync_to_async(board.publish_board)(org_b.pk, {"type": "shift", "shift": "b1"})
        first_b = await socket_b.receive_json()
    finally:
        await socket_a.disconnect()
        await socket_b.disconnect()

    assert event == {
        "type": "stats",
        "shift": str(shift.pk),
        "fps": 24.5,
        "viewers": None,
        "latency_ms": None,
    }
    assert first_b == {"type": "shift", "shift": "b1"}
    stats = await sync_to_async(board.stats_of)(org_b, [foreign])
    assert stats[foreign.pk].fps is None


def test_a_heartbeat_with_malformed_stats_is_refused_whole(org_a):
    shift = on_air(org_a)
    worker = on_a_worker(shift)
    workload = str(shift.workload_id)
    for stats in ({workload: {"fps": -1}}, {"not-a-uuid": {"fps": 25}}, {workload: {}}):
        assert _heartbeat(worker, [workload], stats) == 400
    assert board.stats_of(org_a, [shift])[shift.pk].fps is None


async def _closed_with(socket) -> int | None:
    """The close code the server sent next (None if it sent something else)."""
    message = await socket.receive_output(timeout=5)
    return message.get("code") if message["type"] == "websocket.close" else None


async def test_a_member_removed_while_watching_is_disconnected(
    channel_layer, org_a, owner_a, member_factory
):
    operator = await sync_to_async(member_factory)(org_a, Role.OPERATOR)
    socket, connected, _ = await open_board(org_a.slug, operator)
    assert connected
    await sync_to_async(tenant_services.remove_member)(Actor(user=owner_a.user), operator)
    assert await _closed_with(socket) == NOT_FOUND


async def test_a_member_moved_to_a_role_without_the_board_is_disconnected(
    channel_layer, org_a, owner_a, member_factory
):
    analyst = await sync_to_async(member_factory)(org_a, Role.ANALYST)
    socket, connected, _ = await open_board(org_a.slug, analyst)
    assert connected
    await sync_to_async(tenant_services.change_member_role)(
        Actor(user=owner_a.user, role=Role.OWNER), analyst, Role.BILLING
    )
    assert await _closed_with(socket) == FORBIDDEN


async def test_signing_out_closes_that_sessions_board(channel_layer, org_a, owner_a):
    browser = Client()
    await sync_to_async(browser.force_login)(owner_a.user)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={browser.cookies[name].value}".encode()
    socket = Socket(f"/ws/console/orgs/{org_a.slug}/board/", [ORIGIN, (b"cookie", cookie)])
    connected, _ = await socket.connect()
    assert connected
    await sync_to_async(browser.post)(reverse("console:sign-out"))
    assert await _closed_with(socket) == NOT_FOUND
