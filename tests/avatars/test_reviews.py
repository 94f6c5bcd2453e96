"""Performance reviews: opened once a month has ended in the organization's time zone for every
hire that was active in it, then rated by a reviewer.

Time is not faked: the month-end job takes `now` as an argument, and the employments' history is
written with explicit instants around the month boundaries.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from avatars import reviews as services
from avatars import tasks
from avatars.models import EmploymentTransition, PerformanceReview
from ironbowl.celery import app
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars.factories import EmploymentFactory, PerformanceReviewFactory
from tests.factories import OrganizationFactory
from tests.support import database_rows

pytestmark = pytest.mark.django_db

UTC = dt.UTC
FEBRUARY = dt.date(2025, 2, 1)
MARCH = dt.date(2025, 3, 1)


def _at(*args):
    return dt.datetime(*args, tzinfo=UTC)


def _hire(organization, *, created, activated=None, left=None, status=None):
    """An employment created at `created`, activated at `activated`, suspended at `left`."""
    final = status or ("suspended" if left else "active" if activated else "offered")
    employment = EmploymentFactory(organization=organization, status=final)
    type(employment).objects.for_organization(organization).filter(pk=employment.pk).update(
        created_at=created
    )
    steps = []
    if activated:
        steps += [("offered", "onboarding", activated), ("onboarding", "active", activated)]
    if left:
        steps.append(("active", "suspended", left))
    for from_status, to_status, at in steps:
        EmploymentTransition.objects.create(
            organization=organization,
            employment=employment,
            from_status=from_status,
            to_status=to_status,
            reason="History for the test.",
            actor_label="system",
            created_at=at,
        )
    return employment


def _periods(employment):
    return sorted(
        PerformanceReview.objects.for_organization(employment.organization)
        .filter(employment=employment)
        .values_list("period", flat=True)
    )


def test_the_month_end_opens_one_review_per_active_hire_and_is_idempotent():
    shanghai = OrganizationFactory(time_zone="Asia/Shanghai")
    worked = _hire(shanghai, created=_at(2025, 1, 5), activated=_at(2025, 1, 6))
    left_in_february = _hire(
        shanghai, created=_at(2025, 1, 5), activated=_at(2025, 1, 6), left=_at(2025, 2, 10)
    )
    left_in_january = _hire(
        shanghai, created=_at(2025, 1, 5), activated=_at(2025, 1, 6), left=_at(2025, 1, 20)
    )
    never_active = _hire(shanghai, created=_at(2025, 1, 5))
    hired_in_march = _hire(shanghai, created=_at(2025, 3, 1, 6), activated=_at(2025, 3, 1, 7))
    # 08:30 on 1 March in Shanghai: February has ended there.
    now = _at(2025, 3, 1, 0, 30)

    created = services.create_monthly_reviews(now)

    assert created == 2
    assert _periods(worked) == [FEBRUARY]
    assert _periods(left_in_february) == [FEBRUARY]
    assert _periods(left_in_january) == []
    assert _periods(never_active) == []
    assert _periods(hired_in_march) == []
    review = PerformanceReview.objects.for_organization(shanghai).get(employment=worked)
    assert (review.status, review.kpis, review.rating) == ("open", {}, None)
    rows = database_rows()
    assert services.create_monthly_reviews(now) == 0
    assert services.create_monthly_reviews(now + dt.timedelta(days=1)) == 0
    assert database_rows() == rows


def test_a_hire_activated_at_the_boundary_belongs_to_the_month_of_the_organizations_clock():
    # 03:00 UTC on 1 March is 22:00 on 28 February in New York and 11:00 on 1 March in Shanghai.
    activated = _at(2025, 3, 1, 3)
    new_york = OrganizationFactory(time_zone="America/New_York")
    shanghai = OrganizationFactory(time_zone="Asia/Shanghai")
    in_new_york = _hire(new_york, created=_at(2025, 2, 1), activated=activated)
    in_shanghai = _hire(shanghai, created=_at(2025, 2, 1), activated=activated)

    # 00:30 UTC on 2 March: February has ended in both zones.
    services.create_monthly_reviews(_at(2025, 3, 2, 0, 30))

    assert _periods(in_new_york) == [FEBRUARY]
    assert _periods(in_shanghai) == []


def test_a_month_that_has_not_ended_locally_waits_for_the_next_run():
    new_york = OrganizationFactory(time_zone="America/New_York")
    employment = _hire(new_york, created=_at(2025, 1, 5), activated=_at(2025, 1, 6))

    # 00:30 UTC on 1 March is still 28 February (19:30 EST) in New York: January just ended.
    services.create_monthly_reviews(_at(2025, 3, 1, 0, 30))
    assert _periods(employment) == [dt.date(2025, 1, 1)]

    services.create_monthly_reviews(_at(2025, 3, 2, 0, 30))
    assert _periods(employment) == [dt.date(2025, 1, 1), FEBRUARY]


def test_the_month_boundary_follows_daylight_saving_time():
    # New York is on EDT (UTC-4) from 9 March 2025: March ends at 04:00 UTC on 1 April, not 05:00.
    new_york = OrganizationFactory(time_zone="America/New_York")
    before_midnight = _hire(new_york, created=_at(2025, 3, 20), activated=_at(2025, 4, 1, 3, 30))
    after_midnight = _hire(new_york, created=_at(2025, 3, 20), activated=_at(2025, 4, 1, 4, 30))
    left_before = _hire(
        new_york,
        created=_at(2025, 2, 1),
        activated=_at(2025, 2, 2),
        left=_at(2025, 3, 1, 4, 30),  # 23:30 EST on 28 February
    )

    services.create_monthly_reviews(_at(2025, 4, 2, 0, 30))

    assert _periods(before_midnight) == [MARCH]
    assert _periods(after_midnight) == []
    assert _periods(left_before) == []


def test_a_hire_without_history_counts_from_its_creation():
    shanghai = OrganizationFactory(time_zone="Asia/Shanghai")
    employment = EmploymentFactory(organization=shanghai, status="active")
    type(employment).objects.for_organization(shanghai).filter(pk=employment.pk).update(
        created_at=_at(2025, 2, 27)
    )

    services.create_monthly_reviews(_at(2025, 3, 1, 0, 30))

    assert _periods(employment) == [FEBRUARY]


def test_the_task_is_scheduled_daily_after_midnight_utc_and_runs():
    entry = app.conf.beat_schedule["avatars.create_monthly_reviews"]
    assert entry["task"] == tasks.create_monthly_reviews.name == "avatars.create_monthly_reviews"
    assert entry["schedule"].hour == {0}
    assert entry["schedule"].minute == {30}
    organization = OrganizationFactory()
    employment = EmploymentFactory(organization=organization, status="active")
    type(employment).objects.for_organization(organization).filter(pk=employment.pk).update(
        created_at=timezone.now() - dt.timedelta(days=70)
    )

    result = tasks.create_monthly_reviews.apply()

    assert result.get() == 1
    assert len(_periods(employment)) == 1


# --- API ------------------------------------------------------------------------------------------


def _url(org, suffix=""):
    return f"/api/v1/orgs/{org.slug}/reviews/{suffix}"


def test_a_reviewer_rates_and_comments_and_the_review_is_completed(
    org_a, member_factory, client_for
):
    analyst = member_factory(org_a, Role.ANALYST)
    review = PerformanceReviewFactory(
        employment=EmploymentFactory(organization=org_a), kpis={"interactions": 1200}
    )

    response = client_for(analyst).patch(
        _url(org_a, f"{review.pk}/"),
        {"rating": 4, "comments": "Answered fast; handoffs were rare."},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["rating"], body["reviewer"]) == (
        "completed",
        4,
        analyst.user.email,
    )
    assert body["comments"] == "Answered fast; handoffs were rare."
    assert body["kpis"] == {"interactions": 1200}
    assert body["completed_at"] is not None
    entry = AuditEntry.objects.for_organization(org_a).get(action="review.complete")
    assert (entry.before["rating"], entry.after["rating"]) == (None, 4)


def test_a_completed_review_can_be_amended_and_says_so_in_the_audit(org_a, api_a):
    review = PerformanceReviewFactory(employment=EmploymentFactory(organization=org_a))
    api_a.patch(_url(org_a, f"{review.pk}/"), {"rating": 2}, format="json")

    response = api_a.patch(
        _url(org_a, f"{review.pk}/"), {"comments": "Better after training."}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["rating"], response.json()["comments"]) == (
        2,
        "Better after training.",
    )
    assert AuditEntry.objects.for_organization(org_a).filter(action="review.update").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"comments": "No rating yet."}, "rating"),
        ({"rating": 3, "kpis": {"views": 1}}, "kpis"),
        ({"rating": 3, "period": "2025-01-01"}, "period"),
    ],
)
def test_a_review_needs_a_rating_from_1_to_5_and_keeps_its_kpis(org_a, api_a, payload, field):
    review = PerformanceReviewFactory(employment=EmploymentFactory(organization=org_a))
    before = database_rows()

    response = api_a.patch(_url(org_a, f"{review.pk}/"), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert database_rows() == before


def test_reviews_are_filtered_by_employment_period_and_status(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    february = PerformanceReviewFactory(employment=employment, period=FEBRUARY)
    march = PerformanceReviewFactory(
        employment=employment, period=MARCH, status="completed", rating=5
    )
    other = PerformanceReviewFactory(
        employment=EmploymentFactory(organization=org_a), period=FEBRUARY
    )

    def ids(**query):
        response = api_a.get(_url(org_a), query)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids() == {str(february.pk), str(march.pk), str(other.pk)}
    assert ids(employment=str(employment.pk)) == {str(february.pk), str(march.pk)}
    assert ids(period="2025-02-01") == {str(february.pk), str(other.pk)}
    assert ids(status="completed") == {str(march.pk)}


def test_another_organizations_employment_in_the_filter_answers_like_a_random_id(
    org_a, org_b, api_a
):
    theirs = EmploymentFactory(organization=org_b)

    foreign = api_a.get(_url(org_a), {"employment": str(theirs.pk)})
    missing = api_a.get(_url(org_a), {"employment": str(uuid.uuid4())})

    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["code"] == missing.json()["code"]
