"""Shared fixtures: two organizations, members in every role, API clients, channel layers."""

from __future__ import annotations

import os

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, connections
from rest_framework.test import APIClient

from tenants.models import Organization
from tenants.roles import Role
from tests import factories
from tests.support import layer_settings


def _require_services_in_ci() -> None:
    # In CI the real PostgreSQL and Redis must be used: a silent fallback to SQLite would hide bugs.
    if not os.environ.get("CI"):
        return
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.exit("CI is set but DATABASE_URL does not point at PostgreSQL", returncode=3)
    if not os.environ.get("REDIS_URL"):
        pytest.exit("CI is set but REDIS_URL is empty", returncode=3)


_require_services_in_ci()


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _default_language():
    """A request in Chinese leaves Chinese active in the thread (Django's locale middleware
    does not switch back); the next test starts in the default language again."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture
def org_a(db) -> Organization:
    return factories.OrganizationFactory(slug="alpha-hospital", name="Alpha Hospital")


@pytest.fixture
def org_b(db) -> Organization:
    return factories.OrganizationFactory(
        slug="beta-bureau", name="Beta Market Supervision Bureau", kind="market_supervision"
    )


@pytest.fixture
def member_factory(db):
    def make(organization: Organization, role: str = Role.OWNER):
        return factories.MembershipFactory(organization=organization, role=role)

    return make


@pytest.fixture
def client_for():
    """An APIClient logged in as the membership's user (session auth, as the console)."""

    def make(membership) -> APIClient:
        client = APIClient()
        client.force_authenticate(user=membership.user)
        return client

    return make


@pytest.fixture
def owner_a(org_a, member_factory):
    return member_factory(org_a, Role.OWNER)


@pytest.fixture
def owner_b(org_b, member_factory):
    return member_factory(org_b, Role.OWNER)


@pytest.fixture
def api_a(client_for, owner_a) -> APIClient:
    return client_for(owner_a)


@pytest.fixture
def api_b(client_for, owner_b) -> APIClient:
    return client_for(owner_b)


@pytest.fixture
def vendor():
    return connection.vendor


@pytest.fixture(params=["in-memory", "redis"])
async def channel_layer(request, settings):
    """Each websocket test on the in-memory layer and on channels-redis."""
    settings.CHANNEL_LAYERS = layer_settings(request.param)  # channels resets its layers on this
    layer = get_channel_layer()
    yield layer
    if hasattr(layer, "close_pools"):
        await layer.close_pools()
    # The consumer and the API calls ran in asgiref's worker thread: close its connections, or
    # PostgreSQL refuses to drop the test database at the end of the session.
    await sync_to_async(connections.close_all)()
