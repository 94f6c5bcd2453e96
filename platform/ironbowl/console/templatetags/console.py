"""Template tags of the console: form fields with their errors, money, percentages and names
written the console's one way (`ironbowl.console.formats`, `ironbowl.console.names`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

from ironbowl.console import formats, names
from ironbowl.console.forms import Form

register = template.Library()


@register.filter
def money(amount: formats.Number | None, currency: str) -> str:
    """`{{ amount|money:currency }}`: CNY 1,234.50."""
    return formats.money(amount, currency)


@register.filter
def price(amount: formats.Number | None, currency: str) -> str:
    """`{{ amount|price:currency }}`: a unit price with every digit it has, CNY 0.0125."""
    return formats.price(amount, currency)


@register.filter
def percent(share: formats.Number | None, places: int | None = 1) -> str:
    """`{{ share|percent }}`: 0.857 as 85.7%; `{{ share|percent:0 }}`: 86%."""
    return formats.percent(share, places)


@register.filter
def avatar_name(avatar: names.Named) -> str:
    """`{{ avatar|avatar_name }}`: the name in the page's language."""
    return names.avatar_name(avatar)


@register.inclusion_tag("console/partials/field.html")
def field(
    form: Form,
    name: str,
    label: str,
    type: str = "text",  # noqa: A002 - the HTML attribute's name
    choices: Iterable[tuple[Any, Any]] | None = None,
    help: str = "",  # noqa: A002
    required: bool = False,
    multiple: bool = False,
    placeholder: str = "",
    autocomplete: str = "",
) -> dict[str, Any]:
    """A labelled input, select or textarea showing the typed value and its errors."""
    value = form.value(name) if form is not None else ""
    chosen = {str(v) for v in value} if isinstance(value, list) else {str(value)}
    options = [(str(v), label_, str(v) in chosen) for v, label_ in (choices or [])]
    errors = form.errors.get(name, []) if form is not None else []
    return {
        "name": name,
        "id": f"field-{name.replace('.', '-')}",
        "label": label,
        "type": type,
        "value": "" if isinstance(value, list) else value,
        "options": options,
        "errors": errors,
        "help": help,
        "required": required,
        "multiple": multiple,
        "placeholder": placeholder,
        "autocomplete": autocomplete,
    }
