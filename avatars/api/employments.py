"""Endpoints: employments (hires), their lifecycle, onboarding and newer avatar versions.

The lifecycle has one endpoint, `POST …/employments/{id}/transition/` with `{to, reason}`, because
the lifecycle is one table (avatars.employments.TRANSITIONS): a client reads `allowed_next` from
the employment and sends one of them, instead of knowing a URL per verb.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Prefetch, QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from avatars import employments as services
from avatars.api.fields import IdChoiceFilter, request_organization_rows
from avatars.models import (
    Avatar,
    AvatarVersion,
    Employment,
    EmploymentStatus,
    EmploymentTransition,
    KnowledgeDocument,
    KnowledgeEntry,
    Position,
)
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from tenants.roles import Permission as P

MAX_SEATS = 10_000


# --- Payloads -------------------------------------------------------------------------------------


class HireableAvatarField(TenantRelatedField):
    """An avatar the organization may hire: its own, or a public ready one of the talent market.
    Another organization's private avatar answers exactly like an id that does not exist."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Avatar, **kwargs)

    def get_queryset(self) -> QuerySet[Avatar]:
        return services.hireable_avatars(self.context["organization"])


class VersionOfEmployedAvatarField(TenantRelatedField):
    """A version of the avatar the employment hired (which may belong to a vendor)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(AvatarVersion, **kwargs)

    def get_queryset(self) -> QuerySet[AvatarVersion]:
        return services.versions_of_avatar(self.context["employment"].avatar)


class HireSerializer(StrictSerializer):
    avatar = HireableAvatarField(
        help_text="An avatar of this organization, or a public ready one of the talent market."
    )
    position = TenantRelatedField(Position)
    seats = serializers.IntegerField(
        min_value=1,
        max_value=MAX_SEATS,
        default=1,
        help_text="How many instances may work at once.",
    )
    rate = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Per seat-month. Left out: the avatar's list price; otherwise negotiated.",
    )
    starts_on = serializers.DateField()
    ends_on = serializers.DateField(required=False, allow_null=True)


class VoiceSerializer(StrictSerializer):
    """A voice: one of the avatar vendor's voices by id, or profile parameters."""

    voice_id = serializers.CharField(max_length=100, required=False)
    pitch_hz = serializers.FloatField(min_value=50, max_value=500, required=False)
    syllables_per_second = serializers.FloatField(min_value=1, max_value=12, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                _("Choose a voice: give voice_id, or pitch_hz and syllables_per_second.")
            )
        return attrs


class EmploymentUpdateSerializer(StrictSerializer):
    seats = serializers.IntegerField(min_value=1, max_value=MAX_SEATS, required=False)
    rate = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="null: back to the avatar's list price.",
    )
    starts_on = serializers.DateField(required=False)
    ends_on = serializers.DateField(required=False, allow_null=True)
    persona = serializers.CharField(
        max_length=20_000,
        allow_blank=True,
        required=False,
        help_text="Changing it marks it not reviewed, unless persona_reviewed comes with it.",
    )
    persona_reviewed = serializers.BooleanField(required=False)
    voice = VoiceSerializer(required=False, allow_null=True, help_text="null: no voice chosen.")

    def validate_voice(self, value: Any) -> dict[str, Any] | None:
        return None if value is None else dict(value)


class TransitionSerializer(StrictSerializer):
    to = serializers.ChoiceField(choices=EmploymentStatus.choices)
    reason = serializers.CharField(
        max_length=services.REASON_MAX_LENGTH,
        allow_blank=True,
        help_text="Why; kept in the employment's history and the audit log.",
    )


class UpgradeSerializer(StrictSerializer):
    version = VersionOfEmployedAvatarField(
        required=False,
        allow_null=True,
        help_text="A newer version of the hired avatar; left out: the avatar's current version.",
    )


class KnowledgeSerializer(StrictSerializer):
    entries = TenantRelatedField(KnowledgeEntry, many=True, required=False)
    documents = TenantRelatedField(KnowledgeDocument, many=True, required=False)


