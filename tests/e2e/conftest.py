"""Browser fixtures: the real ASGI application on a free port, and Debian's Chromium driven by
Playwright's sync API.

Real: the whole application (Django's HTTP stack, sessions, CSRF, the console's templates, static
files through WhiteNoise, websockets through Channels) served by uvicorn in a thread of the test
process, on the test database (pytest-django's transactional `db`, so that what a test writes is
committed and the server's threads see it); a headless Chromium that loads, clicks and types as a
person would. Each test gets a fresh browser context (no cookies) and a fresh server.

Screenshots are written to $E2E_ARTIFACTS (default artifacts/e2e/, git-ignored): one per step a
journey passes, named after the test, its language and the step.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

from tenants.models import Membership, Organization
from tenants.roles import Role
from tests import factories
from tests.support import require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "zh-hans")
# Playwright's own browser builds cannot be downloaded here: Debian's package is used instead.
CHROMIUM_COMMAND = "chromium"
TIMEOUT_MS = 30_000
T = TypeVar("T")


# Every module's marks: starts a server and a browser; the test database committed (the server's
# threads must see it); and WhiteNoise's static files, whose bodies are plain iterators, which
# Django serves over ASGI by reading them whole with a warning (production logs it too).
MARKS = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings(
        "ignore:StreamingHttpResponse must consume synchronous iterators:Warning"
    ),
]


def artifacts_dir() -> Path:
    return Path(os.environ.get("E2E_ARTIFACTS") or REPO_ROOT / "artifacts" / "e2e")


@pytest.fixture(autouse=True)
def _playwright_loop_is_not_async_code(monkeypatch) -> None:
    """Playwright's sync API runs its event loop in a greenlet of the test's thread, so between
    its calls that loop still counts as running in this thread, and Django's guard against
    blocking database calls in async code would refuse the test's own queries. The guard is
    lifted for the test's thread only: the server's threads keep it, so a consumer that queried
    the database from its event loop would still fail. (Code that publishes to the channel
    layer runs with `LiveServer.run` instead.)"""
    import django.utils.asyncio as guard

    test_thread = threading.current_thread()
    real = guard.get_running_loop

    def running_loop() -> Any:
        if threading.current_thread() is test_thread:
            raise RuntimeError("no running event loop")
        return real()

    monkeypatch.setattr(guard, "get_running_loop", running_loop)


@dataclass
class LiveServer:
    """The application served on `url`, by uvicorn on `loop` in a thread of this process."""

    url: str
    loop: asyncio.AbstractEventLoop

    def run(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `action` in the server's process as its own sync code runs (a thread of its
        event loop's executor) and return its result: what it publishes to the channel layer
        (after commit) goes through the server's loop, as a request's publishes do. For the
        test's own work that stands in for another part of the system (the duty tick, the
        orchestrator); the test's thread cannot publish, its loop being Playwright's."""
        from asgiref.sync import sync_to_async

        def closing() -> T:
            try:
                return action(*args, **kwargs)
            finally:
                connections.close_all()

        async def call() -> T:
            return await sync_to_async(closing, thread_sensitive=False)()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=120)


@pytest.fixture
def server(monkeypatch, transactional_db) -> Iterator[LiveServer]:
    """The ASGI application on a free port, served by uvicorn on an event loop of its own in a
    thread of this process (so that it shares the test database and, without Redis, the
    in-memory channel layer). Its requests and consumers run in executor threads that end with
    the server: each closes its database connection after use (as with CONN_MAX_AGE=0), or
    PostgreSQL connections would be left open when those threads go.

    Each server gets channel layers of its own: a channels-redis layer keeps asyncio locks and
    queues bound to the event loop that first waited on them, and one left over from an earlier
    server's loop fails in this one with "bound to a different event loop"."""
    import uvicorn
    from channels.layers import channel_layers

    from ironbowl.asgi import application

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    monkeypatch.setattr(channel_layers, "backends", {})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    config = uvicorn.Config(application, lifespan="off", log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(uvicorn_server.serve(sockets=[listener]))
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            # Closed here, where no other loop runs: channels-redis flushes its layers on
            # close, which the test's thread (Playwright's loop running) could not do.
            loop.close()

    thread = threading.Thread(target=serve)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uvicorn_server.started, "the web server did not start"
    try:
        yield LiveServer(url=f"http://{host}:{port}", loop=loop)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; the test is skipped without it (failed under CI, which installs it)."""
    require_tool(CHROMIUM_COMMAND, "chromium")
    path = shutil.which(CHROMIUM_COMMAND)
    assert path is not None
    return path


@pytest.fixture
def browser(chromium, transactional_db) -> Iterator[Any]:
    """Chromium, driven by Playwright's sync API.

    While Playwright runs, its event loop counts as running in the test's thread, and Django
    keeps that thread's database connections apart from the ones it had before (asgiref's
    thread-critical storage behaves like a context variable under a running loop). Those are
    closed before Playwright stops, or PostgreSQL would keep them open to the end of the run
    (and refuse to drop the test database). The database is set up before Playwright starts
    (this fixture needs it) and flushed after it stops, on the thread's own connection."""
    from playwright.sync_api import expect, sync_playwright

    # A loaded machine (CI, two cores) can take more than expect's default 5 s to show a page.
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
            connections.close_all()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@dataclass
