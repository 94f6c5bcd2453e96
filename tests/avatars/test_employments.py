"""Hiring: the offer, who may be hired, seats within the plan, and letting go frees them."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from avatars import catalog
from avatars import employments as services
from avatars.models import Employment, EmploymentTransition
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import AuditEntry
from tests.avatars.factories import (
    AvatarFactory,
    EmploymentFactory,
    PositionFactory,
    onboarded_employment,
    ready_avatar,
)
from tests.factories import OrganizationFactory
from tests.support import database_rows

pytestmark = pytest.mark.django_db

TODAY = dt.date(2025, 3, 1)


def _url(org, suffix=""):
    return f"/api/v1/orgs/{org.slug}/employments/{suffix}"


def _retired(avatar):
    avatar.status = "retired"
    avatar.save()
    return avatar


def _consent_for_owner_only(avatar):
    consent = avatar.current_version.consent
    consent.scope = "owner"
    consent.save()
    return avatar


def _consent_revoked(avatar):
    consent = avatar.current_version.consent
    consent.revoked_at = timezone.now()
    consent.save()
    return avatar


def _vendor_deactivated(avatar):
    avatar.organization.is_active = False
    avatar.organization.save()
    return avatar


def _hire(client, org, **payload):
    body = {"starts_on": TODAY.isoformat(), **payload}
    for name in ("avatar", "position"):
        if hasattr(body.get(name), "pk"):
            body[name] = str(body[name].pk)
    return client.post(_url(org), body, format="json")


def test_hiring_an_avatar_of_the_talent_market_makes_an_offer_at_its_list_price(org_a, api_a):
    avatar = ready_avatar(visibility="public", persona="Speak calmly.", list_price=Decimal("2999"))
    position = PositionFactory(organization=org_a)

    response = _hire(api_a, org_a, avatar=avatar, position=position, seats=2)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "offered"
    assert body["allowed_next"] == ["onboarding", "terminated"]
    assert body["avatar"] == str(avatar.pk)
    assert body["avatar_version"] == str(avatar.current_version_id)
    assert body["version_number"] == 1
    assert (body["rate"], body["rate_source"], body["seats"]) == ("2999.00", "list", 2)
    assert body["persona"] == "Speak calmly."
    assert body["checklist"] == {
        "persona_reviewed": False,
        "voice_chosen": False,
        "knowledge_attached": False,
        "complete": False,
    }
    employment = Employment.objects.for_organization(org_a).get(pk=body["id"])
    assert employment.organization == org_a
    assert (
        AuditEntry.objects.for_organization(org_a).get(action="employment.hire").object_id
        == (body["id"])
    )


def test_a_rate_other_than_the_list_price_is_negotiated(org_a, api_a):
    avatar = ready_avatar(visibility="public", list_price=Decimal("2999"))

    negotiated = _hire(
        api_a, org_a, avatar=avatar, position=PositionFactory(organization=org_a), rate="2500"
    )
    same = _hire(
        api_a, org_a, avatar=avatar, position=PositionFactory(organization=org_a), rate="2999.00"
    )

    assert negotiated.json()["rate"] == "2500.00"
    assert negotiated.json()["rate_source"] == "negotiated"
    assert same.json()["rate_source"] == "list"


def test_an_organization_hires_its_own_private_avatar(org_a, api_a):
    avatar = ready_avatar(organization=org_a, visibility="private")

    response = _hire(api_a, org_a, avatar=avatar, position=PositionFactory(organization=org_a))

    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "make_avatar",
    [
        pytest.param(lambda: ready_avatar(visibility="private"), id="private-ready"),
        pytest.param(lambda: AvatarFactory(visibility="public", status="draft"), id="public-draft"),
        pytest.param(lambda: _retired(ready_avatar(visibility="public")), id="public-retired"),
        # Public and ready, but the market does not show them: hiring follows the market.
        pytest.param(
            lambda: _consent_for_owner_only(ready_avatar(visibility="public")),
            id="public-ready-consent-for-its-owner-only",
        ),
        pytest.param(
            lambda: _consent_revoked(ready_avatar(visibility="public")),
            id="public-ready-consent-revoked",
        ),
        pytest.param(
            lambda: _vendor_deactivated(ready_avatar(visibility="public")),
            id="public-ready-vendor-inactive",
        ),
    ],
)
def test_an_avatar_of_another_organization_not_on_the_market_answers_like_a_random_id(
    org_a, api_a, make_avatar
):
    foreign = make_avatar()
    position = PositionFactory(organization=org_a)
    random_id = str(uuid.uuid4())
    before = database_rows()

    theirs = _hire(api_a, org_a, avatar=str(foreign.pk), position=position)
    missing = _hire(api_a, org_a, avatar=random_id, position=position)

    assert theirs.status_code == missing.status_code == 400
    assert theirs.json() == {
        **missing.json(),
        "fields": {
            "avatar": [{"code": "does_not_exist", "message": f"No such object: {foreign.pk}."}]
        },
    }
    assert missing.json()["fields"]["avatar"][0]["message"] == f"No such object: {random_id}."
    assert database_rows() == before


def test_an_own_avatar_whose_consent_covers_only_its_owner_is_hired_by_its_owner(org_a, api_a):
    avatar = _consent_for_owner_only(ready_avatar(organization=org_a, visibility="private"))

    response = _hire(api_a, org_a, avatar=avatar, position=PositionFactory(organization=org_a))

    assert response.status_code == 201, response.content


def test_another_organizations_position_answers_like_a_random_id(org_a, org_b, api_a):
    avatar = ready_avatar(visibility="public")
    theirs = PositionFactory(organization=org_b)

    foreign = _hire(api_a, org_a, avatar=avatar, position=str(theirs.pk))
    missing = _hire(api_a, org_a, avatar=avatar, position=str(uuid.uuid4()))

    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["fields"]["position"][0]["code"] == "does_not_exist"
    assert foreign.json()["detail"] == missing.json()["detail"]


def test_an_avatar_that_lacks_what_the_position_requires_is_refused_with_what_is_missing(
    org_a, api_a
):
    avatar = ready_avatar(visibility="public", languages=["zh-CN"], skills=["service_desk"])
    position = PositionFactory(
        organization=org_a,
        title="Bilingual anchor",
        required_languages=["zh-CN", "en"],
        required_skills=["service_desk", "live_anchor"],
    )
    before = database_rows()

    response = _hire(api_a, org_a, avatar=avatar, position=position)

    assert response.status_code == 400
    assert response.json()["code"] == "requirements_not_met"
    assert response.json()["detail"] == (
        f"{avatar} does not meet the requirements of Bilingual anchor: "
        "it lacks languages en; skills live_anchor."
    )
    assert database_rows() == before


def test_a_regional_language_satisfies_a_requirement_of_the_language(org_a, api_a):
    avatar = ready_avatar(visibility="public", languages=["yue-HK", "en-US"])
    position = PositionFactory(organization=org_a, required_languages=["yue", "en-US"])

    response = _hire(api_a, org_a, avatar=avatar, position=position)

    assert response.status_code == 201, response.content


def test_an_own_avatar_that_was_never_built_cannot_be_hired(org_a, api_a):
    avatar = AvatarFactory(organization=org_a, status="draft")
    position = PositionFactory(organization=org_a)
    before = database_rows()

    response = _hire(api_a, org_a, avatar=avatar, position=position)

    assert response.status_code == 409
    assert response.json()["code"] == "avatar_not_built"
    assert "build it before hiring" in response.json()["detail"]
    assert database_rows() == before


def test_the_end_date_cannot_come_before_the_start(org_a, api_a):
    avatar = ready_avatar(visibility="public")
    position = PositionFactory(organization=org_a)
    before = database_rows()

    response = _hire(api_a, org_a, avatar=avatar, position=position, ends_on="2025-02-28")

    assert response.status_code == 400
    assert response.json()["fields"]["ends_on"][0]["code"] == "ends_before_start"
    assert "before the start date (2025-03-01)" in response.json()["detail"]
    assert database_rows() == before


@pytest.mark.parametrize("seats", [0, -1])
def test_a_hire_needs_at_least_one_seat(org_a, api_a, seats):
    response = _hire(
        api_a,
        org_a,
        avatar=ready_avatar(visibility="public"),
        position=PositionFactory(organization=org_a),
        seats=seats,
    )

    assert response.status_code == 400
    assert "seats" in response.json()["fields"]


def test_a_position_takes_no_more_hires_than_its_headcount(org_a, api_a):
    position = PositionFactory(organization=org_a, title="Night desk", headcount=1)
    EmploymentFactory(organization=org_a, position=position)
    avatar = ready_avatar(visibility="public")
    before = database_rows()

    response = _hire(api_a, org_a, avatar=avatar, position=position)

    assert response.status_code == 409
    assert response.json()["code"] == "headcount_filled"
    assert "Night desk has a headcount of 1 and 1 hires already" in response.json()["detail"]
    assert database_rows() == before


# --- Seats and the plan ---------------------------------------------------------------------------


def test_a_hire_beyond_the_plans_seats_is_refused_and_writes_nothing(org_a, api_a):
    # The trial plan allows 5 seats; suspended hires hold theirs, terminated ones do not.
    EmploymentFactory(organization=org_a, seats=2, status="active")
    EmploymentFactory(organization=org_a, seats=1, status="suspended")
    EmploymentFactory(organization=org_a, seats=4, status="terminated")
    avatar = ready_avatar(visibility="public")
    position = PositionFactory(organization=org_a)
    before = database_rows()

    response = _hire(api_a, org_a, avatar=avatar, position=position, seats=3)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "seats_over_plan"
    assert body["detail"].startswith(
        "Your plan allows 5 seats and other hires hold 3, so this hire can have at most 2, not 3."
    )
    assert body["fields"]["seats"][0]["code"] == "seats_over_plan"
    assert database_rows() == before

    assert _hire(api_a, org_a, avatar=avatar, position=position, seats=2).status_code == 201


def test_more_seats_for_a_hire_must_fit_the_plan_and_fewer_always_do(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, seats=2)
    EmploymentFactory(organization=org_a, seats=2)
    before = database_rows()

    too_many = api_a.patch(_url(org_a, f"{employment.pk}/"), {"seats": 4}, format="json")

    assert too_many.status_code == 409
    assert "at most 3, not 4" in too_many.json()["detail"]
    assert database_rows() == before
    assert (
        api_a.patch(_url(org_a, f"{employment.pk}/"), {"seats": 3}, format="json").json()["seats"]
        == 3
    )
    assert (
        api_a.patch(_url(org_a, f"{employment.pk}/"), {"seats": 1}, format="json").json()["seats"]
        == 1
    )


def test_letting_go_frees_the_seats_and_ends_the_employment_today(org_a, api_a):
    employment = EmploymentFactory(
        organization=org_a, seats=5, status="active", starts_on=dt.date(2024, 1, 1)
    )
    avatar = ready_avatar(visibility="public")
    assert (
        _hire(api_a, org_a, avatar=avatar, position=PositionFactory(organization=org_a)).status_code
        == 409
    )

    response = api_a.post(
        _url(org_a, f"{employment.pk}/transition/"),
        {"to": "terminated", "reason": "The pilot ended."},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "terminated"
    assert response.json()["ends_on"] == services.local_today(org_a).isoformat()
    assert response.json()["allowed_next"] == []
    hired = _hire(
        api_a, org_a, avatar=avatar, position=PositionFactory(organization=org_a), seats=5
    )
    assert hired.status_code == 201, hired.content


def test_letting_go_keeps_an_earlier_end_date_and_never_ends_before_the_start(org_a):
    ended = EmploymentFactory(
        organization=org_a, starts_on=dt.date(2024, 1, 1), ends_on=dt.date(2024, 6, 30)
    )
    future = EmploymentFactory(organization=org_a, starts_on=dt.date(2999, 1, 1))

    services.transition_employment(SYSTEM, ended, "terminated", "Contract over.")
    services.transition_employment(SYSTEM, future, "terminated", "Offer withdrawn.")

    ended.refresh_from_db()
    future.refresh_from_db()
    assert ended.ends_on == dt.date(2024, 6, 30)
    assert future.ends_on == dt.date(2999, 1, 1)


def test_a_terminated_employment_cannot_be_changed(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, status="terminated")
    before = database_rows()

    response = api_a.patch(_url(org_a, f"{employment.pk}/"), {"seats": 2}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "employment_terminated"
    assert database_rows() == before


# --- Reading -------------------------------------------------------------------------------------


def test_employments_are_filtered_by_status_position_and_market_avatar(org_a, org_b, api_a):
    market = ready_avatar(visibility="public")
    position = PositionFactory(organization=org_a)
    first = EmploymentFactory(organization=org_a, avatar=market, position=position)
    second = EmploymentFactory(organization=org_a, status="active")
    EmploymentFactory(organization=org_b, avatar=market)

    def ids(**query):
        response = api_a.get(_url(org_a), query)
        assert response.status_code == 200, response.content
        return {e["id"] for e in response.json()["results"]}

    assert ids() == {str(first.pk), str(second.pk)}
    assert ids(status="active") == {str(second.pk)}
    assert ids(position=str(position.pk)) == {str(first.pk)}
    assert ids(avatar=str(market.pk)) == {str(first.pk)}


def test_a_hired_avatar_withdrawn_from_the_market_still_filters(org_a, api_a):
    market = ready_avatar(visibility="public")
    employment = EmploymentFactory(organization=org_a, avatar=market)
    market.visibility = "private"
    market.save()

    response = api_a.get(_url(org_a), {"avatar": str(market.pk)})

    assert response.status_code == 200
    assert [e["id"] for e in response.json()["results"]] == [str(employment.pk)]


def test_filtering_by_another_organizations_private_avatar_answers_like_a_random_id(org_a, api_a):
    private = ready_avatar(visibility="private")

    theirs = api_a.get(_url(org_a), {"avatar": str(private.pk)})
    missing = api_a.get(_url(org_a), {"avatar": str(uuid.uuid4())})

    assert theirs.status_code == missing.status_code == 400
    assert theirs.json()["code"] == missing.json()["code"]


def test_the_history_lists_each_transition_with_its_reason_and_who(org_a, owner_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    api_a.post(
        _url(org_a, f"{employment.pk}/transition/"),
        {"to": "onboarding", "reason": "Offer accepted by the vendor."},
        format="json",
    )
    api_a.post(
        _url(org_a, f"{employment.pk}/transition/"),
        {"to": "terminated", "reason": "Budget cut."},
        format="json",
    )

    response = api_a.get(_url(org_a, f"{employment.pk}/transitions/"))

    assert response.status_code == 200
    assert [
        (t["from_status"], t["to_status"], t["reason"], t["actor_label"]) for t in response.json()
    ] == [
        ("offered", "onboarding", "Offer accepted by the vendor.", owner_a.user.email),
        ("onboarding", "terminated", "Budget cut.", owner_a.user.email),
    ]


def test_the_times_of_the_history_show_in_the_organizations_time_zone(api_a, org_a):
    employment = EmploymentFactory(organization=org_a)
    EmploymentTransition.objects.create(
        organization=org_a,
        employment=employment,
        from_status="offered",
        to_status="onboarding",
        reason="Accepted.",
        actor_label="system",
        created_at=dt.datetime(2025, 3, 1, 0, 0, tzinfo=dt.UTC),
    )

    response = api_a.get(_url(org_a, f"{employment.pk}/transitions/"))

    assert response.json()[0]["created_at"] == "2025-03-01T08:00:00+08:00"


def test_hire_service_refuses_a_foreign_private_avatar_like_a_missing_one(org_a):
    foreign = ready_avatar(visibility="private", organization=OrganizationFactory(kind="vendor"))

    with pytest.raises(DomainError) as caught:
        services.hire_avatar(
            SYSTEM,
            org_a,
            avatar=foreign,
            position=PositionFactory(organization=org_a),
            starts_on=timezone.localdate(),
        )

    assert caught.value.code == "not_found"
    assert caught.value.field == "avatar"


@pytest.mark.django_db(transaction=True)
def test_two_hires_at_once_cannot_both_take_the_last_seats(vendor):
    """Two real database sessions hire at once (PostgreSQL): the second waits for the first's lock
    on the organization and then sees its seats taken."""
    if vendor != "postgresql":
        pytest.skip("SQLite serialises writers itself; row locks need PostgreSQL")
    organization = OrganizationFactory(plan="trial")  # 5 seats
    avatar = ready_avatar(visibility="public")
    positions = [PositionFactory(organization=organization) for _ in range(2)]

    def hire(position):
        def work():
            services.hire_avatar(
                SYSTEM,
                organization,
                avatar=avatar,
                position=position,
                seats=3,
                starts_on=TODAY,
            )
            return "hired"

        return work

    outcomes = _at_once(hire(positions[0]), hire(positions[1]))

    assert outcomes == ("hired", "seats_over_plan")
    assert services.seats_in_use(organization) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["hire", "retire"])
def test_a_hire_and_a_retire_at_once_cannot_both_succeed(vendor, first):
    """Two real database sessions (PostgreSQL): the second waits for the first's lock on the
    avatar and then sees what the first did."""
    if vendor != "postgresql":
        pytest.skip("SQLite serialises writers itself; row locks need PostgreSQL")
    organization = OrganizationFactory()
    avatar = ready_avatar(visibility="public")
    position = PositionFactory(organization=organization)

    def hire():
        services.hire_avatar(
            SYSTEM, organization, avatar=avatar, position=position, starts_on=TODAY
        )
        return "hired"

    def retire():
        catalog.retire_avatar(SYSTEM, avatar, "Replaced by a newer avatar.")
        return "retired"

    hires = Employment.objects.for_organization(organization)
    if first == "hire":
        assert _at_once(hire, retire) == ("hired", "avatar_hired")
        assert hires.count() == 1
    else:
        # Retired, the avatar left the market: for the institution it no longer exists.
        assert _at_once(retire, hire) == ("retired", "not_found")
        assert hires.count() == 0


def _at_once(first, second):
    """Run `first` in a database session of its own that keeps its transaction open until
    `second`, started then in another session, waits for a lock; then let both finish.

    Returns each one's outcome: what it returned, or the code of the DomainError it raised."""
    first_done = threading.Event()
    release_first = threading.Event()
    outcomes: dict[str, object] = {}

    def run(name, work, hold):
        try:
            with transaction.atomic():
                result = work()
                if hold:
                    first_done.set()
                    assert release_first.wait(timeout=30)
            outcomes[name] = result
        except DomainError as error:
            outcomes[name] = error.code
        finally:
            connection.close()

    first_thread = threading.Thread(target=run, args=("first", first, True))
    first_thread.start()
    assert first_done.wait(timeout=30)
    second_thread = threading.Thread(target=run, args=("second", second, False))
    second_thread.start()
    try:
        _wait_until_a_session_waits_for_a_lock(timeout=30)
    finally:
        release_first.set()
        first_thread.join(timeout=30)
        second_thread.join(timeout=30)
    return outcomes.get("first"), outcomes.get("second")


def _wait_until_a_session_waits_for_a_lock(timeout):
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
    raise AssertionError("the second session never waited for the first one's lock")


def test_listing_employments_costs_the_same_queries_for_one_or_many(org_a, api_a):
    def queries_for_list():
        with CaptureQueriesContext(connection) as captured:
            response = api_a.get(_url(org_a))
        assert response.status_code == 200
        return len(captured.captured_queries), len(response.json()["results"])

    onboarded_employment(organization=org_a)
    one = queries_for_list()
    for _ in range(4):
        onboarded_employment(organization=org_a)
    many = queries_for_list()

    assert (one[1], many[1]) == (1, 5)
    assert many[0] == one[0]
