"""Long lists a page at a time: the page of rows a query string asks for (`?page=N`); the links
to the pages around it are `templates/console/partials/pages.html`, which keep the other filters
of the query string."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet


def page_of(rows: QuerySet[Any] | Sequence[Any], params: Mapping[str, Any], size: int) -> Page[Any]:
    """One page of rows (a page number that is not one shows the first, one past the end the
    last)."""
    return Paginator(rows, size).get_page(params.get("page"))
