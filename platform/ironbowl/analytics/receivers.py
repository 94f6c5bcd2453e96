"""What analytics hears from the other packages (connected in AnalyticsConfig.ready)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.dispatch import receiver

from avatars.signals import reviews_opened
from inference.signals import interaction_recorded, usage_reported
from ironbowl.analytics import conversations, reviews, usage
from tenants.models import Organization


@receiver(usage_reported, dispatch_uid="analytics.convert_reported_usage")
def convert_reported_usage(sender: Any, usage_report_id: int, **kwargs: Any) -> None:
    """A worker's usage report committed: its usage records, now (the sweep is the net)."""
    usage.convert_reports([usage_report_id])


@receiver(interaction_recorded, dispatch_uid="analytics.count_recorded_interaction")
def count_recorded_interaction(
    sender: Any, organization_id: uuid.UUID, interaction_id: uuid.UUID, **kwargs: Any
) -> None:
    """A conversation's exchange committed: count it as events."""
    conversations.count_interaction(organization_id, interaction_id)


@receiver(reviews_opened, dispatch_uid="analytics.fill_review_kpis")
def fill_review_kpis(
    sender: Any,
    organization_id: uuid.UUID,
    period: dt.date,
    employment_ids: list[uuid.UUID],
    **kwargs: Any,
) -> None:
    """A month's reviews committed: each gets the month's KPI snapshot."""
    organization = Organization.objects.get(pk=organization_id)
    reviews.fill_review_kpis(organization, period, employment_ids)