class Console:
    """One person's browser on the console: a page of a fresh context, and what they did."""

    page: Any
    base_url: str
    name: str  # the test's name, for screenshots
    shots: list[Path] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> Any:
        return self.page.goto(self.url(path))

    def shot(self, step: str) -> Path:
        """A full-page screenshot of what the person sees now, kept as an artifact."""
        folder = artifacts_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}-{len(self.shots) + 1:02d}-{_slug(step)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def sign_in(self, email: str, password: str = factories.PASSWORD) -> None:
        """Fill in the sign-in page (the one shown now, or the console's own) and send it."""
        page = self.page
        if "/console/sign-in/" not in page.url:
            self.goto("/console/sign-in/")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("form button[type=submit].primary")

    def choose_language(self, code: str) -> None:
        """Pick a language in the console's switcher (it reloads the page in that language)."""
        from playwright.sync_api import expect

        page = self.page
        switcher = page.locator("select[data-testid=language]").first
        if switcher.input_value() == code:
            return
        with page.expect_navigation():
            switcher.select_option(code)
        expect(page.locator("html")).to_have_attribute("lang", code)

    def text(self) -> str:
        return str(self.page.inner_text("body"))


@pytest.fixture
def console_in(browser, server, request) -> Iterator[Callable[..., Console]]:
    """A fresh browser context (no cookies) on the live server: `console_in()`; a second call
    gives a second person their own context; keyword arguments are Playwright's context
    options (java_script_enabled=False: a browser without scripts)."""
    contexts: list[Any] = []

    def make(person: str = "", **options: Any) -> Console:
        context = browser.new_context(
            base_url=server.url, viewport={"width": 1280, "height": 900}, **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        name = _slug(request.node.name + (f"-{person}" if person else ""))
        return Console(page=context.new_page(), base_url=server.url, name=name)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def console(console_in) -> Console:
    return console_in()


@dataclass
class People:
    """The organizations and people of the journeys."""

    alpha: Organization  # the hospital the journeys work in
    beta: Organization  # another tenant: nothing of it may show
    gamma: Organization  # a second organization of Alpha's owner
    owner: Membership  # Alpha's owner, also an admin of Gamma
    other: Membership  # Beta's owner

    @property
    def email(self) -> str:
        return str(self.owner.user.email)


@pytest.fixture
def people(transactional_db) -> People:
    alpha = factories.OrganizationFactory(
        slug="alpha-hospital", name="Alpha Hospital", time_zone="Asia/Shanghai"
    )
    beta = factories.OrganizationFactory(
        slug="beta-bureau", name="Beta Market Supervision Bureau", kind="market_supervision"
    )
    gamma = factories.OrganizationFactory(slug="gamma-clinic", name="Gamma Clinic")
    owner = factories.MembershipFactory(
        organization=alpha, role=Role.OWNER, user__email="owner@alpha.example"
    )
    factories.MembershipFactory(organization=gamma, role=Role.ADMIN, user=owner.user)
    other = factories.MembershipFactory(
        organization=beta, role=Role.OWNER, user__email="owner@beta.example"
    )
    return People(alpha=alpha, beta=beta, gamma=gamma, owner=owner, other=other)


def says(language: str, msgid: str, **values: Any) -> str:
    """What the console shows for `msgid` in `language` (from the compiled catalogues); in a
    language other than English it must be translated, or the test fails here."""
    from django.utils import translation

    with translation.override(language):
        text = translation.gettext(msgid)
    if language != "en":
        assert text != msgid, f"no {language} translation of {msgid!r}"
    return text % values if values else text


def named(language: str, avatar: Any) -> str:
    """An avatar's (or hire's) name as the console shows it in `language`."""
    from django.utils import translation

    from ironbowl.console.names import avatar_name

    with translation.override(language):
        return avatar_name(avatar)


@pytest.fixture(params=LANGUAGES)
def language(request) -> str:
    return str(request.param)
