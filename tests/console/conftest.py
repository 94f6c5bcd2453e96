"""Console fixtures: Django test clients signed in as members of the two organizations.

The console is driven through Django's test client (real middleware, sessions, CSRF off as in
Django's client); the browser journeys in tests/e2e drive it in Chromium."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tenants.models import Membership


@pytest.fixture
def console_for():
    """A test client signed in (a real session) as the membership's user."""

    def make(membership: Membership) -> Client:
        client = Client()
        client.force_login(membership.user)
        return client

    return make


@pytest.fixture
def console_a(console_for, owner_a) -> Client:
    return console_for(owner_a)


@pytest.fixture
def console_b(console_for, owner_b) -> Client:
    return console_for(owner_b)


def submit_token(html: str) -> str:
    """The submit token of the first form on a page (each form carries one)."""
    match = re.search(r'name="submit_token" value="([^"]+)"', html)
    assert match, "the page has no form with a submit token"
    return match.group(1)


def without_tokens(html: bytes | str) -> str:
    """A page with its per-request tokens (CSRF, submit) blanked, to compare two answers."""
    text = html.decode() if isinstance(html, bytes) else html
    text = re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', text)
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken"', text)
    return re.sub(r'name="submit_token" value="[^"]*"', 'name="submit_token"', text)
