"""Background work of billing; thin: each runs a service for every organization, and one
organization's failure is logged without holding up the others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from celery import shared_task
from django.utils import timezone

# Budgets, Stripe and dunning keep their tasks beside their services; importing them here
# registers those tasks wherever Celery discovers this module.
from ironbowl.billing import budgets, dunning, push, seats, statements  # noqa: F401
from tenants.models import Organization

logger = structlog.get_logger(__name__)


def _each_organization(event: str, work: Callable[[Organization], int]) -> dict[str, int]:
    done = failed = 0
    for organization in Organization.objects.order_by("pk").iterator():
        try:
            done += work(organization)
        except Exception:  # one organization's bad data must not stop the others
            logger.exception(event, organization=organization.slug)
            failed += 1
    return {"done": done, "failed": failed}


@shared_task(name="billing.record_seat_days")
def record_seat_days() -> dict[str, int]:
    """Append the seat-days of the local days that ended lately (`seats.record_recent_seat_days`;
    a day recorded already appends nothing)."""
    now = timezone.now()
    return _each_organization(
        "seat_days_failed", lambda organization: seats.record_recent_seat_days(organization, now)
    )


@shared_task(name="billing.refresh_statements")
def refresh_statements() -> dict[str, int]:
    """Re-rate each organization's open statements (this month, and last month in its grace)."""
    now = timezone.now()
    return _each_organization(
        "statement_refresh_failed",
        lambda organization: len(statements.refresh_open(organization, now)),
    )


@shared_task(name="billing.close_statements")
def close_statements() -> dict[str, Any]:
    """Close the months whose grace is over, in order (`statements.close_due`)."""
    now = timezone.now()
    return _each_organization(
        "statement_close_failed",
        lambda organization: len(statements.close_due(organization, now)),
    )
