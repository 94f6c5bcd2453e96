"""A monthly performance review opens with the month's KPI snapshot, filled by analytics when
avatars announces the reviews (avatars never imports analytics).

Real: avatars' month-end job (`create_monthly_reviews`), its signal sent after commit (the
test runs the on-commit callbacks), analytics' receiver and scorecards, the database the suite
runs on. Simulated: rollup rows written directly as the rollup run writes them; the employment's
history written with explicit instants; time passed to the job as an argument.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from avatars import reviews as avatar_reviews
from avatars.models import Employment, PerformanceReview
from ironbowl.analytics import reviews
from ironbowl.analytics.models import Rollup
from tests.avatars import factories as avatar_factories

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
FEBRUARY = dt.date(2025, 2, 1)
MONTH_END = dt.datetime(2025, 3, 2, 0, 30, tzinfo=dt.UTC)  # the job's run after February


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def hired_in_january(organization) -> Employment:
    employment = avatar_factories.EmploymentFactory(organization=organization, status="active")
    Employment.objects.for_organization(organization).filter(pk=employment.pk).update(
        created_at=dt.datetime(2025, 1, 5, tzinfo=dt.UTC)
    )
    return employment


def rollup(organization, bucket, employment, **figures) -> Rollup:
    return Rollup.objects.create(
        organization=organization,
        grain="day",
        bucket=bucket.astimezone(dt.UTC),
        employment_id=employment.pk,
        **figures,
    )


def review_of(employment) -> PerformanceReview:
    return PerformanceReview.objects.for_organization(employment.organization).get(
        employment=employment, period=FEBRUARY
    )


def test_a_new_monthly_review_carries_the_months_kpis(org_a, django_capture_on_commit_callbacks):
    """February in Shanghai: the 1st and the 28th count, March 1st does not."""
    employment = hired_in_january(org_a)
    other = hired_in_january(org_a)
    rollup(org_a, local(2025, 2, 1), employment, visits=10, interactions=8, handoffs=2,
           broadcast_seconds=3600.0)  # fmt: skip
    rollup(org_a, local(2025, 2, 28), employment, visits=5, broadcast_seconds=1800.0)
    rollup(org_a, local(2025, 3, 1), employment, visits=1000)
    rollup(org_a, local(2025, 2, 10), other, visits=1)

    with django_capture_on_commit_callbacks(execute=True):
        created = avatar_reviews.create_monthly_reviews(MONTH_END)

    assert created == 2
    kpis = review_of(employment).kpis
    assert kpis["from"] == "2025-02-01T00:00:00+08:00"
    assert kpis["to"] == "2025-03-01T00:00:00+08:00"
    assert (kpis["visits"], kpis["interactions"], kpis["handoffs"]) == (15, 8, 2)
    assert kpis["answered_share"] == 0.75
    assert kpis["broadcast_hours"] == 1.5
    assert kpis["visits_per_broadcast_hour"] == 10.0
    assert kpis["seat_days"] == 28  # active the whole month, one seat
    # Priced by the organization's billing plan; billing has recorded no seat-days for February
    # in this test, so the 28 seat-days are at the list seat-day rate (30.00).
    assert (kpis["currency"], kpis["cost"], kpis["rates"]) == ("CNY", "840.00", "billing")
    assert kpis["roi"] is None  # the organization has not valued its outcomes
    assert review_of(other).kpis["visits"] == 1


def test_a_snapshot_once_taken_is_kept(org_a):
    employment = hired_in_january(org_a)
    rollup(org_a, local(2025, 2, 1), employment, visits=10)
    avatar_reviews.create_reviews_for_month(org_a, FEBRUARY)

    assert reviews.fill_review_kpis(org_a, FEBRUARY, [employment.pk]) == 1
    rollup(org_a, local(2025, 2, 2), employment, visits=5)  # a late figure
    assert reviews.fill_review_kpis(org_a, FEBRUARY, [employment.pk]) == 0

    assert review_of(employment).kpis["visits"] == 10


def test_reviews_open_even_when_the_snapshot_fails(
    org_a, django_capture_on_commit_callbacks, monkeypatch
):
    """The receiver runs after the reviews committed; its failure is logged, not raised."""
    employment = hired_in_january(org_a)

    def broken(*args, **kwargs):
        raise RuntimeError("analytics is down")

    monkeypatch.setattr(reviews, "fill_review_kpis", broken)
    with django_capture_on_commit_callbacks(execute=True):
        created = avatar_reviews.create_monthly_reviews(MONTH_END)

    assert created == 1
    assert review_of(employment).kpis == {}
