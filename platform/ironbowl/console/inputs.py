"""Reading what people type into the console's forms: a list typed in one box, a value that may be
one or many.

A list typed in one box is split the same way everywhere: at commas, semicolons and spaces,
Chinese ones (，、；) included, so "zh, en；yue" is three items on every form.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s,，、;；]+")


def items_of(text: object) -> list[str]:
    """The items of a list typed in one box, in order, blanks left out."""
    return [item for item in _SEPARATORS.split(str(text or "")) if item]


def as_list(value: object) -> list[str]:
    """A form value that may hold one choice or several (check boxes, a multiple select) as a
    list of strings; nothing chosen is the empty list."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]
