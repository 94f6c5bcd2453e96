"""Every organization endpoint, probed from a second organization, acts as if the first
organization's objects did not exist, and changes none of them.

The routes are found by walking the URL configuration, so a new endpoint is probed without anyone
writing a test for it; a model or URL argument the probes cannot make fails that route's test with
a message saying what to add to tests/api/isolation.py. Nothing is simulated: real views, the real
database, organization B's owner signed in (forced session login) and a real API key of B with
every scope an API key may have.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from tenants.models import AuditEntry, Organization
from tenants.roles import API_KEY_SCOPES
from tests import factories
from tests.api import isolation
from tests.api.isolation import OrgRoute, World

ROUTES = isolation.org_routes()

KNOWN_ROUTE_NAMES = {
    "organization-detail",
    "member-list",
    "member-detail",
    "invitation-list",
    "invitation-detail",
    "invitation-revoke",
    "api-key-list",
    "api-key-detail",
    "api-key-revoke",
    "audit-entry-list",
    "audit-entry-detail",
    "station-list",
    "station-detail",
    "station-operators",
    "station-revoke-operator",
    "station-open-session",
    "station-rotate-widget-key",
    "schedule-list",
    "schedule-detail",
    "holiday-calendar-list",
    "holiday-calendar-detail",
    "holiday-calendar-import-days",
    "holiday-list",
    "holiday-detail",
    "roster-list",
    "roster-gaps",
    "avatar-list",
    "avatar-detail",
    "avatar-retire",
    "avatar-versions",
    "avatar-hires",
    "avatar-portrait",
    "market-avatar-list",
    "market-avatar-detail",
    "market-avatar-portrait",
    "knowledge-entry-list",
    "knowledge-entry-detail",
    "knowledge-entry-import-csv",
    "knowledge-document-list",
    "knowledge-document-detail",
    "position-list",
    "position-detail",
    "employment-list",
    "employment-detail",
    "employment-transition",
    "employment-transitions",
    "employment-upgrade",
    "employment-knowledge",
    "performance-review-list",
    "performance-review-detail",
    "upload-list",
    "upload-detail",
    "upload-complete",
    "consent-list",
    "consent-detail",
    "consent-revoke",
    "build-list",
    "build-detail",
    "build-cancel",
    "workload-list",
    "workload-detail",
    "workload-cancel",
    "workload-script",
    "workload-events",
    "workload-interactions",
    "capacity",
    "capacity-calendar",
    "reservation-list",
    "reservation-detail",
    "usage-record-list",
    "usage-record-summary",
    "analytics-kpis",
    "analytics-scorecards",
    "analytics-compare",
    "analytics-roi",
    "analytics-outcome-values",
    "billing-budget",
    "notification-list",
    "notification-detail",
    "notification-read",
    "billing-account",
    "billing-refund-list",
    "billing-plans",
    "billing-subscription",
    "statement-list",
    "statement-detail",
    "statement-html",
    "statement-pdf",
    "statement-csv",
}

MISSING_ORG = "no-such-organization"


def test_the_walk_finds_every_known_organization_route():
    found = {route.name for route in ROUTES}
    assert found >= KNOWN_ROUTE_NAMES, f"routes not found by the walk: {KNOWN_ROUTE_NAMES - found}"
    for route in ROUTES:
        assert route.methods, f"{route} answers no method"


def test_a_route_with_an_unknown_model_or_url_argument_fails_with_what_to_add():
    class Widget:
        pass

    class WidgetViewSet:
        model = Widget
        lookup_field = "pk"
        http_method_names = ["get"]

    class Callback:
        cls = WidgetViewSet
        actions = {"get": "retrieve"}

    route = OrgRoute(
        "widget-part",
        "api/v1/orgs/<slug:org>/widgets/<pk>/parts/<part_id>/",
        Callback,
        ("org", "pk", "part_id"),
    )

    problems = "\n".join(isolation.missing_registrations(route))

    assert "create a Widget" in problems
    assert "OBJECT_MAKERS" in problems
    assert "'part_id'" in problems
    assert "URL_KWARG_MAKERS" in problems


def _send(client: APIClient, method: str, path: str, payload: Any = None, query=None) -> Any:
    if query:
        path = f"{path}?{urlencode(query)}"
    if method in isolation.BODY_METHODS:
        body = json.dumps(payload if payload is not None else {})
        return client.generic(method.upper(), path, body, content_type="application/json")
    return client.generic(method.upper(), path)


def _payload(route: OrgRoute, method: str, world: World) -> Any:
    """A body that would be a valid request on the world's own objects."""
    if method not in isolation.BODY_METHODS:
        return None
    serializer = route.request_serializer(method)
    return {} if serializer is None else isolation.example_payload(serializer, world.id_of)


