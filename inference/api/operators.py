"""The operators' API, under /api/v1/platform/inference/: pools, workers, every organization's
workloads with their reasons, the platform's capacity calendar, and draining a worker.

Platform staff only (a signed-in user with `is_staff`). Anyone else who is signed in gets 403:
these routes are the same for everyone and published in the schema, so refusing them reveals
nothing about any organization (unlike an organization's object, which answers 404). API keys
belong to one organization and are always refused here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import django_filters
import structlog
from django.core.exceptions import ValidationError as ModelValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from inference import capacity, selectors, services
from inference.api.capacity import CalendarQuerySerializer, CalendarSerializer, calendar_query
from inference.api.capacity import calendar_response as _calendar_response
from inference.api.workloads import PoolColumnsSerializer, WorkloadSerializer
from inference.models import (
    Priority,
    Worker,
    WorkerPool,
    WorkerState,
    Workload,
    WorkloadKind,
    WorkloadState,
)
from inference.pools import FIELDS as POOL_FIELDS
from ironbowl.api.pagination import OrganizationCursorPagination
from ironbowl.api.serializers import StrictModelSerializer
from tenants import audit
from tenants.models import ApiKey, User

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass

logger = structlog.get_logger(__name__)

TAGS = ["operators"]


class IsPlatformStaff(permissions.BasePermission):
    message = _("Only the platform's operators (staff) may use this endpoint.")

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return (
            not isinstance(request.auth, ApiKey)
            and isinstance(user, User)
            and user.is_active
            and user.is_staff
        )


class OperatorView:
    """Mixin: staff only; times read and shown in UTC (the platform has no one time zone)."""

    permission_classes: Sequence[_PermissionClass] = [permissions.IsAuthenticated, IsPlatformStaff]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        timezone.activate(dt.UTC)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        timezone.deactivate()
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc,no-any-return]

    @property
    def staff_actor(self) -> audit.Actor:
        """Who acts, for the audit log of the organization acted on (staff: checked first)."""
        request: Request = getattr(self, "request")  # noqa: B009
        return audit.Actor(
            user=request.user,  # type: ignore[arg-type]
            ip_address=request.META.get("REMOTE_ADDR"),
            request_id=request.META.get("HTTP_X_REQUEST_ID", ""),
        )


class OperatorViewSet(OperatorView, viewsets.GenericViewSet[Any]):
    pagination_class = OrganizationCursorPagination
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]


def _model_errors(error: ModelValidationError) -> serializers.ValidationError:
    """A model's full_clean errors as the API's field errors."""
    fields = (
        error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
    )
    return serializers.ValidationError(fields)


# --- Pools ----------------------------------------------------------------------------------------


class PoolSerializer(StrictModelSerializer):
    class Meta:
        model = WorkerPool
        fields = ["name", *POOL_FIELDS, "is_active", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class PoolUpdateSerializer(PoolSerializer):
    """A pool's name is its identity (labels, namespaces' workers): it does not change."""

    class Meta(PoolSerializer.Meta):
        read_only_fields = ["name", "created_at", "updated_at"]


class PoolPagination(OrganizationCursorPagination):
    ordering = ("name",)


class PoolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet):
    """Worker pools. Every change is validated whole (the model's own checks) before anything is
    written; a pool is switched off with `is_active: false`, never deleted (its history stays).

    The orchestrator also syncs pools from its pools file when it starts (`inference.pools`)."""

    queryset = WorkerPool.objects.all()
    serializer_class = PoolSerializer
    pagination_class = PoolPagination
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9-]{1,40}"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _save(self, pool: WorkerPool, *, validate_unique: bool) -> WorkerPool:
        try:
            pool.full_clean(validate_unique=validate_unique)
        except ModelValidationError as error:
            raise _model_errors(error) from None
        pool.save()
        return pool

    @extend_schema(tags=TAGS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every pool, active or not, by name."""
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request=PoolSerializer, responses={201: PoolSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Define a pool. An invalid one is refused with the fields at fault; nothing is written."""
        payload = PoolSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with transaction.atomic():
            pool = self._save(WorkerPool(**payload.validated_data), validate_unique=True)
        logger.info("inference.pool_created", pool=pool.name, by=request.user.pk)
        return Response(PoolSerializer(pool).data, status=201)

    @extend_schema(tags=TAGS, request=PoolUpdateSerializer, responses=PoolSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change a pool; `is_active: false` switches it off (its workers drain)."""
        with transaction.atomic():
            pool = WorkerPool.objects.select_for_update().filter(pk=self.get_object().pk).get()
            payload = PoolUpdateSerializer(pool, data=request.data, partial=True)
            payload.is_valid(raise_exception=True)
            _refuse_shape_change_under_workers(pool, payload.validated_data)
            for name, value in payload.validated_data.items():
                setattr(pool, name, value)
            self._save(pool, validate_unique=False)
        logger.info(
            "inference.pool_changed",
            pool=pool.name,
            fields=sorted(payload.validated_data),
            by=request.user.pk,
        )
        return Response(PoolSerializer(pool).data)


# What running workers and admitted work were sized by: changing it under them would count
# their slots against another class's quota or overfill their workers.
SHAPE_FIELDS = ("gpu_class", "gpus_per_worker", "slots_per_worker")


def _refuse_shape_change_under_workers(pool: WorkerPool, changes: dict[str, Any]) -> None:
    changed = [f for f in SHAPE_FIELDS if f in changes and changes[f] != getattr(pool, f)]
    if changed and pool.workers.exclude(state=WorkerState.GONE).exists():
        raise serializers.ValidationError(
            {
                field: [
                    _(
                        "The pool has live workers; switch it off (is_active: false) and wait "
                        "until they are gone before changing this."
                    )
                ]
                for field in changed
            }
        )


# --- Workers --------------------------------------------------------------------------------------


class WorkerSerializer(PoolColumnsSerializer):
    organization = serializers.CharField(source="organization.slug", read_only=True)

    class Meta:
        model = Worker
        fields = [
            "id",
            "backend_id",
            "organization",
            "pool",
            "gpu_class",
            "state",
            "slots",
            "slots_used",
            "reason",
            "message",
            "last_heartbeat_at",
            "created_at",
            "ready_at",
            "gone_at",
        ]
        read_only_fields = fields


class WorkerFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped base
    pool = django_filters.CharFilter(field_name="pool__name")
    state = django_filters.ChoiceFilter(choices=WorkerState.choices)
    organization = django_filters.CharFilter(field_name="organization__slug")

    class Meta:
        model = Worker
        fields = ["pool", "state", "organization"]


class WorkerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet):
    """Workers of every organization, newest first; filters `pool` (name), `state`,
    `organization` (slug)."""

    serializer_class = WorkerSerializer
    filterset_class = WorkerFilter
    lookup_value_regex = "[0-9a-f-]{36}"
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self) -> QuerySet[Worker]:
        return selectors.every_worker()

    @extend_schema(tags=TAGS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request=None, responses=WorkerSerializer)
    @action(detail=True, methods=["post"])
    def drain(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Give the worker no new work; the orchestrator stops it once it is empty. Draining a
        worker already draining or gone changes nothing. Recorded in its organization's audit
        log."""
        worker = self.get_object()
        before = audit.snapshot(worker, exclude=("token_hash",))
        with transaction.atomic():
            worker = services.drain(worker)
            after = audit.snapshot(worker, exclude=("token_hash",))
            if after != before:
                audit.record(
                    self.staff_actor,
                    worker.organization,
                    "worker.drain",
                    worker,
                    before=before,
                    after=after,
                )
        return Response(WorkerSerializer(worker).data)


# --- Workloads ------------------------------------------------------------------------------------


# What an organization submitted stays out of the operators' view: its spec and result.
_TENANT_PAYLOAD = ("spec", "result", "idempotency_key", "reservation")


class OperatorWorkloadSerializer(WorkloadSerializer):
    organization = serializers.CharField(source="organization.slug", read_only=True)

    class Meta(WorkloadSerializer.Meta):
        fields = [
            "organization",
            "worker",
            *(f for f in WorkloadSerializer.Meta.fields if f not in _TENANT_PAYLOAD),
        ]
        read_only_fields = fields


class OperatorWorkloadFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped base
    state = django_filters.ChoiceFilter(choices=WorkloadState.choices)
    kind = django_filters.ChoiceFilter(choices=WorkloadKind.choices)
    pool = django_filters.CharFilter(field_name="pool__name")
    organization = django_filters.CharFilter(field_name="organization__slug")
    priority = django_filters.TypedChoiceFilter(choices=Priority.choices, coerce=int)

    class Meta:
        model = Workload
        fields = ["state", "kind", "pool", "organization", "priority"]


class OperatorWorkloadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet):
    """Every organization's workloads with why they wait or stopped, newest first; filters
    `state`, `kind`, `pool` (name), `organization` (slug), `priority`."""

    serializer_class = OperatorWorkloadSerializer
    filterset_class = OperatorWorkloadFilter
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self) -> QuerySet[Workload]:
        return selectors.every_workload()

    @extend_schema(tags=TAGS, operation_id="platform_inference_workloads_list")
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS, operation_id="platform_inference_workloads_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


# --- The platform's calendar ----------------------------------------------------------------------


class PlatformCalendarView(OperatorView, APIView):
    @extend_schema(
        tags=TAGS,
        parameters=[CalendarQuerySerializer],
        responses=CalendarSerializer,
        operation_id="platform_inference_calendar",
    )
    def get(self, request: Request) -> Response:
        """Peak slots reserved by every organization per step, and what the platform's capacity
        (active pools at their maximum) leaves, per GPU class. Times in UTC."""
        return _calendar_response(
            calendar_query(request), selectors.offered_classes(), capacity.class_capacity
        )


router = SimpleRouter(trailing_slash=True)
router.register("pools", PoolViewSet, basename="inference-pool")
router.register("workers", WorkerViewSet, basename="inference-worker")
router.register("workloads", OperatorWorkloadViewSet, basename="inference-operator-workload")
