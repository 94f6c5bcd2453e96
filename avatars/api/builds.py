"""Endpoints: avatar builds — start one from footage under a consent, follow it, cancel it."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from avatars import builds as services
from avatars.api.fields import IdChoiceFilter, request_organization_rows
from avatars.models import Avatar, AvatarBuild, AvatarVersion, BuildStatus, Consent, Upload
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from tenants.roles import Permission as P


class BuildSerializer(StrictModelSerializer):
    avatar = TenantRelatedField(Avatar, read_only=True)
    footage = TenantRelatedField(Upload, read_only=True)
    consent = TenantRelatedField(Consent, read_only=True)
    result_version = TenantRelatedField(AvatarVersion, read_only=True)
    progress = serializers.IntegerField(read_only=True, help_text="Percent done, 0 to 100.")
    workload = serializers.UUIDField(
        source="workload_id",
        read_only=True,
        allow_null=True,
        help_text="The GPU workload that runs the build (`workloads/{id}/`): why it waits, where.",
    )

    class Meta:
        model = AvatarBuild
        fields = [
            "id",
            "avatar",
            "footage",
            "consent",
            "status",
            "progress",
            "stage",
            "failure_code",
            "failure_reason",
            "cancel_requested",
            "workload",
            "result_version",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields


class BuildStartSerializer(StrictSerializer):
    avatar = TenantRelatedField(Avatar, help_text="The avatar to build a new version of.")
    footage = TenantRelatedField(
        Upload,
        required=False,
        help_text="A complete upload (purpose footage) of 2 to 3 minutes of the person.",
    )
    consent = TenantRelatedField(
        Consent, required=False, help_text="The filmed person's valid consent for this avatar."
    )


class BuildFilter(django_filters.FilterSet):
    avatar = IdChoiceFilter(queryset=request_organization_rows(Avatar))
    status = django_filters.ChoiceFilter(choices=BuildStatus.choices)

    class Meta:
        model = AvatarBuild
        fields = ["avatar", "status"]


class BuildViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    OrganizationViewSet,
):
    """Builds of custom avatars. A build needs complete footage that passed its checks and the
    filmed person's valid consent for the avatar; the avatar is `building` until the build ends.
    It runs as a `build` workload on a GPU worker, at the lowest priority: follow `status`,
    `progress` (0–100) and `stage` (`footage`, `portrait`, `voice`, `bundle`), and the workload
    for why it waits. Success makes a new version the avatar's current one; a failure
    (`failure_code`, `failure_reason`) or a cancel leaves the previous version current.
    Cancelling ends the build at once (`cancel_requested`); its worker stops at its next
    heartbeat."""

    model = AvatarBuild
    serializer_class = BuildSerializer
    filterset_class = BuildFilter
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "head", "options"]
    permission_map = {
        "list": P.AVATARS_VIEW,
        "retrieve": P.AVATARS_VIEW,
        "create": P.AVATARS_MANAGE,
        "cancel": P.AVATARS_MANAGE,
    }

    @extend_schema(request=BuildStartSerializer, responses={201: BuildSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = BuildStartSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        build = services.start_build(
            self.actor,
            self.organization,
            avatar=data["avatar"],
            footage=data.get("footage"),
            consent=data.get("consent"),
        )
        return Response(BuildSerializer(build).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: BuildSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        build = services.cancel_build(self.actor, self.get_object())
        return Response(BuildSerializer(build).data)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("builds", BuildViewSet, basename="build")
