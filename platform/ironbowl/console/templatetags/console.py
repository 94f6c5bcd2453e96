"""Template tags of the console: form fields with their errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

from ironbowl.console.forms import Form

register = template.Library()


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
