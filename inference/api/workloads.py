"""Endpoints: an organization's GPU workloads — submit, follow, cancel, read their history.

A workload says why it waits (`reason_code`, `reason`) in every state, so a client never has to
guess whether something is stuck. Submitting is idempotent per `Idempotency-Key` header.
"""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from inference import selectors, services, spec_secrets
from inference.models import (
    GpuClass,
    Interaction,
    Priority,
    Workload,
    WorkloadKind,
    WorkloadState,
)
from inference.pipelines.script import DEFAULT_LANGUAGE, MAX_SEGMENTS
from inference.pipelines.types import SUPPORTED_LANGUAGES
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.pagination import KeysetCursorPagination
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer
from tenants import audit
from tenants.roles import Permission as P

SPEC_MAX_BYTES = services.SPEC_MAX_BYTES
IDEMPOTENCY_KEY_MAX_LENGTH = 100
CANCEL_REASON_MAX_LENGTH = 500

# --- Payloads -------------------------------------------------------------------------------------


class SubmitSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=WorkloadKind.choices)
    spec = serializers.DictField(
        default=dict, help_text="What the pipeline runs (a JSON object, at most 64 KiB)."
    )
    slots = serializers.IntegerField(min_value=1, max_value=64, default=1)
    pool = serializers.SlugField(
        max_length=40,
        required=False,
        help_text="A pool by name; left out: the first active pool of the kind's pipeline.",
    )
    gpu_class = serializers.ChoiceField(
        choices=GpuClass.choices,
        required=False,
        help_text="Without `pool`: run on this GPU class. Ignored when `pool` is named.",
    )
    public_service = serializers.BooleanField(
        default=False,
        help_text="A 24/7 public service (live only): the highest priority, may preempt others.",
    )

    def validate_spec(self, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > SPEC_MAX_BYTES:
            raise serializers.ValidationError(
                _("The spec is %(size)s bytes; at most %(limit)s are allowed.")
                % {"size": size, "limit": SPEC_MAX_BYTES}
            )
        if spec_secrets.names_credential(value):
            # Only the platform names credentials (a live room's key, resolved for its worker).
            raise serializers.ValidationError(
                _(
                    "A spec may not name a credential (an object with the key %(key)s); the "
                    "platform adds a live room's stream key to the streams it schedules."
                )
                % {"key": spec_secrets.KEY},
                code="secret_reference",
            )
        if "portrait_path" in value:
            # A worker reads no file a spec names: it shares no disk with the control plane, and
            # on one that did, the path could name any file there.
            raise serializers.ValidationError(
                _(
                    "A spec may not name a portrait by a path on a disk (portrait_path); name "
                    "it as the input inputs.portrait: a file of this organization's media, "
                    'with its sha256 and bytes, or use "portrait": "reference".'
                ),
                code="portrait_path_refused",
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("public_service") and attrs["kind"] != WorkloadKind.LIVE:
            raise serializers.ValidationError(
                {"public_service": _("Only a live workload can be a 24/7 public service.")}
            )
        return attrs


class CancelSerializer(StrictSerializer):
    reason = serializers.CharField(
        max_length=CANCEL_REASON_MAX_LENGTH,
        required=False,
        allow_blank=True,
        help_text="Why; kept in the workload's history and the audit log.",
    )


class TextField(serializers.CharField):
    """Text that must be sent as a string: a number is not silently turned into words to say."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ScriptSegmentSerializer(StrictSerializer):
    """One segment of a live script: said in one go, followed by the idle loop."""

    text = TextField(help_text="What the avatar says in this segment.")
    language = serializers.ChoiceField(
        choices=[(code, code) for code in SUPPORTED_LANGUAGES],
        default=DEFAULT_LANGUAGE,
        help_text="zh (Mandarin), yue (Cantonese) or en.",
    )


class ScriptUpdateSerializer(StrictSerializer):
    """A live workload's new script, replacing the whole current one."""

    segments = ScriptSegmentSerializer(  # type: ignore[call-arg]  # stubs lack max_length
        many=True,
        allow_empty=False,
        max_length=MAX_SEGMENTS,
        help_text="The whole new script, spoken in order and looped with idle between segments.",
    )
    base_version = serializers.IntegerField(
        min_value=0,
        required=False,
        help_text=(
            "The `spec.script_version` this update was made from; if the script changed since, "
            "409 `script_changed` instead of overwriting someone else's update."
        ),
    )


# --- Representations ------------------------------------------------------------------------------


class PoolColumnsSerializer(StrictModelSerializer):
    """The pool of a workload or worker, by name, with its GPU class."""

    pool = serializers.CharField(source="pool.name", read_only=True)
    gpu_class = serializers.ChoiceField(
        source="pool.gpu_class", choices=GpuClass.choices, read_only=True
    )


class WorkloadSerializer(PoolColumnsSerializer):
    priority_label = serializers.CharField(source="get_priority_display", read_only=True)

    class Meta:
        model = Workload
        fields = [
            "id",
            "kind",
            "state",
            "reason_code",
            "reason",
            "priority",
            "priority_label",
            "pool",
            "gpu_class",
            "slots",
            "spec",
            "attempts",
            "failures",
            "max_attempts",
            "progress",
            "result",
            "idempotency_key",
            "reservation",
            "created_at",
            "admitted_at",
            "placed_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class WorkloadEventSerializer(serializers.Serializer[Any]):
    state = serializers.ChoiceField(choices=WorkloadState.choices)
    reason_code = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()


# --- Filters --------------------------------------------------------------------------------------


class InteractionPagination(KeysetCursorPagination):
    ordering = ("asked_at",)


class InteractionSerializer(StrictModelSerializer):
    class Meta:
        model = Interaction
        fields = [
            "id",
            "question_id",
            "question",
            "language",
            "outcome",
            "answer",
            "entry_id",
            "score",
            "matched_by",
            "rephrased",
            "reason",
            "latency_ms",
            "asked_at",
        ]
        read_only_fields = fields


class WorkloadFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped base
    state = django_filters.ChoiceFilter(choices=WorkloadState.choices)
    kind = django_filters.ChoiceFilter(choices=WorkloadKind.choices)
    priority = django_filters.TypedChoiceFilter(choices=Priority.choices, coerce=int)

    class Meta:
        model = Workload
        fields = ["state", "kind", "priority"]


# --- Views ----------------------------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Up to 100 characters. Sending the same key again returns the first workload (200) "
        "instead of queueing another one (201)."
    ),
)


class WorkloadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationViewSet):
    """GPU workloads: queued → admitted → placed → running → succeeded, failed or cancelled.

    A preempted workload goes back to the queue with the reason; it is never dropped."""

    model = Workload
    serializer_class = WorkloadSerializer
    filterset_class = WorkloadFilter
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "head", "options"]
    permission_map = {
        "list": P.WORKLOADS_VIEW,
        "retrieve": P.WORKLOADS_VIEW,
        "events": P.WORKLOADS_VIEW,
        "interactions": P.WORKLOADS_VIEW,
        "create": P.WORKLOADS_MANAGE,
        "cancel": P.WORKLOADS_MANAGE,
        "script": P.WORKLOADS_MANAGE,
    }

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.select_related("pool")

    def _idempotency_key(self, request: Request) -> str:
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise serializers.ValidationError(
                {
                    "Idempotency-Key": [
                        _("At most %(limit)s characters.") % {"limit": IDEMPOTENCY_KEY_MAX_LENGTH}
                    ]
                }
            )
        return key

    @extend_schema(
        tags=["inference"],
        request=SubmitSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: WorkloadSerializer,
            200: OpenApiResponse(WorkloadSerializer, description="The key was used before."),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Queue a workload. It waits for the orchestrator's admission, within the plan's quota;
        `reason` says why it waits."""
        key = self._idempotency_key(request)
        payload = SubmitSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            with transaction.atomic():
                workload, created = services.submit(
                    self.organization,
                    kind=data["kind"],
                    spec=data["spec"],
                    slots=data["slots"],
                    pool_name=data.get("pool"),
                    gpu_class=data.get("gpu_class"),
                    public_service=data["public_service"],
                    idempotency_key=key,
                )
                if created:
                    audit.record(
                        self.actor,
                        self.organization,
                        "workload.submit",
                        workload,
                        after=audit.snapshot(workload),
                    )
        except services.InferenceError as error:
            field = error.field or "non_field_errors"
            raise serializers.ValidationError({field: [str(error)]}) from error
        fresh = self.get_queryset().get(pk=workload.pk)
        return Response(
            WorkloadSerializer(fresh).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(tags=["inference"])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The organization's workloads, newest first; filter by `state`, `kind`, `priority`."""
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=["inference"])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One workload with its state, reason, attempts, progress and result."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(tags=["inference"], request=CancelSerializer, responses=WorkloadSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Cancel; a running workload's worker stops it at its next heartbeat. Cancelling a
        finished workload changes nothing (and answers 200 with it as it is)."""
        workload = self.get_object()
        payload = CancelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        reason = payload.validated_data.get("reason") or _("Cancelled by %(actor)s.") % {
            "actor": self.actor.label
        }
        before = audit.snapshot(workload)
        with transaction.atomic():
            workload = services.cancel(workload, reason)
            audit.record_update(
                self.actor, self.organization, "workload.cancel", workload, before=before
            )
        fresh = self.get_queryset().get(pk=workload.pk)
        return Response(WorkloadSerializer(fresh).data)

    @extend_schema(
        tags=["inference"],
        request=ScriptUpdateSerializer,
        responses={
            200: WorkloadSerializer,
            409: OpenApiResponse(
                description="`not_live`, `workload_ended` or `script_changed` (see `detail`)."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def script(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Replace a live workload's script while it is queued or on air. The script's version
        (`spec.script_version`) goes up by one; the worker gets the new script at its next
        heartbeat and plays it from the next segment on. Sending the script the workload already
        has changes nothing (200, same version)."""
        workload = self.get_object()
        payload = ScriptUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        before = audit.snapshot(workload)
        with transaction.atomic():
            workload, changed = services.update_script(
                workload,
                [dict(segment) for segment in data["segments"]],
                base_version=data.get("base_version"),
            )
            if changed:
                audit.record_update(
                    self.actor, self.organization, "workload.script", workload, before=before
                )
        fresh = self.get_queryset().get(pk=workload.pk)
        return Response(WorkloadSerializer(fresh).data)

    @extend_schema(tags=["inference"], responses=InteractionSerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        filter_backends=[],
        pagination_class=InteractionPagination,
    )
    def interactions(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A conversation's exchanges, oldest first: each question, what was answered (or that
        it was handed to a person), and how long the visitor waited for the first audio."""
        workload = self.get_object()
        page = self.paginate_queryset(selectors.interactions_of(workload))
        return self.get_paginated_response(InteractionSerializer(page, many=True).data)

    @extend_schema(tags=["inference"], responses=WorkloadEventSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def events(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The workload's history, oldest first: every state change with its reason."""
        workload = self.get_object()
        return Response(WorkloadEventSerializer(selectors.events_of(workload), many=True).data)


def register(router: SimpleRouter) -> None:
    router.register("workloads", WorkloadViewSet, basename="workload")
