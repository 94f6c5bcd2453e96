"""Endpoints for an organization's own avatars: CRUD, publishing, retiring, versions, and how many
seats of each are hired (aggregate only)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import django_filters
from django.http import FileResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from avatars import catalog, market
from avatars.api.fields import LanguageTagsField
from avatars.models import (
    Avatar,
    AvatarBuild,
    AvatarStatus,
    AvatarVersion,
    Consent,
    Skill,
    Visibility,
)
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.pagination import KeysetCursorPagination
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer
from tenants.roles import Permission as P

# --- Fields -----------------------------------------------------------------------------------


class SkillsField(serializers.ListField):
    child = serializers.ChoiceField(choices=Skill.choices)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, list):
            problem = catalog.skills_error(data)
            if problem is not None:
                raise serializers.ValidationError(problem, code="invalid_skill")
        return catalog.clean_skills(super().to_internal_value(data))


class OutfitSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, allow_blank=True, default="")


class WardrobeField(serializers.ListField):
    child = OutfitSerializer()

    def to_internal_value(self, data: Any) -> list[dict[str, str]]:
        outfits = super().to_internal_value(data)
        problem = catalog.wardrobe_error(outfits)
        if problem is not None:
            raise serializers.ValidationError(problem, code="invalid_wardrobe")
        return catalog.clean_wardrobe(outfits)


def portrait_url(
    context: Mapping[str, Any],
    route: str,
    avatar_id: Any,
    version: AvatarVersion | None,
    query: str = "",
) -> str | None:
    """Where the caller fetches the version's portrait: this API's endpoint `route` under the
    caller's organization (see `portrait_response`); None when the version has none."""
    if version is None or not version.portrait:
        return None
    path = reverse(route, kwargs={"org": context["organization"].slug, "pk": avatar_id}) + query
    request: Request | None = context.get("request")
    return path if request is None else str(request.build_absolute_uri(path))


def portrait_response(version: AvatarVersion | None) -> FileResponse:
    """The version's portrait PNG, streamed from MEDIA_ROOT; 404 when it has none."""
    if version is None:
        raise exceptions.NotFound(_("This avatar has not been built yet, so it has no portrait."))
    path = catalog.portrait_file(version)
    if path is None:
        raise exceptions.NotFound(
            _("Version %(number)d of this avatar has no portrait.") % {"number": version.number}
        )
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private"  # for the caller's organization, not a shared cache
    return response


# --- Serializers ------------------------------------------------------------------------------


class VersionSummarySerializer(serializers.Serializer[AvatarVersion]):
    id = serializers.UUIDField(read_only=True)
    number = serializers.IntegerField(read_only=True)


class AvatarSerializer(StrictModelSerializer):
    languages = LanguageTagsField(
        required=False, help_text="BCP-47 tags: zh-CN, yue-HK, en-US, zh-Hans-CN…"
    )
    skills = SkillsField(required=False)
    wardrobe = WardrobeField(required=False, help_text="Outfits: name and description.")
    list_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0"), required=False
    )
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$",
        required=False,
        help_text="ISO 4217 code, e.g. CNY.",
        error_messages={"invalid": _("Use a three-letter ISO 4217 currency code, such as CNY.")},
    )
    current_version = VersionSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Avatar
        fields = [
            "id",
            "name_zh",
            "name_en",
            "visibility",
            "status",
            "status_reason",
            "languages",
            "skills",
            "persona",
            "wardrobe",
            "description",
            "list_price",
            "currency",
            "current_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "status_reason",
            "current_version",
            "created_at",
            "updated_at",
        ]

    def validate_currency(self, value: str) -> str:
        return value.upper()


class AvatarVersionSerializer(serializers.ModelSerializer[AvatarVersion]):
    build = serializers.PrimaryKeyRelatedField[AvatarBuild](read_only=True)
    consent = serializers.PrimaryKeyRelatedField[Consent](read_only=True)
    is_current = serializers.SerializerMethodField()
    portrait_available = serializers.SerializerMethodField()
    bundle_available = serializers.SerializerMethodField()
    portrait_url = serializers.SerializerMethodField()

    class Meta:
        model = AvatarVersion
        fields = [
            "id",
            "number",
            "created_at",
            "is_current",
            "voice_profile",
            "build",
            "consent",
            "notes",
            "portrait_available",
            "bundle_available",
            "portrait_url",
        ]
        read_only_fields = fields

    def get_is_current(self, version: AvatarVersion) -> bool:
        return bool(version.pk == self.context.get("current_version_id"))

    def get_portrait_available(self, version: AvatarVersion) -> bool:
        return bool(version.portrait)

    def get_bundle_available(self, version: AvatarVersion) -> bool:
        return bool(version.bundle)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_portrait_url(self, version: AvatarVersion) -> str | None:
        query = f"?version={version.number}"
        return portrait_url(self.context, "avatar-portrait", version.avatar_id, version, query)


