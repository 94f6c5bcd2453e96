"""HTTP endpoints of the worker protocol, under /api/v1/inference/worker/.

Workers authenticate with their own token (`Authorization: Bearer ibw_…`), never with a member's
session or an organization's API key. Bodies are validated strictly: a malformed report is
refused whole with the field that is wrong, and nothing of it is applied.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import authentication, exceptions, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import protocol, services, sessions
from inference.contracts import PROTOCOL_VERSION, Heartbeat, Registration, Report, Usage
from inference.models import Worker


class WorkerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Worker] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip().startswith("ibw_"):
            raise exceptions.AuthenticationFailed(
                _("A worker token is required."), code="invalid_worker_token"
            )
        worker = protocol.worker_for_token(token.strip())
        if worker is None:
            raise exceptions.AuthenticationFailed(
                _("This worker token is not valid or its worker was retired."),
                code="invalid_worker_token",
            )
        return (WorkerPrincipal(worker), worker)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="ironbowl-worker"'


class WorkerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = WorkerTokenAuthentication
    name = "workerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A worker's own token."}


class WorkerPrincipal:
    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def __str__(self) -> str:
        return f"worker:{self.worker.backend_id}"


class IsWorker(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Worker)


class WorkerView(APIView):
    authentication_classes = [WorkerTokenAuthentication]
    permission_classes = [IsWorker]
    throttle_classes: list[Any] = []

    @property
    def worker(self) -> Worker:
        assert isinstance(self.request.auth, Worker)  # noqa: S101 - IsWorker guarantees it
        return self.request.auth

    def valid(self, serializer_class: type[serializers.Serializer[Any]]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class RegistrationSerializer(serializers.Serializer[Any]):
    protocol = serializers.IntegerField(min_value=1)
    slots = serializers.IntegerField(min_value=1, max_value=64)
    pipelines = serializers.ListField(child=serializers.CharField(max_length=40), max_length=20)
    version = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    metrics_url = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )

    def validate_protocol(self, value: int) -> int:
        if value != PROTOCOL_VERSION:
            raise serializers.ValidationError(
                f"This control plane speaks worker protocol {PROTOCOL_VERSION}."
            )
        return value


class StreamStatsSerializer(serializers.Serializer[Any]):
    fps = serializers.FloatField(
        min_value=0, max_value=240, help_text="Frames per second the stream's output received."
    )


class HeartbeatSerializer(serializers.Serializer[Any]):
    slots_used = serializers.IntegerField(min_value=0, max_value=64)
    running = serializers.ListField(child=serializers.UUIDField(), max_length=64)
    scripts = serializers.DictField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        default=dict,
        help_text="Live workloads: workload id → the script version the worker holds.",
    )
    stats = serializers.DictField(
        child=StreamStatsSerializer(),
        required=False,
        default=dict,
        help_text="Live workloads: workload id → what the worker measures of the stream.",
    )

    def validate_scripts(self, value: dict[str, int]) -> dict[str, int]:
        if len(value) > 64:
            raise serializers.ValidationError("At most 64 workloads.")
        return value

    def validate_stats(self, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if len(value) > 64:
            raise serializers.ValidationError("At most 64 workloads.")
        for key in value:
            try:
                uuid.UUID(key)
            except ValueError:
                raise serializers.ValidationError(f"{key[:40]!r} is not a workload id.") from None
        return value


class AssignmentsRequestSerializer(serializers.Serializer[Any]):
    free_slots = serializers.IntegerField(min_value=0, max_value=64)


class UsageSerializer(serializers.Serializer[Any]):
    stream_minutes = serializers.FloatField(min_value=0, required=False, default=0.0)
    gpu_seconds = serializers.FloatField(min_value=0, required=False, default=0.0)
    rendered_seconds = serializers.FloatField(min_value=0, required=False, default=0.0)
    interactions = serializers.IntegerField(min_value=0, required=False, default=0)


class ReportSerializer(serializers.Serializer[Any]):
    report_id = serializers.RegexField(r"^[A-Za-z0-9_-]{8,64}$")
    workload_id = serializers.UUIDField()
    attempt = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(choices=["progress", "usage", "result"])
    progress = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    message = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    usage = UsageSerializer(required=False)
    status = serializers.ChoiceField(choices=["succeeded", "failed"], required=False)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    output = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["kind"] == "result" and "status" not in attrs:
            raise serializers.ValidationError({"status": "A result report needs a status."})
        if attrs["kind"] == "usage" and "usage" not in attrs:
            raise serializers.ValidationError({"usage": "A usage report needs its quantities."})
        return attrs


class ReportBatchSerializer(serializers.Serializer[Any]):
    reports = serializers.ListField(child=ReportSerializer(), max_length=500, allow_empty=False)


def _report(data: dict[str, Any]) -> Report:
    return Report(
        report_id=data["report_id"],
        workload_id=str(data["workload_id"]),
        attempt=data["attempt"],
        kind=data["kind"],
        progress=data.get("progress"),
        message=data.get("message", ""),
        usage=Usage.from_json(data["usage"]) if "usage" in data else None,
        status=data.get("status"),
        reason=data.get("reason", ""),
        output=dict(data.get("output") or {}),
    )


_OK = inline_serializer("WorkerAck", {"ok": serializers.BooleanField()})


class RegisterView(WorkerView):
    @extend_schema(
        request=RegistrationSerializer,
        responses=inline_serializer(
            "WorkerRegistered",
            {
                "worker_id": serializers.CharField(),
                "heartbeat_interval_s": serializers.FloatField(),
            },
        ),
        tags=["worker protocol"],
    )
    def post(self, request: Request) -> Response:
        data = self.valid(RegistrationSerializer)
        registration = Registration(
            protocol=data["protocol"],
            slots=data["slots"],
            pipelines=tuple(data["pipelines"]),
            version=data["version"],
            metrics_url=data["metrics_url"],
        )
        protocol.register(self.worker, registration)
        return Response(
            {
                "worker_id": self.worker.backend_id,
                "heartbeat_interval_s": settings.INFERENCE_HEARTBEAT_INTERVAL_S,
            }
        )


class HeartbeatView(WorkerView):
    @extend_schema(
        request=HeartbeatSerializer,
        responses=inline_serializer(
            "WorkerHeartbeatReply",
            {
                "drain": serializers.BooleanField(),
                "cancel": serializers.ListField(child=serializers.UUIDField()),
                "heartbeat_interval_s": serializers.FloatField(),
                "scripts": serializers.DictField(
                    child=inline_serializer(
                        "WorkerScriptUpdate",
                        {
                            "version": serializers.IntegerField(),
                            "segments": serializers.ListField(child=serializers.DictField()),
                        },
                    ),
                    help_text="Newer scripts of running live workloads, by workload id.",
                ),
            },
        ),
        tags=["worker protocol"],
    )
    def post(self, request: Request) -> Response:
        data = self.valid(HeartbeatSerializer)
        beat = Heartbeat(
            slots_used=data["slots_used"],
            running=tuple(map(str, data["running"])),
            scripts=data["scripts"],
        )
        drain, cancel = protocol.heartbeat(self.worker, beat)
        services.record_stream_stats(self.worker, data["stats"])
        return Response(
            {
                "drain": drain,
                "cancel": cancel,
                "heartbeat_interval_s": settings.INFERENCE_HEARTBEAT_INTERVAL_S,
                "scripts": protocol.script_updates(self.worker, beat),
            }
        )


class AssignmentsView(WorkerView):
    @extend_schema(
        request=AssignmentsRequestSerializer,
        responses=inline_serializer(
            "WorkerAssignments",
            {"assignments": serializers.ListField(child=serializers.DictField())},
        ),
        tags=["worker protocol"],
    )
    def post(self, request: Request) -> Response:
        self.valid(AssignmentsRequestSerializer)
        return Response(
            {
                "assignments": [
                    {
                        "workload_id": str(workload.id),
                        "attempt": workload.attempts,
                        "kind": workload.kind,
                        "pipeline": workload.pool.pipeline,
                        "slots": workload.slots,
                        "spec": spec,
                    }
                    for workload, spec in protocol.assignments_with_specs(self.worker)
                ]
            }
        )


class ReportsView(WorkerView):
    @extend_schema(
        request=ReportBatchSerializer,
        responses=inline_serializer(
            "WorkerReportOutcomes",
            {"outcomes": serializers.DictField(child=serializers.CharField())},
        ),
        tags=["worker protocol"],
    )
    def post(self, request: Request) -> Response:
        data = self.valid(ReportBatchSerializer)
        reports = [_report(item) for item in data["reports"]]
        return Response({"outcomes": protocol.apply_reports(self.worker, reports)})


class ReleaseView(WorkerView):
    @extend_schema(request=None, responses=_OK, tags=["worker protocol"])
    def post(self, request: Request) -> Response:
        protocol.release(self.worker)
        return Response({"ok": True})


class KnowledgeRequestSerializer(serializers.Serializer[Any]):
    attempt = serializers.IntegerField(min_value=1)


class SessionKnowledgeView(WorkerView):
    @extend_schema(
        request=KnowledgeRequestSerializer,
        responses=inline_serializer(
            "WorkerSessionKnowledge",
            {
                "version": serializers.CharField(),
                "entries": serializers.ListField(child=serializers.DictField()),
            },
        ),
        tags=["worker protocol"],
    )
    def post(self, request: Request, workload: str) -> Response:
        """The knowledge a session workload answers from; only for the worker it is placed on,
        as its current attempt."""
        data = self.valid(KnowledgeRequestSerializer)
        found = sessions.session_of_worker(self.worker.pk, workload, data["attempt"])
        if found is None:
            raise exceptions.NotFound(
                _("No session workload %(id)s runs on this worker as attempt %(attempt)s.")
                % {"id": workload, "attempt": data["attempt"]}
            )
        return Response(sessions.knowledge_of(found))


urlpatterns = [
    path("register/", RegisterView.as_view(), name="worker-register"),
    path("heartbeat/", HeartbeatView.as_view(), name="worker-heartbeat"),
    path("assignments/", AssignmentsView.as_view(), name="worker-assignments"),
    path("reports/", ReportsView.as_view(), name="worker-reports"),
    path("release/", ReleaseView.as_view(), name="worker-release"),
    path(
        "sessions/<uuid:workload>/knowledge/",
        SessionKnowledgeView.as_view(),
        name="worker-session-knowledge",
    ),
]
