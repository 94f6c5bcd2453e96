"""Listing an organization's objects costs the same number of queries for 3 rows as for 30.

Every list route under /api/v1/orgs/<org>/ is found by walking the URL configuration; collections
served by a custom action are registered below. An N+1 query (a query per row) shows up as a
difference between the two counts, with the extra SQL in the failure message.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any, cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from avatars.models import (
    Avatar,
    AvatarVersion,
    Employment,
    EmploymentStatus,
    EmploymentTransition,
)
from inference import sessions
from inference.lifecycle import transition
from inference.models import Workload, WorkloadState
from ironbowl.analytics.models import Rollup
from ironbowl.billing.models import Plan
from scheduling import services as scheduling_services
from scheduling.models import Station, StationKind
from tenants.audit import SYSTEM
from tenants.models import Membership
from tenants.roles import Role
from tests import factories
from tests.api import isolation
from tests.api.isolation import OrgRoute, World
from tests.avatars import factories as avatar_factories
from tests.scheduling import duty_world


def _add_station_operator(world: World) -> None:
    station = world.objects[Station]
    assert isinstance(station, Station)
    operator = cast(
        Membership,
        factories.MembershipFactory(organization=world.organization, role=Role.OPERATOR),
    )
    scheduling_services.grant_station_operator(SYSTEM, station, operator)


def _add_employment_transition(world: World) -> None:
    EmploymentTransition.objects.create(
        organization=world.organization,
        employment=cast(Employment, world.objects[Employment]),
        from_status=EmploymentStatus.OFFERED,
        to_status=EmploymentStatus.ONBOARDING,
        reason="query count",
        actor_label="system",
    )


def _add_avatar_version(world: World) -> None:
    avatar = world.objects[Avatar]
    assert isinstance(avatar, Avatar)
    numbers = AvatarVersion.objects.for_organization(world.organization).filter(avatar=avatar)
    avatar_factories.AvatarVersionFactory(avatar=avatar, number=numbers.count() + 1)


def _add_workload_event(world: World) -> None:
    workload = world.objects[Workload]
    assert isinstance(workload, Workload)
    transition(workload, WorkloadState.QUEUED, "probe", "Requeued for a query count.")


def _add_interaction(world: World) -> None:
    workload = world.objects[Workload]
    assert isinstance(workload, Workload)
    sessions.record_interaction(
        workload,
        question_id=uuid.uuid4().hex,
        question="When do you open?",
        answer={"text": "At nine.", "language": "en"},
        asked_at=timezone.now(),
        latency_ms=300,
    )


def _add_coverage_gap(world: World) -> None:
    # A 24/7 desk with no shift yet: uncovered from now to the horizon (one gap).
    desk = duty_world.station(world.organization, StationKind.WEB_WIDGET)
    duty_world.schedule(
        duty_world.hire(world.organization),
        desk,
        rrule="",
        start_time=None,
        duration_minutes=None,
        always_on=True,
    )


def _add_employment_at_work(world: World) -> None:
    # An active hire with a daily rollup today: one more scorecard and one more comparison row.
    organization = world.organization
    employment = avatar_factories.EmploymentFactory(organization=organization, status="active")
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    today = timezone.localdate(timezone=zone)
    Rollup.objects.create(
        organization=organization,
        grain="day",
        bucket=dt.datetime.combine(today, dt.time(), tzinfo=zone),
        employment_id=employment.pk,
        visits=1,
    )


def _add_plan(world: World) -> None:
    # Plans are the platform's, listed to every organization: one more public plan.
    Plan.objects.create(code=f"plan-{uuid.uuid4().hex[:8]}", name="Probe plan")


# Collections that are not a viewset's `list` action: route name -> adds one row to the collection.
CUSTOM_COLLECTIONS = {
    "station-operators": _add_station_operator,
    "avatar-versions": _add_avatar_version,
    "employment-transitions": _add_employment_transition,
    "workload-events": _add_workload_event,
    "workload-interactions": _add_interaction,
    "roster-gaps": _add_coverage_gap,
    "analytics-scorecards": _add_employment_at_work,
    "analytics-compare": _add_employment_at_work,
    "billing-plans": _add_plan,
}

COLLECTIONS = [
    route for route in isolation.org_routes() if route.is_list or route.name in CUSTOM_COLLECTIONS
]
FEW, MANY = 3, 30


def _add_row(route: OrgRoute, world: World) -> None:
    if route.name in CUSTOM_COLLECTIONS:
        CUSTOM_COLLECTIONS[route.name](world)
    elif isolation.is_catalog(route):
        # A catalog lists published rows; each from another organization, as in the market.
        isolation.published_elsewhere(route)
    else:
        isolation.OBJECT_MAKERS[route.model](world.organization)


def _rows(response: Any) -> list[Any]:
    body = response.json()
    rows: list[Any] = body if isinstance(body, list) else body["results"]
    return rows


def test_every_collection_endpoint_is_counted(org_a, owner_a, client_for):
    world = isolation.build_world(org_a)
    client = client_for(owner_a)
    uncounted = []
    for route in isolation.org_routes():
        if "get" not in route.actions or route in COLLECTIONS:
            continue
        kwargs = world.url_kwargs(route)
        if isolation.is_catalog(route):
            published = isolation.published_elsewhere(route)
            kwargs = isolation.catalog_url_kwargs(route, world, published)
        response = client.get(route.path(org_a.slug, **kwargs))
        assert response.status_code == 200, (route, response.getvalue())
        if response.streaming or response["Content-Type"] != "application/json":
            response.getvalue()  # a file (a portrait, a statement's PDF): not a collection
            continue
        body = response.json()
        if isinstance(body, list) or "results" in body:
            uncounted.append(str(route))
    assert not uncounted, (
        f"collections without a query-count test: {uncounted}; add each to CUSTOM_COLLECTIONS "
        "in tests/api/test_query_counts.py"
    )


@pytest.mark.parametrize("route", COLLECTIONS, ids=str)
def test_list_query_count_does_not_grow_with_rows(route, org_a, owner_a, client_for):
    assert not isolation.missing_registrations(route)
    world = isolation.build_world(org_a)
    client = client_for(owner_a)
    path = route.path(org_a.slug, **world.url_kwargs(route))
    existing = len(_rows(client.get(path)))  # also warms per-process caches (content types)
    for _ in range(FEW - existing):
        _add_row(route, world)

    with CaptureQueriesContext(connection) as few_queries:
        few = client.get(path)
    for _ in range(MANY - FEW):
        _add_row(route, world)
    with CaptureQueriesContext(connection) as many_queries:
        many = client.get(path)

    assert few.status_code == many.status_code == 200
    assert len(_rows(many)) - len(_rows(few)) == MANY - FEW
    extra = [q["sql"] for q in many_queries.captured_queries[len(few_queries) :]]
    assert len(many_queries) == len(few_queries), (
        f"{route}: {len(few_queries)} queries for {len(_rows(few))} rows, {len(many_queries)} for "
        f"{len(_rows(many))}; the extra ones include:\n" + "\n".join(extra[:5])
    )
