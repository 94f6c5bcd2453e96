"""What a digital employee costs, for ROI: the prices of the organization's billing plan, or
the list rates.

Analytics does not import billing (billing depends on analytics): the function the setting
`ANALYTICS_PRICE_PROVIDER` names answers, for an organization and a currency, the unit prices of
its billing plan (`BilledPrices`), or None when its plan bills in another currency. `pricing`
asks it once; without an answer (or without a provider) ROI prices at the list rates below,
quoted per currency (not converted), so cost is priced in the currency an organization values
its outcomes in. A trial is priced at the standard plan's list rates: its ROI previews a paid
plan. With billed prices, the seat-days the ledger recorded are priced as billing rates them
(`BilledPrices.seat_day`); days it has no record of keep the list seat-day rate.

Money is Decimal throughout; each priced line is rounded to cents, half up (`to_cents`), and
totals are sums of rounded lines, so the figures shown always add up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils.module_loading import import_string

from tenants.models import Organization
from tenants.money import Currency

CURRENCIES = tuple(Currency.values)
CENT = Decimal("0.01")


@dataclasses.dataclass(frozen=True)
class Rates:
    """List prices of one plan in one currency."""

    seat_day: Decimal  # a seat of an active employment, per local day it was active
    stream_minute: Decimal
    gpu_second: Decimal
    rendered_second: Decimal
    interaction: Decimal

    def per_usage_type(self) -> dict[str, Decimal]:
        """Unit price by `UsageRecord.usage_type`."""
        return {
            "stream_minutes": self.stream_minute,
            "gpu_seconds": self.gpu_second,
            "rendered_seconds": self.rendered_second,
            "interactions": self.interaction,
        }


_STANDARD = {
    "CNY": Rates(
        seat_day=Decimal("30.00"),
        stream_minute=Decimal("0.05"),
        gpu_second=Decimal("0.002"),
        rendered_second=Decimal("0.10"),
        interaction=Decimal("0.02"),
    ),
    "USD": Rates(
        seat_day=Decimal("4.20"),
        stream_minute=Decimal("0.007"),
        gpu_second=Decimal("0.0003"),
        rendered_second=Decimal("0.014"),
        interaction=Decimal("0.003"),
    ),
}

LIST_RATES: dict[str, dict[str, Rates]] = {
    "trial": _STANDARD,
    "standard": _STANDARD,
    "enterprise": {
        "CNY": Rates(
            seat_day=Decimal("24.00"),
            stream_minute=Decimal("0.04"),
            gpu_second=Decimal("0.0016"),
            rendered_second=Decimal("0.08"),
            interaction=Decimal("0.015"),
        ),
        "USD": Rates(
            seat_day=Decimal("3.40"),
            stream_minute=Decimal("0.0056"),
            gpu_second=Decimal("0.00024"),
            rendered_second=Decimal("0.011"),
            interaction=Decimal("0.002"),
        ),
    },
}


def rates_for(plan: str, currency: str) -> Rates:
    """The list rates of a plan (an unknown plan: the standard one) in CNY or USD."""
    return LIST_RATES.get(plan, _STANDARD)[currency]


@dataclasses.dataclass(frozen=True)
class BilledPrices:
    """What a price provider answers: the billing plan's unit prices per ledger unit, and how
    billing prices one recorded seat-day: (its rate per seat-month, its local day) -> price."""

    stream_minute: Decimal
    gpu_second: Decimal
    rendered_second: Decimal
    interaction: Decimal
    seat_day: Callable[[Decimal, dt.date], Decimal]


@dataclasses.dataclass(frozen=True)
class Pricing:
    """The prices of one ROI answer. `source`: "billing" or "list" (what the answers say as
    `rates`); `seat_day` prices the ledger's seat-days (None: list rates, the ledger's seat-days
    are not read)."""

    source: str
    rates: Rates
    seat_day: Callable[[Decimal, dt.date], Decimal] | None = None


def pricing(organization: Organization, currency: str) -> Pricing:
    """The organization's prices in `currency`: its billing plan's when the provider answers,
    else its plan's list rates. One or two queries (the provider's)."""
    listed = rates_for(organization.plan, currency)
    path: str = getattr(settings, "ANALYTICS_PRICE_PROVIDER", "")
    billed: BilledPrices | None = import_string(path)(organization, currency) if path else None
    if billed is None:
        return Pricing("list", listed)
    found = dataclasses.replace(
        listed,
        stream_minute=billed.stream_minute,
        gpu_second=billed.gpu_second,
        rendered_second=billed.rendered_second,
        interaction=billed.interaction,
    )
    return Pricing("billing", found, billed.seat_day)


def to_cents(amount: Decimal) -> Decimal:
    """Money as shown and summed: rounded to cents, half up."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
