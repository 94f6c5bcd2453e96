"""The one way billing reaches Stripe: whether it is configured, a client, and money in minor units.

Stripe is optional. Without STRIPE_SECRET_KEY nothing here is called and billing is the ledger and
statements only. Amounts cross to Stripe as integers of the currency's minor unit (CNY fen, USD
cents), converted exactly from Decimal: an amount with a fraction of a minor unit is a bug, and
raises instead of rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.utils.translation import gettext as _

from tenants.errors import ConflictError, DomainError

log = structlog.get_logger(__name__)

# Digits after the decimal point of each currency's minor unit.
MINOR_UNIT_DIGITS: dict[str, int] = {"CNY": 2, "USD": 2}


class StripeUnavailable(Exception):
    """Stripe did not answer, or answered with a server error: try again later (same keys)."""


class StripeRefused(Exception):
    """Stripe answered and refused the request (4xx): trying again will not change that."""


class StripeDown(DomainError):
    """What a person is told when Stripe did not answer: nothing was changed, try again."""

    status_code = 503


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def live_mode() -> bool | None:
    """Whether the configured key is a live one (`sk_live_…`, `rk_live_…`) or a test one; None
    when its form does not say."""
    key = str(settings.STRIPE_SECRET_KEY)
    if key.startswith(("sk_live_", "rk_live_")):
        return True
    if key.startswith(("sk_test_", "rk_test_")):
        return False
    return None


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


def settled_minor(invoice: Mapping[str, Any]) -> int:
    """How much of a paid invoice is settled, in minor units: what was charged (`amount_paid`)
    plus the credit Stripe took from the customer's balance (`starting_balance` is negative when
    the customer has credit, `ending_balance` is what is left of it), never more than the
    invoice's `total`. An invoice the credit covers entirely is paid with `amount_paid` 0."""
    paid = int(invoice.get("amount_paid") or 0)
    start, end = int(invoice.get("starting_balance") or 0), invoice.get("ending_balance")
    credit = max(int(end) - start, 0) if start < 0 and end is not None else 0
    total = invoice.get("total")
    return paid + credit if total is None else min(paid + credit, int(total))


def as_domain_error(error: StripeUnavailable | StripeRefused) -> DomainError:
    """Stripe's failure as what a person is told (the API answers 503 or 409)."""
    if isinstance(error, StripeUnavailable):
        return StripeDown(
            "stripe_unavailable",
            _("Stripe did not answer; nothing was changed. Please try again in a minute."),
        )
    # Stripe's own words may name our idempotency keys, its request ids or the platform's
    # dashboard settings: the operators' log has them, the organization a sentence to act on.
    log.warning("billing.stripe_refused", error=str(error))
    return ConflictError(
        "stripe_refused",
        _(
            "Stripe refused the request; nothing was changed. Check the details you entered, "
            "or ask the platform's support, who have Stripe's answer."
        ),
    )


def not_configured() -> ConflictError:
    return ConflictError(
        "stripe_not_configured",
        _("Stripe is not configured on this platform: payments are settled outside it."),
    )


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
