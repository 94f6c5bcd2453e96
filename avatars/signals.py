"""What avatars tells other packages without importing them: they connect receivers (in their
AppConfig.ready) and avatars sends once its change has committed."""

from __future__ import annotations

import datetime as dt
import uuid

from django.dispatch import Signal

from avatars.models import Employment, PerformanceReview
from tenants.signals import send_after_commit

# An employment moved along its lifecycle. Sent once the change has committed, with
# `organization_id`, `employment_id`, `from_status`, `to_status` and `reason`. A receiver that
# fails is logged and does not undo the change; consumers that must not miss one (scheduling
# stops the shifts of a suspended hire) also check the status where it matters.
employment_status_changed = Signal()

# A month's performance reviews were opened. Sent once they have committed, with
# `organization_id`, `period` (the month's first day) and `employment_ids`; analytics fills their
# KPI snapshot (`kpis`). A receiver that fails is logged; the reviews stay open without it.
reviews_opened = Signal()


def announce_status_change(employment: Employment, from_status: str, reason: str) -> None:
    """Send `employment_status_changed` once the current transaction commits."""
    send_after_commit(
        employment_status_changed,
        Employment,
        "employment_receiver_failed",
        organization_id=employment.organization_id,
        employment_id=employment.pk,
        from_status=from_status,
        to_status=employment.status,
        reason=reason,
    )


def announce_reviews_opened(
    organization_id: uuid.UUID, period: dt.date, employment_ids: list[uuid.UUID]
) -> None:
    """Send `reviews_opened` once the current transaction commits."""
    send_after_commit(
        reviews_opened,
        PerformanceReview,
        "reviews_receiver_failed",
        organization_id=organization_id,
        period=period,
        employment_ids=employment_ids,
    )