class PortraitQuerySerializer(serializers.Serializer[dict[str, int]]):
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="Number of the version; the current one if left out."
    )


class RetireSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=300, help_text="Why the avatar is retired.")


class StatusCountsSerializer(serializers.Serializer[dict[str, int]]):
    offered = serializers.IntegerField()
    onboarding = serializers.IntegerField()
    active = serializers.IntegerField()
    suspended = serializers.IntegerField()


class HireStatisticsSerializer(serializers.Serializer[market.HireStatistics]):
    """Hires of the avatar across every institution that have not ended: counts and seat sums
    by status. Nothing says which institutions hired it."""

    hires = StatusCountsSerializer(help_text="Hires by status.")
    seats = StatusCountsSerializer(help_text="Seats (concurrent instances) hired, by status.")
    hires_not_ended = serializers.IntegerField()
    seats_not_ended = serializers.IntegerField()
    institutions = serializers.IntegerField(help_text="How many institutions hold these hires.")


# --- Filters ----------------------------------------------------------------------------------


class AvatarFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AvatarStatus.choices)
    visibility = django_filters.ChoiceFilter(choices=Visibility.choices)

    class Meta:
        model = Avatar
        fields = ["status", "visibility"]


# --- Views ------------------------------------------------------------------------------------


class AvatarViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    """The organization's own avatars. Status is set by builds (draft → building → ready) and by
    retiring; making an avatar public publishes it in the talent market."""

    model = Avatar
    serializer_class = AvatarSerializer
    filterset_class = AvatarFilter
    ordering_fields = ["created_at", "name_zh", "name_en", "list_price"]
    ordering = ["-created_at"]
    pagination_class = KeysetCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map = {
        "list": P.AVATARS_VIEW,
        "retrieve": P.AVATARS_VIEW,
        "create": P.AVATARS_MANAGE,
        "partial_update": P.AVATARS_MANAGE,
        "destroy": P.AVATARS_MANAGE,
        "retire": P.AVATARS_MANAGE,
        "versions": P.AVATARS_VIEW,
        "hires": P.AVATARS_VIEW,
        "portrait": P.AVATARS_VIEW,
    }

    def scope_queryset(self, queryset: Any) -> Any:
        return queryset.select_related("current_version")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = catalog.create_avatar(
            self.actor, self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = catalog.update_avatar(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Avatar) -> None:
        catalog.delete_avatar(self.actor, instance)

    @extend_schema(request=RetireSerializer, responses=AvatarSerializer)
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        avatar = self.get_object()
        payload = RetireSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        avatar = catalog.retire_avatar(self.actor, avatar, payload.validated_data["reason"])
        return Response(AvatarSerializer(avatar, context=self.get_serializer_context()).data)

    @extend_schema(responses=AvatarVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def versions(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every built version of the avatar, newest first (read-only: builds make them)."""
        avatar = self.get_object()
        versions = (
            AvatarVersion.objects.for_organization(self.organization)
            .filter(avatar=avatar)
            .order_by("-number")
        )
        context = {**self.get_serializer_context(), "current_version_id": avatar.current_version_id}
        return Response(AvatarVersionSerializer(versions, many=True, context=context).data)

    @extend_schema(responses=HireStatisticsSerializer)
    @action(detail=True, methods=["get"])
    def hires(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """How many seats of this avatar institutions hired, by status: counts and sums only."""
        statistics = market.hire_statistics(self.get_object())
        return Response(HireStatisticsSerializer(statistics).data)

    @extend_schema(
        parameters=[PortraitQuerySerializer],
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def portrait(self, request: Request, *args: Any, **kwargs: Any) -> FileResponse:
        """The portrait PNG of a version of the avatar (the current one unless `version` names
        another); 404 when that version has none."""
        avatar = self.get_object()
        query = PortraitQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        number = query.validated_data.get("version")
        version = catalog.version_of(avatar, number)
        if version is None and number is not None:
            raise exceptions.NotFound(
                _("This avatar has no version %(number)d.") % {"number": number}
            )
        return portrait_response(version)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("avatars", AvatarViewSet, basename="avatar")
