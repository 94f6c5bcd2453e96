"""Serializer fields and filters the HR domain's endpoints share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from avatars import languages
from tenants.models import Organization
from tenants.scoping import TenantOwned


class LanguageTagsField(serializers.ListField):
    """BCP-47 language tags, normalised (`zh-hans-cn` → `zh-Hans-CN`) and without duplicates;
    a wrong one is explained by the rules of `avatars.languages`."""

    child = serializers.CharField(max_length=languages.MAX_TAG_CHARS)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, list):
            problem = languages.list_problem(data)
            if problem is not None:
                raise serializers.ValidationError(problem, code="invalid_language")
        return languages.normalise_all(super().to_internal_value(data))


@extend_schema_field(OpenApiTypes.UUID)
class IdChoiceFilter(django_filters.ModelChoiceFilter):
    """An object id, looked up only among what the request's organization may name (see
    `request_organization_rows`): another organization's id answers like one that does not
    exist."""


def request_organization_rows(
    model: type[TenantOwned],
    rows: Callable[[Organization], QuerySet[Any]] | None = None,
) -> Callable[[Any], QuerySet[Any]]:
    """A filter's queryset: `rows(organization)` (by default the organization's own rows of
    `model`) for the request's organization; nothing for a request without one (the schema's)."""

    def queryset(request: Any) -> QuerySet[Any]:
        organization = getattr(request, "organization", None) if request is not None else None
        if organization is None:
            return model.objects.none()
        if rows is None:
            return model.objects.for_organization(organization)
        return rows(organization)

    return queryset
