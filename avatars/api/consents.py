"""Endpoints: consents of the people filmed for avatars; recording and revoking them."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from avatars import consent as services
from avatars.api.fields import IdChoiceFilter, request_organization_rows
from avatars.models import Avatar, Consent, ConsentScope, Upload
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from tenants.models import Organization
from tenants.roles import Permission as P


class ConsentSerializer(StrictModelSerializer):
    avatar = TenantRelatedField(Avatar, read_only=True)
    clip = TenantRelatedField(Upload, read_only=True)
    scope_organizations = serializers.ManyRelatedField(
        child_relation=serializers.SlugRelatedField[Organization](
            slug_field="slug", read_only=True
        ),
        read_only=True,
    )
    valid = serializers.SerializerMethodField(
        help_text="Not revoked and not expired: builds and hires may rely on it."
    )

    class Meta:
        model = Consent
        fields = [
            "id",
            "avatar",
            "subject_name",
            "statement",
            "clip",
            "scope",
            "scope_organizations",
            "expires_at",
            "valid",
            "revoked_at",
            "revoked_reason",
            "enforced_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_valid(self, consent: Consent) -> bool:
        return consent.is_valid()


class ConsentRecordSerializer(StrictSerializer):
    avatar = TenantRelatedField(Avatar, help_text="The avatar built from this person's likeness.")
    subject_name = serializers.CharField(max_length=200, help_text="The person filmed.")
    statement = serializers.CharField(
        max_length=10_000, help_text="What the person agreed to, in their words."
    )
    clip = TenantRelatedField(
        Upload, help_text="A complete upload (purpose consent_clip) of the person saying it."
    )
    scope = serializers.ChoiceField(choices=ConsentScope.choices)
    scope_organizations = serializers.ListField(
        child=serializers.SlugField(max_length=50),
        max_length=100,
        required=False,
        help_text="With scope 'listed': the slugs of the organizations that may use the likeness.",
    )
    expires_at = serializers.DateTimeField()


class ConsentRevokeSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=300, help_text="Shown on the suspended hires.")


class ConsentFilter(django_filters.FilterSet):
    avatar = IdChoiceFilter(queryset=request_organization_rows(Avatar))
    scope = django_filters.ChoiceFilter(choices=ConsentScope.choices)

    class Meta:
        model = Consent
        fields = ["avatar", "scope"]


class ConsentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    OrganizationViewSet,
):
    """Consents: who was filmed, their statement and recorded clip, who may use the likeness,
    until when. A consent is not edited; it is revoked. Revoking one (or its expiry, checked
    hourly) stops the builds under it and suspends every hire of a version built under it, in
    whichever organization hired it, with the reason."""

    model = Consent
    serializer_class = ConsentSerializer
    filterset_class = ConsentFilter
    ordering_fields = ["created_at", "expires_at"]
    http_method_names = ["get", "post", "head", "options"]
    permission_map = {
        "list": P.AVATARS_VIEW,
        "retrieve": P.AVATARS_VIEW,
        "create": P.AVATARS_MANAGE,
        "revoke": P.AVATARS_MANAGE,
    }

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.prefetch_related("scope_organizations")

    @extend_schema(request=ConsentRecordSerializer, responses={201: ConsentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = ConsentRecordSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        consent = services.record_consent(self.actor, self.organization, **payload.validated_data)
        return Response(ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ConsentRevokeSerializer, responses={200: ConsentSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        consent = self.get_object()
        payload = ConsentRevokeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        consent = services.revoke_consent(self.actor, consent, payload.validated_data["reason"])
        return Response(ConsentSerializer(consent).data)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("consents", ConsentViewSet, basename="consent")
