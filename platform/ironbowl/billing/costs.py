"""Billing's prices, as analytics' ROI asks for them (`ANALYTICS_PRICE_PROVIDER`).

Analytics does not import billing; ROI calls `prices_for` through the setting. It answers the
organization's current plan's overage prices converted to the ledger's units, and billing's own
rule for a recorded seat-day (its rate per seat-month / the days of its local month, as rating
prices it).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ironbowl.analytics.rates import BilledPrices
from ironbowl.billing import plans
from ironbowl.billing.rating import days_in_month
from tenants.models import Organization


def seat_day_price(rate_per_month: Decimal, day: dt.date) -> Decimal:
    """One seat-day as rating prices it: a day's share of the rate per seat-month (exact)."""
    return rate_per_month / days_in_month(day)


def prices_for(organization: Organization, currency: str) -> BilledPrices | None:
    """The current plan's unit prices per ledger unit (stream minute, GPU second, rendered
    second, interaction), or None when the plan bills in another currency than `currency` (ROI
    then prices at list rates). Reads only (one or two queries); writes no subscription.

    Marginal cost: the plan's included allowance is not subtracted. ROI asks what the work costs
    at the margin, each unit at the overage price; what the organization is charged for a month
    (allowance, platform fee, discount, tax) is the statement."""
    plan = plans.subscriptions_of(organization)[-1].plan
    if plan.currency != currency:
        return None
    return BilledPrices(
        stream_minute=plan.price_stream_hour / 60,
        gpu_second=plan.price_gpu_hour / 3600,
        rendered_second=plan.price_rendered_minute / 60,
        interaction=plan.price_thousand_interactions / 1000,
        seat_day=seat_day_price,
    )