class Prober:
    """Probes one route as one caller of organization B; collects what went wrong."""

    def __init__(
        self,
        route: OrgRoute,
        caller: str,
        client: APIClient,
        world_a: World,
        world_b: World,
        markers,
        failures: list[str],
    ) -> None:
        self.route = route
        self.caller = caller
        self.client = client
        self.a = world_a
        self.b = world_b
        self.markers = markers
        self.failures = failures

    def fail(self, what: str, *responses: Any) -> None:
        answers = "; ".join(f"{r.status_code} {isolation.body_of(r)!r}"[:400] for r in responses)
        self.failures.append(f"[{self.caller}] {what}: {answers}")

    def same_answer(self, what: str, first: Any, second: Any, ids: list[str]) -> None:
        """The two responses differ only in the ids sent."""
        if first.status_code >= 500 or second.status_code >= 500:
            self.fail(f"{what}: server error", first, second)
        elif first.status_code != second.status_code or isolation.normalised(
            isolation.body_of(first), ids
        ) != isolation.normalised(isolation.body_of(second), ids):
            self.fail(f"{what}: answers differ (foreign id, then missing id)", first, second)

    def check_no_leak(self, what: str, response: Any, sent: tuple[str, ...] = ()) -> None:
        """Nothing of A's shows, except the ids the caller sent (echoed in error messages)."""
        found = isolation.leaked(isolation.body_of(response), self.markers) - set(sent)
        if found:
            self.fail(f"{what}: shows organization A's {sorted(found)}", response)

    def foreign_organization(self) -> None:
        """Every method on A's URL answers 404, exactly as for an organization that is missing."""
        kwargs = self.a.url_kwargs(self.route)
        for method in isolation.EVERY_METHOD:
            payload = _payload(self.route, method, self.a) if method in self.route.actions else {}
            path = self.route.path(self.a.organization.slug, **kwargs)
            foreign = _send(self.client, method, path, payload)
            missing = _send(self.client, method, self.route.path(MISSING_ORG, **kwargs), payload)
            what = f"{method.upper()} {path}"
            if foreign.status_code != 404:
                self.fail(f"{what}: expected 404", foreign)
            elif isolation.body_of(foreign) != isolation.body_of(missing):
                self.fail(f"{what}: differs from a missing organization's answer", foreign, missing)

    def foreign_ids_in_path(self) -> None:
        """In B's URL, A's object id answers exactly as a random id does: 404 (or 403 when the
        caller may not take the action on any object)."""
        names = self.route.object_kwargs
        variants = [(name,) for name in names] + ([names] if len(names) > 1 else [])
        own = self.b.url_kwargs(self.route)
        theirs = self.a.url_kwargs(self.route)
        for method in self.route.methods:
            payload = _payload(self.route, method, self.b)
            for replaced in variants:
                randoms = {
                    n: isolation.nonexistent_id(isolation.kwarg_model(self.route, n))
                    for n in replaced
                }
                foreign_path = self.route.path(
                    self.b.organization.slug, **{**own, **{n: theirs[n] for n in replaced}}
                )
                random_path = self.route.path(self.b.organization.slug, **{**own, **randoms})
                foreign = _send(self.client, method, foreign_path, payload)
                missing = _send(self.client, method, random_path, payload)
                what = f"{method.upper()} {foreign_path}"
                # 403: the caller may not take this action on any object; the same for a random id.
                if method != "options" and foreign.status_code not in (403, 404):
                    self.fail(f"{what}: expected 404", foreign)
                sent = tuple(theirs[n] for n in replaced)
                self.same_answer(what, foreign, missing, [*sent, *randoms.values()])
                self.check_no_leak(what, foreign, sent)

    def own_reads(self) -> None:
        """What B reads of its own objects never shows A's."""
        if "get" not in self.route.actions:
            return
        path = self.route.path(self.b.organization.slug, **self.b.url_kwargs(self.route))
        self.check_no_leak(f"GET {path}", _send(self.client, "get", path))

    def filters(self) -> None:
        """A list (or a report) filtered by A's object id answers as if filtered by a random
        id."""
        if not self.route.is_list and str(self.route) not in isolation.QUERY_ID_PARAMETERS:
            return
        path = self.route.path(self.b.organization.slug, **self.b.url_kwargs(self.route))
        for name, model in isolation.id_filters(self.route, self.b.organization).items():
            if model not in self.a.objects:
                self.failures.append(
                    f"{self.route}: filter {name!r} takes a {model.__name__} id; add "
                    "the model to OBJECT_MAKERS in tests/api/isolation.py"
                )
                continue
            theirs, random_id = self.a.id_of(model), isolation.nonexistent_id(model)
            foreign = _send(self.client, "get", path, query={name: theirs})
            missing = _send(self.client, "get", path, query={name: random_id})
            what = f"GET {path}?{name}=<A's {model.__name__}>"
            self.same_answer(what, foreign, missing, [theirs, random_id])
            self.check_no_leak(what, foreign, (theirs,))

    def payload_ids(self) -> None:
        """A payload naming A's object answers as one naming a random id."""
        path = self.route.path(self.b.organization.slug, **self.b.url_kwargs(self.route))
        for method in self.route.actions:
            serializer = self.route.request_serializer(method)
            if serializer is None:
                continue
            for name, field in getattr(serializer, "fields", {}).items():
                model = isolation.related_model(field)
                if model is None or field.read_only:
                    continue
                payload = isolation.example_payload(serializer, self.b.id_of)
                theirs, random_id = self.a.id_of(model), isolation.nonexistent_id(model)
                many = isinstance(payload[name], list)
                foreign = _send(
                    self.client, method, path, {**payload, name: [theirs] if many else theirs}
                )
                missing = _send(
                    self.client, method, path, {**payload, name: [random_id] if many else random_id}
                )
                what = f"{method.upper()} {path} with {name}=<A's {model.__name__}>"
                self.same_answer(what, foreign, missing, [theirs, random_id])
                self.check_no_leak(what, foreign, (theirs,))


