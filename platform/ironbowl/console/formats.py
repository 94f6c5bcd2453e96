"""How the console writes money, prices, quantities and percentages (one way on every page).

Money is exact to the cent with thousands separators and its currency first ("CNY 1,234.50"); a
price per unit keeps every digit it was set with ("CNY 0.0125"); a percentage is written without
a space before the sign ("85.7%"). What is missing shows as a dash. Templates use the filters of
the same names (`{% load console %}{{ amount|money:currency }}`, `{{ share|percent }}`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MISSING = "—"

Number = Decimal | float | int | str


def _decimal(value: Number) -> Decimal:
    # Through str: a float's shortest text (0.1), not its binary expansion (0.1000000000000000055).
    return value if isinstance(value, Decimal) else Decimal(str(value))


def exact(value: Number | None) -> str:
    """A quantity or a unit price exactly, with thousands separators and without trailing
    zeros: 12,500.25."""
    if value is None:
        return MISSING
    text = f"{_decimal(value).normalize():,f}"
    return "0" if text in ("-0", "0") else text


def money(amount: Number | None, currency: str) -> str:
    """An amount of money exactly as billed (to the cent), with its currency: CNY 1,234.50."""
    if amount is None:
        return MISSING
    try:
        exactly = _decimal(amount)
    except InvalidOperation:  # not a number (a hand-edited snapshot): shown as it is
        return f"{currency} {amount}".strip()
    return f"{currency} {exactly:,.2f}".strip()


def price(amount: Number | None, currency: str) -> str:
    """A price per unit, every digit it was set with, with its currency: CNY 0.0125."""
    if amount is None:
        return MISSING
    return f"{currency} {exact(amount)}".strip()


def percent(share: Number | None, places: int | None = 1) -> str:
    """A share (0.857) as a percentage: 85.7%; to `places` decimal places, or exactly when
    `places` is None (a tax rate of 0.06: 6%)."""
    if share is None:
        return MISSING
    hundredths = _decimal(share) * 100
    if places is None:
        return f"{exact(hundredths)}%"
    return f"{hundredths:,.{places}f}%"
