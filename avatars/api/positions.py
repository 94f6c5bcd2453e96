"""Endpoints: positions, the jobs an organization hires digital employees into."""

from __future__ import annotations

from typing import Any

import django_filters
from rest_framework import mixins, serializers
from rest_framework.routers import SimpleRouter

from avatars import positions as services
from avatars.api.fields import LanguageTagsField
from avatars.models import Position, Skill
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer
from tenants.roles import Permission as P


class PositionSerializer(StrictModelSerializer):
    required_languages = LanguageTagsField(
        required=False, help_text="BCP-47 tags; a required zh is met by zh-CN, yue by yue-HK."
    )
    required_skills = serializers.ListField(
        child=serializers.ChoiceField(choices=Skill.choices), max_length=20, required=False
    )
    headcount = serializers.IntegerField(min_value=1, max_value=10_000, required=False)

    class Meta:
        model = Position
        fields = [
            "id",
            "title",
            "department",
            "duties",
            "required_languages",
            "required_skills",
            "headcount",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class PositionFilter(django_filters.FilterSet):
    department = django_filters.CharFilter()

    class Meta:
        model = Position
        fields = ["department"]


class PositionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    """Positions: title, department, duties, the languages and skills they require, headcount.

    A position that has employments (terminated ones included) cannot be deleted: 409."""

    model = Position
    serializer_class = PositionSerializer
    filterset_class = PositionFilter
    ordering_fields = ["created_at", "title"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map = {
        "list": P.POSITIONS_VIEW,
        "retrieve": P.POSITIONS_VIEW,
        "create": P.POSITIONS_MANAGE,
        "partial_update": P.POSITIONS_MANAGE,
        "destroy": P.POSITIONS_MANAGE,
    }

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_position(
            self.actor, self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.update_position(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Position) -> None:
        services.delete_position(self.actor, instance)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("positions", PositionViewSet, basename="position")
