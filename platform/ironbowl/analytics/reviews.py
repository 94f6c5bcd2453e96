"""The KPI snapshot of a performance review: the month's scorecard of the employment, written
into `PerformanceReview.kpis` when avatars opens the month's reviews (signal `reviews_opened`).

A snapshot is taken once and kept (a review rates the month as it looked then); figures that
arrive later show in the scorecards, not in reviews already opened.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from avatars.models import PerformanceReview
from avatars.reviews import month_bounds
from ironbowl.analytics import kpis, roi
from tenants.models import Organization


def month_window(organization: Organization, period: dt.date) -> kpis.Window:
    """The month starting at `period`, local midnight to local midnight."""
    start, end = month_bounds(period, organization.time_zone)
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    return kpis.Window(start.astimezone(dt.UTC), end.astimezone(dt.UTC), kpis.MONTH, zone)


def snapshot(card: roi.Scorecard, span: kpis.Window, taken_at: dt.datetime) -> dict[str, Any]:
    """A scorecard as the JSON a review keeps (money and ratios as exact decimal strings)."""
    valuation = card.valuation
    return {
        "from": span.start.astimezone(span.zone).isoformat(),
        "to": span.end.astimezone(span.zone).isoformat(),
        **card.tally.kpis(),
        "visits_per_broadcast_hour": card.per_broadcast_hour(card.tally.visits),
        "interactions_per_broadcast_hour": card.per_broadcast_hour(card.tally.interactions),
        "seat_days": card.seat_days,
        "viewer_hours": str(card.viewer_hours),
        "currency": valuation.currency,
        "cost": str(valuation.cost),
        "value": str(valuation.value),
        "roi": None if valuation.roi is None else str(valuation.roi),
        "rates": valuation.rates,
        "taken_at": taken_at.isoformat(),
    }


@transaction.atomic
def fill_review_kpis(
    organization: Organization, period: dt.date, employment_ids: Iterable[uuid.UUID]
) -> int:
    """Writes the month's snapshot into those employments' reviews of the month that have none
    yet; returns how many. Safe to repeat."""
    ids = list(employment_ids)
    reviews = list(
        PerformanceReview.objects.for_organization(organization)
        .select_for_update()
        .filter(period=period, employment_id__in=ids)
    )
    empty = [review for review in reviews if not review.kpis]
    if not empty:
        return 0
    span = month_window(organization, period)
    cards = {
        card.employment.pk: card
        for card in roi.scorecards(
            organization, span, employment_ids=[review.employment_id for review in empty]
        )
    }
    now = timezone.now()
    filled = []
    for review in empty:
        card = cards.get(review.employment_id)
        if card is not None:
            review.kpis = snapshot(card, span, now)
            filled.append(review)
    PerformanceReview.objects.for_organization(organization).bulk_update(filled, ["kpis"])
    return len(filled)
