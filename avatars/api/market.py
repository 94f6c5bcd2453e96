"""The talent market: every organization's published avatars, for any member to browse and hire.

Avatars that are private, not ready or without a consent for everyone answer 404 here exactly
like ones that do not exist, whoever owns them (see `avatars.market.market_avatars`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.routers import SimpleRouter

from avatars import catalog, languages, market
from avatars.api.avatars import portrait_response, portrait_url
from avatars.models import Avatar, Skill
from ironbowl.api.base import CatalogViewSet
from tenants.models import Organization
from tenants.roles import Permission as P

# --- Filters ----------------------------------------------------------------------------------


class ValuesField(forms.Field):
    """Values of a query parameter given several times, each maybe a comma-separated list:
    `?skill=presenter&skill=live_anchor,teacher`."""

    widget = forms.MultipleHiddenInput

    def __init__(self, *, check: Callable[[list[str]], str | None], **kwargs: Any) -> None:
        self.check = check
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        items = value if isinstance(value, list | tuple) else [value] if value else []
        parts = (part.strip() for item in items for part in str(item).split(","))
        return list(dict.fromkeys(part for part in parts if part))

    def validate(self, value: Any) -> None:
        super().validate(value)
        problem = self.check(value)
        if problem is not None:
            # The problem quotes what was sent; as a parameter, a "%" in it is not a format.
            raise forms.ValidationError("%(problem)s", code="invalid", params={"problem": problem})


class ValuesFilter(django_filters.Filter):
    field_class = ValuesField


@extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=Skill.choices)))
class SkillsFilter(ValuesFilter):
    pass


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class LanguagesFilter(ValuesFilter):
    pass


class MarketAvatarFilter(django_filters.FilterSet):
    skill = SkillsFilter(
        method="filter_skill",
        check=catalog.skills_error,
        label="Has any of these skills (repeat the parameter or separate with commas)",
    )
    language = LanguagesFilter(
        method="filter_language",
        check=languages.list_problem,
        label="Speaks any of these languages: a tag or its start (zh finds zh-CN and zh-HK)",
    )
    vendor = django_filters.CharFilter(field_name="organization__slug", label="Vendor's slug")
    min_price = django_filters.NumberFilter(
        field_name="list_price", lookup_expr="gte", max_digits=10, decimal_places=2
    )
    max_price = django_filters.NumberFilter(
        field_name="list_price", lookup_expr="lte", max_digits=10, decimal_places=2
    )
    currency = django_filters.CharFilter(method="filter_currency", max_length=3)
    q = django_filters.CharFilter(
        method="filter_text", max_length=200, label="Words in the names or description"
    )

    class Meta:
        model = Avatar
        fields = ["skill", "language", "vendor", "min_price", "max_price", "currency", "q"]

    def filter_skill(
        self, queryset: QuerySet[Avatar], name: str, skills: list[str]
    ) -> QuerySet[Avatar]:
        return market.with_any_skill(queryset, skills)

    def filter_language(
        self, queryset: QuerySet[Avatar], name: str, languages: list[str]
    ) -> QuerySet[Avatar]:
        return market.speaking_any(queryset, languages)

    def filter_currency(self, queryset: QuerySet[Avatar], name: str, code: str) -> QuerySet[Avatar]:
        return queryset.filter(currency=code.upper())

    def filter_text(self, queryset: QuerySet[Avatar], name: str, text: str) -> QuerySet[Avatar]:
        return market.matching_text(queryset, text)


# --- Serializers ------------------------------------------------------------------------------


class VendorSerializer(serializers.ModelSerializer[Organization]):
    class Meta:
        model = Organization
        fields = ["slug", "name"]
        read_only_fields = fields


class MarketAvatarSerializer(serializers.ModelSerializer[Avatar]):
    vendor = VendorSerializer(source="organization", read_only=True)
    current_version = serializers.IntegerField(
        source="current_version.number", read_only=True, help_text="Number of the built version."
    )
    portrait_url = serializers.SerializerMethodField()
    list_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, read_only=True, help_text="Per seat and month."
    )

    class Meta:
        model = Avatar
        fields = [
            "id",
            "name_zh",
            "name_en",
            "description",
            "languages",
            "skills",
            "list_price",
            "currency",
            "vendor",
            "current_version",
            "portrait_url",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_portrait_url(self, avatar: Avatar) -> str | None:
        return portrait_url(
            self.context, "market-avatar-portrait", avatar.pk, avatar.current_version
        )


class MarketAvatarDetailSerializer(MarketAvatarSerializer):
    voice_profile = serializers.JSONField(source="current_version.voice_profile", read_only=True)

    class Meta(MarketAvatarSerializer.Meta):
        fields = [*MarketAvatarSerializer.Meta.fields, "wardrobe", "voice_profile"]
        read_only_fields = fields


# --- Views ------------------------------------------------------------------------------------

# The columns the serializers show, and no more: loading and converting a row's every column (the
# owner's persona, the search columns, timestamps) costs more than the query on a page of 50.
LIST_FIELDS = (
    "name_zh",
    "name_en",
    "description",
    "languages",
    "skills",
    "list_price",
    "currency",
    "created_at",
    "organization__slug",
    "organization__name",
    "current_version__number",
    "current_version__portrait",
)
DETAIL_FIELDS = (*LIST_FIELDS, "wardrobe", "current_version__voice_profile")


class MarketAvatarViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CatalogViewSet):
    """Avatars published by every organization: public, ready, and built under a consent that
    lets any organization use the likeness. Prices are the vendor's list price per seat-month."""

    model = Avatar
    serializer_class = MarketAvatarSerializer
    filterset_class = MarketAvatarFilter
    ordering_fields = ["list_price", "name_zh", "name_en", "created_at"]
    ordering = ["-created_at"]
    permission_map = {"list": P.MARKET_VIEW, "retrieve": P.MARKET_VIEW, "portrait": P.MARKET_VIEW}

    def published_queryset(self) -> QuerySet[Avatar]:
        fields = DETAIL_FIELDS if self.action == "retrieve" else LIST_FIELDS
        return market.market_avatars().only(*fields)

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        if self.action == "retrieve":
            return MarketAvatarDetailSerializer
        return MarketAvatarSerializer

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def portrait(self, request: Request, *args: Any, **kwargs: Any) -> FileResponse:
        """The portrait PNG of the avatar's current version; 404 when it has none."""
        return portrait_response(self.get_object().current_version)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("market/avatars", MarketAvatarViewSet, basename="market-avatar")