# --- Representations ------------------------------------------------------------------------------


class ChecklistSerializer(serializers.Serializer[Any]):
    persona_reviewed = serializers.BooleanField()
    voice_chosen = serializers.BooleanField()
    knowledge_attached = serializers.BooleanField()
    complete = serializers.BooleanField()


class EmploymentSerializer(StrictModelSerializer):
    version_number = serializers.IntegerField(source="avatar_version.number", read_only=True)
    allowed_next = serializers.SerializerMethodField()
    knowledge_entries = serializers.SerializerMethodField()
    knowledge_documents = serializers.SerializerMethodField()
    checklist = serializers.SerializerMethodField()

    class Meta:
        model = Employment
        fields = [
            "id",
            "avatar",
            "avatar_version",
            "version_number",
            "position",
            "seats",
            "rate",
            "rate_source",
            "currency",
            "starts_on",
            "ends_on",
            "status",
            "status_reason",
            "allowed_next",
            "persona",
            "persona_reviewed",
            "voice",
            "knowledge_entries",
            "knowledge_documents",
            "checklist",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.ListField(child=serializers.ChoiceField(EmploymentStatus.choices))
    )
    def get_allowed_next(self, employment: Employment) -> list[str]:
        return services.allowed_next(employment.status)

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_knowledge_entries(self, employment: Employment) -> list[str]:
        return sorted(str(entry.pk) for entry in employment.knowledge_entries.all())

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_knowledge_documents(self, employment: Employment) -> list[str]:
        return sorted(str(document.pk) for document in employment.knowledge_documents.all())

    @extend_schema_field(ChecklistSerializer)
    def get_checklist(self, employment: Employment) -> dict[str, bool]:
        attached = bool(employment.knowledge_entries.all() or employment.knowledge_documents.all())
        checklist = services.checklist_of(employment, knowledge_attached=attached)
        return {
            "persona_reviewed": checklist.persona_reviewed,
            "voice_chosen": checklist.voice_chosen,
            "knowledge_attached": checklist.knowledge_attached,
            "complete": checklist.complete,
        }


class EmploymentTransitionSerializer(StrictModelSerializer):
    class Meta:
        model = EmploymentTransition
        fields = ["id", "from_status", "to_status", "reason", "actor_label", "created_at"]
        read_only_fields = fields


# --- Filters --------------------------------------------------------------------------------------


class EmploymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=EmploymentStatus.choices)
    position = IdChoiceFilter(queryset=request_organization_rows(Position))
    # Hired avatars are often a vendor's: what the organization hired or may hire.
    avatar = IdChoiceFilter(
        queryset=request_organization_rows(Avatar, services.avatars_employed_or_hireable)
    )

    class Meta:
        model = Employment
        fields = ["status", "position", "avatar"]


# --- Views ----------------------------------------------------------------------------------------

_ID_LIST = OpenApiTypes.UUID


class EmploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationViewSet):
    """Hires: an avatar version in one of the organization's positions, with seats and a rate.

    offered → onboarding → active ⇄ suspended, and terminated from any but terminated; every change
    through `transition/` with a reason. An employment is never deleted: it is terminated."""

    model = Employment
    serializer_class = EmploymentSerializer
    filterset_class = EmploymentFilter
    ordering_fields = ["created_at", "starts_on"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_map = {
        "list": P.EMPLOYMENTS_VIEW,
        "retrieve": P.EMPLOYMENTS_VIEW,
        "transitions": P.EMPLOYMENTS_VIEW,
        "create": P.EMPLOYMENTS_MANAGE,
        "partial_update": P.EMPLOYMENTS_MANAGE,
        "transition": P.EMPLOYMENTS_MANAGE,
        "upgrade": P.EMPLOYMENTS_MANAGE,
        "knowledge": P.EMPLOYMENTS_MANAGE,
        "detach_knowledge": P.EMPLOYMENTS_MANAGE,
    }

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        organization = self.organization
        return queryset.select_related("avatar_version").prefetch_related(
            Prefetch(
                "knowledge_entries",
                queryset=KnowledgeEntry.objects.for_organization(organization).only("id"),
            ),
            Prefetch(
                "knowledge_documents",
                queryset=KnowledgeDocument.objects.for_organization(organization).only("id"),
            ),
        )

    def _represent(self, employment: Employment, status_code: int = 200) -> Response:
        fresh = self.get_queryset().get(pk=employment.pk)
        return Response(EmploymentSerializer(fresh).data, status=status_code)

    def _payload(self, serializer_class: type[StrictSerializer], data: Any, **context: Any) -> Any:
        payload = serializer_class(data=data, context={**self.get_serializer_context(), **context})
        payload.is_valid(raise_exception=True)
        return payload.validated_data

    @extend_schema(request=HireSerializer, responses={201: EmploymentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Hire: offer an avatar's current version a position. The avatar must have the languages
        and skills the position requires; the seats must fit the plan."""
        data = self._payload(HireSerializer, request.data)
        employment = services.hire_avatar(self.actor, self.organization, **data)
        return self._represent(employment, status.HTTP_201_CREATED)

    @extend_schema(request=EmploymentUpdateSerializer, responses=EmploymentSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change seats, rate, dates, or onboarding: persona (and persona_reviewed), voice."""
        employment = self.get_object()
        data = self._payload(EmploymentUpdateSerializer, request.data)
        services.update_employment(self.actor, employment, **data)
        return self._represent(employment)

    @extend_schema(request=TransitionSerializer, responses=EmploymentSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Move along the lifecycle. An illegal move answers 409 and names the allowed ones."""
        employment = self.get_object()
        data = self._payload(TransitionSerializer, request.data)
        services.transition_employment(self.actor, employment, data["to"], data["reason"])
        return self._represent(employment)

    @extend_schema(responses=EmploymentTransitionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def transitions(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The employment's lifecycle history, oldest first."""
        employment = self.get_object()
        history = (
            EmploymentTransition.objects.for_organization(self.organization)
            .filter(employment=employment)
            .order_by("created_at", "id")
        )
        return Response(EmploymentTransitionSerializer(history, many=True).data)

    @extend_schema(request=UpgradeSerializer, responses=EmploymentSerializer)
    @action(detail=True, methods=["post"])
    def upgrade(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Move to a newer version of the same avatar (only forward; its consent must cover us)."""
        employment = self.get_object()
        data = self._payload(UpgradeSerializer, request.data, employment=employment)
        services.move_to_version(self.actor, employment, data.get("version"))
        return self._represent(employment)

    @extend_schema(request=KnowledgeSerializer, responses=EmploymentSerializer)
    @action(detail=True, methods=["post"])
    def knowledge(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Attach knowledge entries and documents of this organization."""
        employment = self.get_object()
        data = self._payload(KnowledgeSerializer, request.data)
        services.attach_knowledge(
            self.actor,
            employment,
            entries=data.get("entries", []),
            documents=data.get("documents", []),
        )
        return self._represent(employment)

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter("entries", _ID_LIST, many=True, description="Entries to detach."),
            OpenApiParameter("documents", _ID_LIST, many=True, description="Documents to detach."),
        ],
        responses={200: EmploymentSerializer},
    )
    @knowledge.mapping.delete
    def detach_knowledge(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Detach knowledge: `?entries=<id>&documents=<id>`, each repeatable."""
        employment = self.get_object()
        query = {
            name: request.query_params.getlist(name)
            for name in ("entries", "documents")
            if name in request.query_params
        }
        data = self._payload(KnowledgeSerializer, query)
        services.detach_knowledge(
            self.actor,
            employment,
            entries=data.get("entries", []),
            documents=data.get("documents", []),
        )
        return self._represent(employment)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("employments", EmploymentViewSet, basename="employment")
