"""The one way billing reaches Stripe: whether it is configured, a client, and money in minor units.

Stripe is optional. Without STRIPE_SECRET_KEY nothing here is called and billing is the ledger and
statements only. Amounts cross to Stripe as integers of the currency's minor unit (CNY fen, USD
cents), converted exactly from Decimal: an amount with a fraction of a minor unit is a bug, and
raises instead of rounding.
"""

from __future__ import annotations

from decimal import Decimal

import stripe
from django.conf import settings

# Digits after the decimal point of each currency's minor unit.
MINOR_UNIT_DIGITS: dict[str, int] = {"CNY": 2, "USD": 2}


class StripeUnavailable(Exception):
    """Stripe did not answer, or answered with a server error: try again later (same keys)."""


class StripeRefused(Exception):
    """Stripe answered and refused the request (4xx): trying again will not change that."""


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    """A client with the secret key. No automatic retries: a failed push is retried by the sync
    task with the same idempotency keys. `stripe.api_base` is honoured (tests point it at a
    local stand-in; in production it is Stripe's default)."""
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": stripe.api_base},
        max_network_retries=0,
    )


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount in the currency's minor unit, exactly: Decimal("12.34") CNY → 1234 fen."""
    scaled = amount.scaleb(MINOR_UNIT_DIGITS[currency.upper()])
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    digits = MINOR_UNIT_DIGITS[currency.upper()]
    return Decimal(amount).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def translate_error(error: stripe.StripeError) -> StripeUnavailable | StripeRefused:
    """Stripe's error as ours: connection trouble, rate limits and 5xx may succeed later; any
    other answer was a refusal (an idempotency key reused with other parameters included)."""
    status = error.http_status
    if (
        isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError))
        or status is None
        or status >= 500
    ):
        return StripeUnavailable(str(error.user_message or error) or type(error).__name__)
    return StripeRefused(str(error.user_message or error) or type(error).__name__)
