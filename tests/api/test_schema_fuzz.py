"""The OpenAPI schema is valid and complete, and requests generated from it never get a 5xx.

Schemathesis loads /api/schema/ from the real WSGI application and sends it generated requests
(schema-conforming and not) in process, against the real database: as an organization owner's API
key, then (fewer examples) as the owner's signed-in browser session with its CSRF token. For an
object's URL, part of the requests name real objects of the organization rather than generated
ids. Hypothesis runs derandomized with a fixed number of examples per operation, so a run is
repeatable. Rate limits are raised for these runs.
"""

from __future__ import annotations

import collections
import copy
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tenants.roles import API_KEY_SCOPES
from tests import factories
from tests.api import isolation

SCHEMA_URL = "/api/schema/?format=json"
LOGOUT = ("POST", "/api/v1/auth/logout/")
# Examples per run, shared out evenly over the operations (at least MIN_EXAMPLES each), so the
# time stays near 40 s on two cores as endpoints are added.
API_KEY_EXAMPLES = 1200
SESSION_EXAMPLES = 500
MIN_EXAMPLES = 5


def _schema_document() -> dict[str, Any]:
    """The schema as JSON, the way a client generator would fetch it."""
    response = APIClient().get(SCHEMA_URL)
    assert response.status_code == 200, response.content[:500]
    assert "json" in response["Content-Type"]
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_and_lists_every_organization_route():
    GENERATOR_STATS.reset()

    document = _schema_document()

    warnings = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    assert not warnings, "drf-spectacular warned while generating the schema:\n" + "\n".join(
        warnings
    )
    validate_schema(document)
    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for route in isolation.org_routes():
        documented = document["paths"].get(route.openapi_path)
        assert documented is not None, f"{route.openapi_path} is missing from the schema"
        for method in route.actions:
            assert method in documented, f"{method.upper()} {route.openapi_path} is undocumented"
    loaded = schemathesis.openapi.from_dict(document)
    assert all(isinstance(result, Ok) for result in loaded.get_all_operations())


@pytest.mark.parametrize(
    ("query", "status"),
    [
        # PostgreSQL refuses UTC offsets beyond ±15:59; ISO 8601 and Python allow up to ±23:59.
        ({"since": "2026-11-20T23:36:02+20:11"}, 200),
        # Before year 1 once in UTC.
        ({"until": "0001-01-01T00:00:00+05:00"}, 400),
    ],
)
def test_audit_time_filters_the_fuzzer_broke_are_answered(api_a, org_a, query, status):
    response = api_a.get(f"/api/v1/orgs/{org_a.slug}/audit/", query)

    assert response.status_code == status, response.content


def _without_api_key_security(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "security" in operation:
                operation["security"] = [
                    requirement
                    for requirement in operation["security"]
                    if "ApiKey" not in requirement
                ]
    return document


@pytest.fixture
def unthrottled(settings):
    """Rate limits are tested elsewhere; here they would turn generated requests into 429s."""
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "1000000/minute")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


@pytest.fixture
def wsgi_app(unthrottled):
    """The production WSGI handler, run in this thread against the test database.

    Like Django's test client, stop each request from closing the database connection: that
    would end the test's transaction. (The test client reconnects the signal after each of its
    requests, so tests using this fixture send requests only through the handler.)
    """
    from ironbowl.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _send_examples(
    cases: Any,
    examples: int,
    credentials: dict[str, Any],
    seen: collections.Counter[int],
    server_errors: list[str],
) -> None:
    @hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def send(case: Any) -> None:
        # Buffered: the body is read whole, then closed, as a WSGI server does (a streamed
        # file, such as a portrait, lets go of its file only when closed).
        response = case.call(buffered=True, **credentials)
        seen[response.status_code] += 1
        try:
            case.validate_response(
                response, checks=[not_a_server_error], headers=credentials.get("headers")
            )
        except FailureGroup as failure:  # keep going; report them all at the end
            server_errors.append(str(failure))

    send()


def _fuzz(schema: Any, world: isolation.World, budget: int, credentials: dict[str, Any]):
    """Send generated requests for every operation; return server errors and status counts."""
    routes = {route.openapi_path: route for route in isolation.org_routes()}
    slug = world.organization.slug
    server_errors: list[str] = []
    statuses: dict[tuple[str, str], collections.Counter[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    # Deleting the organization's objects, or signing out, would spoil what follows: do it last.
    # Deepest first, so that a station's operators are revoked before the station is deleted.
    operations.sort(
        key=lambda op: (
            (op.method.upper(), op.path) == LOGOUT,
            op.method.upper() == "DELETE",
            -len(op.path) if op.method.upper() == "DELETE" else 0,
        )
    )
    examples = max(MIN_EXAMPLES, budget // len(operations))
    for operation in operations:
        fixed: list[dict[str, str] | None] = [None]
        if "{org}" in operation.path:
            fixed = [{"org": slug}]
            route = routes.get(operation.path)
            if route is not None and route.object_kwargs:
                real_ids = {
                    "id" if name == route.lookup_kwarg else name: value
                    for name, value in world.url_kwargs(route).items()
                }
                fixed.append({"org": slug, **real_ids})
        cases = st.one_of(
            [
                operation.as_strategy(mode, path_parameters=path_parameters)
                for path_parameters in fixed
                for mode in schemathesis.GenerationMode
            ]
        )
        seen = statuses.setdefault(
            (operation.method.upper(), operation.path), collections.Counter()
        )
        _send_examples(cases, examples, credentials, seen, server_errors)
    return server_errors, statuses


def _assert_fuzz_ok(server_errors: list[str], statuses) -> None:
    # On PostgreSQL a database error aborts the test's transaction: the first error is the one.
    assert not server_errors, (
        f"{len(server_errors)} server errors (the first one first):\n\n"
        + "\n\n".join(server_errors[:5])
    )
    # The credentials work: the organization and its stations were read.
    assert statuses[("GET", "/api/v1/orgs/{org}/")][200]
    assert statuses[("GET", "/api/v1/orgs/{org}/stations/")][200]


@pytest.mark.django_db
def test_fuzzing_as_an_owners_api_key_never_gets_a_server_error(wsgi_app, org_a, owner_a):
    schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, wsgi_app)
    world = isolation.build_world(org_a)
    _key, token = factories.make_api_key(org_a, scopes=sorted(API_KEY_SCOPES), name="fuzzer")

    errors, statuses = _fuzz(
        schema, world, API_KEY_EXAMPLES, {"headers": {"Authorization": f"Bearer {token}"}}
    )

    _assert_fuzz_ok(errors, statuses)


@pytest.mark.django_db
def test_fuzzing_as_an_owners_session_never_gets_a_server_error(wsgi_app, org_a, owner_a):
    # Without the API key scheme: its generated bearer tokens would be refused before the session
    # is looked at (rightly), leaving the session little to exercise.
    document = schemathesis.openapi.from_wsgi(SCHEMA_URL, wsgi_app).raw_schema
    schema = schemathesis.openapi.from_dict(_without_api_key_security(document))
    world = isolation.build_world(org_a)
    browser = Client()
    browser.force_login(owner_a.user)
    csrf_secret = "k" * 32
    credentials = {
        "cookies": {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf_secret},
        "headers": {"X-CSRFToken": csrf_secret},
    }

    errors, statuses = _fuzz(schema, world, SESSION_EXAMPLES, {"app": wsgi_app, **credentials})

    _assert_fuzz_ok(errors, statuses)
