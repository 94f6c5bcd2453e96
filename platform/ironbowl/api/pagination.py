"""Cursor pagination: stable under inserts, and its cost does not grow with the page number."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import Q
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination


class OrganizationCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at",)


class KeysetCursorPagination(OrganizationCursorPagination):
    """Cursor pagination over whatever ordering the client picked, however many rows tie.

    The cursor holds the last row's value of every ordering field plus its primary key, and the
    next page starts strictly after that tuple. The position-and-offset cursor above keeps only the
    first field and counts ties with an offset, which gives up past `offset_cutoff` equal values
    (thousands of avatars at one list price). Ordering fields must be columns of the model that
    are never null.
    """

    def get_ordering(self, request: Any, queryset: Any, view: Any = None) -> tuple[str, ...]:
        ordering = list(super().get_ordering(request, queryset, view))
        pk = queryset.model._meta.pk.name
        if not any(name.lstrip("-") in ("pk", pk) for name in ordering):
            # In the first field's direction: `-created_at` pages as (created_at, id) descending.
            ordering.append(f"-{pk}" if ordering[0].startswith("-") else pk)
        return tuple(ordering)

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any]:
        self.request = request
        self.page_size = self.get_page_size(request) or self.page_size
        self.base_url = request.build_absolute_uri()
        self.keys = self.get_ordering(request, queryset, view)
        self.fields = [_column(queryset.model, name) for name in self.keys]
        self.cursor = self.decode_cursor(request)
        reverse = self.cursor is not None and self.cursor.reverse
        ordering = _reversed(self.keys) if reverse else self.keys
        queryset = queryset.order_by(*ordering)
        position: Any = None if self.cursor is None else self.cursor.position
        self.anchor = self._decode_position(position)
        if self.anchor is not None:
            queryset = queryset.filter(_after(ordering, self.anchor))
        rows = list(queryset[: self.page_size + 1])
        self.page = rows[: self.page_size]
        more = len(rows) > self.page_size
        if reverse:
            self.page.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, self.anchor is not None
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        position = self._position_of(self.page[-1]) if self.page else self.anchor
        return self._link(position, reverse=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        position = self._position_of(self.page[0]) if self.page else self.anchor
        return self._link(position, reverse=True)

    def _link(self, position: list[str] | None, *, reverse: bool) -> str | None:
        if position is None:
            return None
        encoded: Any = json.dumps(position)
        link: str = self.encode_cursor(Cursor(offset=0, reverse=reverse, position=encoded))
        return link

    def _position_of(self, instance: models.Model) -> list[str]:
        return [field.value_to_string(instance) for field in self.fields]

    def _decode_position(self, position: str | None) -> list[Any] | None:
        if position is None:
            return None
        try:
            texts = json.loads(position)
            if not isinstance(texts, list) or len(texts) != len(self.fields):
                raise ValueError(position)
            return [field.to_python(text) for field, text in zip(self.fields, texts, strict=True)]
        except (ValueError, TypeError, ValidationError):
            raise NotFound(self.invalid_cursor_message) from None


def _column(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.pk if name.lstrip("-") == "pk" else model._meta.get_field(name.lstrip("-"))
    if not isinstance(field, models.Field) or field.null or field.is_relation:
        raise ImproperlyConfigured(f"{model.__name__}.{name} cannot order a keyset cursor")
    return field


def _reversed(ordering: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name[1:] if name.startswith("-") else f"-{name}" for name in ordering)


def _after(ordering: tuple[str, ...], values: list[Any]) -> Q:
    """Rows after `values` in `ordering`: (a, b, id) > (x, y, z), spelled out per field."""
    after, equal = Q(), Q()
    for name, value in zip(ordering, values, strict=True):
        column = name.lstrip("-")
        comparison = "lt" if name.startswith("-") else "gt"
        after |= equal & Q(**{f"{column}__{comparison}": value})
        equal &= Q(**{column: value})
    return after
