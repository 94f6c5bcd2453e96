"""Serializer building blocks that keep payloads strict and foreign keys inside the tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tenants.scoping import TenantOwned


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses fields it does not know, instead of silently ignoring a typo."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [_("Unknown field.")] for name in unknown}, code="unknown_field"
                )
            read_only = sorted(name for name in data if self.fields[name].read_only)
            if read_only:
                raise serializers.ValidationError(
                    {name: [_("This field is read-only.")] for name in read_only},
                    code="read_only",
                )
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer[Any]):
    pass


class TenantRelatedField(serializers.PrimaryKeyRelatedField[Any]):
    """A foreign key in a payload, looked up only among the request organization's rows.

    Another organization's id gets exactly the message a non-existent id gets.
    """

    default_error_messages = {
        "does_not_exist": _("No such object: {pk_value}."),
        "incorrect_type": _("Expected an id, got {data_type}."),
    }

    def __init__(self, model: type[TenantOwned], **kwargs: Any) -> None:
        self.model = model
        kwargs.setdefault("pk_field", serializers.UUIDField())
        if not kwargs.get("read_only"):
            kwargs["queryset"] = model.objects  # for the schema; get_queryset() scopes it
        super().__init__(**kwargs)

    def get_queryset(self) -> models.QuerySet[Any]:
        organization = self.context["organization"]
        queryset: models.QuerySet[Any] = self.model.objects.for_organization(organization)
        return queryset