def _check_routes_work_for_their_own_organization(
    route, world_a, world_b, client_for, owner_a, owner_b
) -> None:
    """Positive controls: the URLs probed are real, so a 404 for a foreigner means something.

    A catalog shows both what a third organization published; other routes show each its own.
    """
    method = "get" if "get" in route.actions else "options"
    published = None
    if isolation.is_catalog(route):
        published = isolation.published_elsewhere(route)
    for world, owner in ((world_a, owner_a), (world_b, owner_b)):
        kwargs = world.url_kwargs(route)
        if published is not None:
            kwargs = isolation.catalog_url_kwargs(route, world, published)
        path = route.path(world.organization.slug, **kwargs)
        response = _send(client_for(owner), method, path)
        body = isolation.body_of(response)  # read to the end: a streamed file is closed
        assert response.status_code == 200, (method, path, body)
        if route.is_list:
            ids = {str(value) for key, value in isolation.scalars(body) if key == "id"}
            expected = str(published.pk) if published else world.id_of(route.model)
            assert expected in ids, f"{path} does not list {expected}"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_route_hides_another_organizations_objects(
    route, org_a, org_b, owner_a, owner_b, client_for
):
    problems = isolation.missing_registrations(route)
    assert not problems, "\n".join(problems)
    assert not Organization.objects.filter(slug=MISSING_ORG).exists()
    world_a, world_b = isolation.build_world(org_a), isolation.build_world(org_b)
    _check_routes_work_for_their_own_organization(
        route, world_a, world_b, client_for, owner_a, owner_b
    )
    rows_before = isolation.organization_rows(org_a)
    audit_count_before = AuditEntry.objects.for_organization(org_a).count()
    markers = isolation.organization_markers(rows_before)
    _key, token = factories.make_api_key(org_b, scopes=sorted(API_KEY_SCOPES), name="prober")
    key_client = APIClient()
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    callers = {"owner of B, session": client_for(owner_b), "API key of B": key_client}

    failures: list[str] = []
    for caller, client in callers.items():
        prober = Prober(route, caller, client, world_a, world_b, markers, failures)
        prober.foreign_organization()
        prober.foreign_ids_in_path()
        prober.own_reads()
        prober.filters()
        prober.payload_ids()

    assert not failures, f"{route}:\n" + "\n".join(failures)
    assert AuditEntry.objects.for_organization(org_a).count() == audit_count_before
    assert isolation.organization_rows(org_a) == rows_before
