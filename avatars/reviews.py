"""Performance reviews: one per employment per month, opened when the month has ended in the
organization's time zone, then rated and commented by a person. Analytics fills the KPI snapshot."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars import signals
from avatars.models import (
    Employment,
    EmploymentStatus,
    EmploymentTransition,
    PerformanceReview,
    ReviewStatus,
)
from tenants import audit
from tenants.audit import Actor
from tenants.errors import DomainError
from tenants.models import Organization

REVIEW_FIELDS = ("rating", "comments")


def previous_month(day: dt.date) -> dt.date:
    """The first day of the month before the one `day` falls in."""
    return (day.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def next_month(first: dt.date) -> dt.date:
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_bounds(period: dt.date, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The month starting at `period` as [start, end) instants, midnight to midnight local time."""
    zone = zoneinfo.ZoneInfo(time_zone)
    start = dt.datetime.combine(period, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(next_month(period), dt.time(), tzinfo=zone)
    return start, end


def month_just_ended(organization: Organization, now: dt.datetime) -> dt.date:
    """The last month that has fully ended at `now` in the organization's time zone."""
    local = timezone.localdate(now, timezone=zoneinfo.ZoneInfo(organization.time_zone))
    return previous_month(local)


def _was_active_during(
    employment: Employment,
    transitions: list[EmploymentTransition],
    start: dt.datetime,
    end: dt.datetime,
) -> bool:
    """Whether the employment's status history has it active at some instant of [start, end)."""
    status = transitions[0].from_status if transitions else employment.status
    since = employment.created_at
    for transition in transitions:
        if status == EmploymentStatus.ACTIVE and since < end and transition.created_at > start:
            return True
        status, since = transition.to_status, transition.created_at
    return status == EmploymentStatus.ACTIVE and since < end


def employments_to_review(organization: Organization, period: dt.date) -> list[Employment]:
    """Hires that were active at some point of the month and have no review for it yet."""
    start, end = month_bounds(period, organization.time_zone)
    transitions = EmploymentTransition.objects.for_organization(organization)
    left_active_since_start = transitions.filter(
        from_status=EmploymentStatus.ACTIVE, created_at__gte=start
    ).values("employment_id")
    reviewed = (
        PerformanceReview.objects.for_organization(organization)
        .filter(period=period)
        .values("employment_id")
    )
    candidates = list(
        Employment.objects.for_organization(organization)
        .filter(created_at__lt=end)
        .filter(Q(status=EmploymentStatus.ACTIVE) | Q(pk__in=left_active_since_start))
        .exclude(pk__in=reviewed)
    )
    history: dict[Any, list[EmploymentTransition]] = defaultdict(list)
    for transition in transitions.filter(employment__in=candidates).order_by("created_at", "id"):
        history[transition.employment_id].append(transition)
    return [e for e in candidates if _was_active_during(e, history[e.pk], start, end)]


@transaction.atomic
def create_reviews_for_month(organization: Organization, period: dt.date) -> int:
    """Open the month's reviews of the organization; returns how many were created.

    Safe to repeat: an employment that has its review is skipped, and the unique constraint
    (employment, period) settles a race between two runs."""
    employments = employments_to_review(organization, period)
    reviews = [
        PerformanceReview(organization=organization, employment=employment, period=period)
        for employment in employments
    ]
    PerformanceReview.objects.for_organization(organization).bulk_create(
        reviews, ignore_conflicts=True
    )
    if employments:
        signals.announce_reviews_opened(organization.pk, period, [e.pk for e in employments])
    return len(reviews)


def create_monthly_reviews(now: dt.datetime | None = None) -> int:
    """For every organization, open the reviews of the month that has just ended in its own time
    zone. Run daily: an organization whose month has not ended yet gets its reviews on a later run.
    """
    now = now or timezone.now()
    created = 0
    # Cross-tenant by design: the month-end job visits every organization that hires.
    hiring = Employment.objects.unscoped_dangerously().values("organization_id")
    for organization in Organization.objects.filter(pk__in=hiring).order_by("pk"):
        created += create_reviews_for_month(organization, month_just_ended(organization, now))
    return created


@transaction.atomic
def complete_review(actor: Actor, review: PerformanceReview, **changes: Any) -> PerformanceReview:
    """Rate (1–5) and comment a review; it is then completed by the person who did it."""
    for name in changes:
        if name not in REVIEW_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=name)
    review = (
        PerformanceReview.objects.for_organization(review.organization)
        .select_for_update()
        .get(pk=review.pk)
    )
    before = audit.snapshot(review)
    was_open = review.status == ReviewStatus.OPEN
    rating = changes.get("rating", review.rating)
    if rating is None or not 1 <= rating <= 5:
        raise DomainError(
            "rating_required",
            _("Give a rating from 1 to 5 to complete the review."),
            field="rating",
        )
    review.rating = rating
    if "comments" in changes:
        review.comments = changes["comments"]
    review.status = ReviewStatus.COMPLETED
    review.reviewer = actor.user
    review.completed_at = timezone.now()
    review.save()
    action = "review.complete" if was_open else "review.update"
    audit.record_update(actor, review.organization, action, review, before=before)
    return review
