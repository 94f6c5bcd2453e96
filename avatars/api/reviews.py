"""Endpoints: performance reviews, one per employment per month."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.routers import SimpleRouter

from avatars import reviews as services
from avatars.api.fields import IdChoiceFilter, request_organization_rows
from avatars.models import Employment, PerformanceReview, ReviewStatus
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer
from tenants.roles import Permission as P


class PerformanceReviewSerializer(StrictModelSerializer):
    rating = serializers.IntegerField(min_value=1, max_value=5, required=False)
    comments = serializers.CharField(max_length=20_000, allow_blank=True, required=False)
    reviewer = serializers.SerializerMethodField(help_text="Email of who completed the review.")

    class Meta:
        model = PerformanceReview
        fields = [
            "id",
            "employment",
            "period",
            "kpis",
            "rating",
            "comments",
            "status",
            "reviewer",
            "created_at",
            "completed_at",
        ]
        read_only_fields = [
            "id",
            "employment",
            "period",
            "kpis",
            "status",
            "created_at",
            "completed_at",
        ]

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_reviewer(self, review: PerformanceReview) -> str | None:
        return review.reviewer.email if review.reviewer is not None else None


class PerformanceReviewFilter(django_filters.FilterSet):
    employment = IdChoiceFilter(queryset=request_organization_rows(Employment))
    period = django_filters.DateFilter(help_text="The month, as its first day (2025-03-01).")
    status = django_filters.ChoiceFilter(choices=ReviewStatus.choices)

    class Meta:
        model = PerformanceReview
        fields = ["employment", "period", "status"]


class PerformanceReviewViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    OrganizationViewSet,
):
    """Monthly reviews, opened when a month ends (in the organization's time zone) for every
    employment that was active in it. A reviewer rates 1–5 and comments; `kpis` is filled by
    analytics and read-only here."""

    model = PerformanceReview
    serializer_class = PerformanceReviewSerializer
    filterset_class = PerformanceReviewFilter
    ordering_fields = ["created_at", "period"]
    http_method_names = ["get", "patch", "head", "options"]
    permission_map = {
        "list": P.REVIEWS_VIEW,
        "retrieve": P.REVIEWS_VIEW,
        "partial_update": P.REVIEWS_MANAGE,
    }

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.select_related("reviewer")

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.complete_review(
            self.actor, serializer.instance, **serializer.validated_data
        )


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("reviews", PerformanceReviewViewSet, basename="performance-review")
