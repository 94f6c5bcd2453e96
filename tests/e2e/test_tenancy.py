"""The console never shows another organization's data, in Chromium: the organization switcher
lists only one's own; a URL edited by hand to another organization's object (or to another
organization) shows the console's 404 page, the same as for a missing one, with nothing of it;
a websocket opened from the page to another organization's board is refused, and a board hears
only its own organization's updates.

Real: everything (the ASGI application over HTTP and websockets, sessions, the board's consumer
and group, the channel layer). Nothing is simulated; Beta's rows are made by the factories and
the billing helpers, and Beta's board update is published with the board's publish function in
the server's process."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from ironbowl.console import board
from tests.avatars.factories import onboarded_employment, ready_avatar
from tests.billing.conftest import closed_statement
from tests.e2e.conftest import MARKS, says
from tests.factories import StationFactory
from tests.scheduling import duty_world

pytestmark = MARKS

SECRETS = ("Beta secret room", "贝塔秘书", "Beta Secretary", "beta-bureau", "Beta Market")


@pytest.fixture
def theirs(people):
    """Beta's station, hire, schedule and statement: names that must never show at Alpha."""
    station = StationFactory(organization=people.beta, name="Beta secret room")
    employment = onboarded_employment(
        organization=people.beta,
        status="active",
        avatar=ready_avatar(visibility="public", name_zh="贝塔秘书", name_en="Beta Secretary"),
    )
    schedule = duty_world.schedule(employment, station)
    statement = closed_statement(people.beta, [(employment, "seats", "4321.00")])
    return {
        "station": station,
        "employment": employment,
        "schedule": schedule,
        "statement": statement,
    }


def test_the_switcher_lists_only_ones_own_organizations(console, people):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    switcher = page.locator("[data-testid=org-switcher]")
    options = switcher.locator("option")
    expect(options).to_have_count(2)
    expect(options).to_have_text([people.alpha.name, people.gamma.name])
    assert people.beta.name not in page.content() and people.beta.slug not in page.content()
    console.shot("switcher")
    # Choosing the other one opens its dashboard.
    with page.expect_navigation():
        switcher.select_option(label=people.gamma.name)
    expect(page).to_have_url(console.url(f"/console/o/{people.gamma.slug}/"))


def test_urls_edited_by_hand_show_the_404_page_with_nothing_of_the_other(
    console, people, theirs, language
):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)
    alpha = f"/console/o/{people.alpha.slug}"
    edited = {
        "station": f"{alpha}/stations/{theirs['station'].pk}/",
        "employee": f"{alpha}/employees/{theirs['employment'].pk}/",
        "schedule": f"{alpha}/roster/schedules/{theirs['schedule'].pk}/",
        "statement": f"{alpha}/billing/statements/{theirs['statement'].pk}/",
        "organization": f"/console/o/{people.beta.slug}/",
        "organization-station": f"/console/o/{people.beta.slug}/stations/{theirs['station'].pk}/",
    }
    missing = console.goto(f"{alpha}/stations/{uuid.uuid4()}/")
    assert missing.status == 404
    missing_page = page.inner_text("body")
    for name, path in edited.items():
        response = console.goto(path)
        assert response.status == 404, (name, response.status)
        expect(page.locator("h1")).to_have_text(says(language, "Not found"))
        text, html = page.inner_text("body"), page.content()
        assert text == missing_page, name
        for secret in SECRETS:
            assert secret not in html, (name, secret)
        console.shot(f"404-{name}")


def _open_socket(page, path: str) -> dict[str, object]:
    """Open a websocket from the page (its cookies and origin) and say how it went: opened or
    not, the close code, and the messages received before `window.boardSockets[path]` is read."""
    seen: dict[str, object] = page.evaluate(
        """(path) => new Promise((resolve) => {
            const scheme = location.protocol === "https:" ? "wss://" : "ws://";
            const socket = new WebSocket(scheme + location.host + path);
            const seen = { opened: false, code: null, messages: [] };
            window.boardSockets = window.boardSockets || {};
            window.boardSockets[path] = seen;
            socket.onopen = () => { seen.opened = true; resolve(seen); };
            socket.onmessage = (event) => seen.messages.push(JSON.parse(event.data));
            socket.onclose = (event) => { seen.code = event.code; resolve(seen); };
        })""",
        path,
    )
    return seen


def test_a_websocket_to_another_organizations_board_is_refused(console, people, server):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/on-air/")
    expect(page.locator("[data-testid=board-status]")).to_have_attribute("data-connection", "live")
    own = _open_socket(page, f"/ws/console/orgs/{people.alpha.slug}/board/")
    assert own["opened"] is True
    for slug in (people.beta.slug, "no-such-organization"):
        refused = _open_socket(page, f"/ws/console/orgs/{slug}/board/")
        assert refused["opened"] is False, slug
        assert refused["code"] == 1006, refused  # the handshake was refused: never opened

    # Beta's update never reaches Alpha's board; Alpha's own does.
    page.evaluate("window.notReloaded = true")
    stats = board.Stats(fps=12.0, viewers=7, latency_ms=800)
    server.run(board.publish_board, people.beta.pk, board.stats_update(uuid.uuid4(), stats))
    marker = uuid.uuid4()
    server.run(board.publish_board, people.alpha.pk, board.stats_update(marker, stats))
    own_path = f"/ws/console/orgs/{people.alpha.slug}/board/"
    page.wait_for_function(
        "([path, marker]) => window.boardSockets[path].messages.some(m => m.shift === marker)",
        arg=[own_path, str(marker)],
    )
    messages = page.evaluate("(path) => window.boardSockets[path].messages", own_path)
    assert [m["shift"] for m in messages] == [str(marker)], json.dumps(messages)
    assert page.evaluate("window.notReloaded") is True
    console.shot("board")


def test_a_signed_out_page_cannot_open_a_board(console, people):
    page = console.page
    console.goto("/console/sign-in/")
    refused = _open_socket(page, f"/ws/console/orgs/{people.alpha.slug}/board/")
    assert refused["opened"] is False
