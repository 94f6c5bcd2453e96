"""GPU capacity: pools of workers, the workers themselves, workloads and reservations.

Pools are platform-wide definitions. Workers belong to one organization (a worker's GPU is a
tenant boundary: time-slicing is not), so each organization's workers run in its own namespace
under its own GPU quota. Workloads and reservations are tenant-owned.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.scoping import TenantOwned

DNS_LABEL = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$",
    _("Use lower-case letters, digits and hyphens (at most 40), starting and ending alphanumeric."),
)


class GpuClass(models.TextChoices):
    H200 = "h200", "NVIDIA H200"
    H100 = "h100", "NVIDIA H100"
    A100 = "a100", "NVIDIA A100"
    L4 = "l4", "NVIDIA L4"
    CPU = "cpu", _("CPU only")


class Pipeline(models.TextChoices):
    DIAGNOSTIC = "diagnostic", _("Diagnostic (occupies slots for a given time)")
    LIVE = "live", _("Live stream")
    CONVERSE = "converse", _("Conversation")
    RENDER = "render", _("Video render")
    BUILD = "build", _("Avatar build")


class WorkerPool(models.Model):
    name = models.SlugField(_("name"), max_length=40, unique=True, validators=[DNS_LABEL])
    pipeline = models.CharField(_("pipeline"), max_length=16, choices=Pipeline.choices)
    model = models.CharField(_("model"), max_length=200, blank=True)
    gpu_class = models.CharField(_("GPU class"), max_length=8, choices=GpuClass.choices)
    gpus_per_worker = models.PositiveSmallIntegerField(
        _("GPUs per worker"), default=1, validators=[MaxValueValidator(8)]
    )
    slots_per_worker = models.PositiveSmallIntegerField(
        _("slots per worker"), validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    image = models.CharField(_("image"), max_length=300)
    warm_minimum = models.PositiveSmallIntegerField(
        _("warm minimum"),
        default=0,
        help_text=_("Free slots kept ready for each organization active in this pool."),
    )
    maximum = models.PositiveIntegerField(
        _("maximum workers"), validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    batch = models.BooleanField(
        _("batch"), default=False, help_text=_("Workers run as Jobs that exit when idle.")
    )
    node_selector = models.JSONField(_("node selector"), default=dict, blank=True)
    tolerations = models.JSONField(_("tolerations"), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Pools from the pools file (the chart's values) are switched off when the file drops them;
    # pools operators made through the API are left alone.
    from_config = models.BooleanField(_("from configuration"), default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("worker pool")
        verbose_name_plural = _("worker pools")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def capacity_slots(self) -> int:
        return self.maximum * self.slots_per_worker

    def clean(self) -> None:
        if self.gpu_class == GpuClass.CPU and self.gpus_per_worker:
            raise ValidationError({"gpus_per_worker": _("A CPU pool requests no GPUs.")})
        if self.gpu_class != GpuClass.CPU and not self.gpus_per_worker:
            raise ValidationError({"gpus_per_worker": _("A GPU pool needs at least one GPU.")})
        if self.warm_minimum > self.capacity_slots:
            raise ValidationError({"warm_minimum": _("More warm slots than the pool can hold.")})
        if not isinstance(self.node_selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.node_selector.items()
        ):
            raise ValidationError({"node_selector": _("A map of label names to values.")})
        allowed = {"key", "operator", "value", "effect"}
        if not isinstance(self.tolerations, list) or not all(
            isinstance(item, dict)
            and set(item) <= allowed
            and all(isinstance(value, str) for value in item.values())
            for item in self.tolerations
        ):
            raise ValidationError(
                {"tolerations": _("A list of {key, operator, value, effect} objects.")}
            )


class WorkerState(models.TextChoices):
    STARTING = "starting", _("Starting")
    READY = "ready", _("Ready")
    DRAINING = "draining", _("Draining")
    GONE = "gone", _("Gone")


class Worker(TenantOwned):
    """One process of a pool for one organization: a Pod or Job, or a local subprocess."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backend_id = models.CharField(_("backend id"), max_length=63, unique=True)
    pool = models.ForeignKey(WorkerPool, on_delete=models.PROTECT, related_name="workers")
    state = models.CharField(
        _("state"), max_length=10, choices=WorkerState.choices, default=WorkerState.STARTING
    )
    slots = models.PositiveSmallIntegerField(_("slots"))
    slots_used = models.PositiveSmallIntegerField(_("slots used"), default=0)
    token_hash = models.CharField(max_length=64, editable=False)
    reason = models.CharField(_("reason"), max_length=40, blank=True)
    message = models.TextField(_("message"), blank=True)
    last_heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    metrics_url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    draining_since = models.DateTimeField(null=True, blank=True)
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        indexes = [
            models.Index(fields=["state", "pool"]),
            models.Index(fields=["organization", "pool", "state"]),
        ]

    def __str__(self) -> str:
        return self.backend_id


class WorkloadKind(models.TextChoices):
    LIVE = "live", _("Live stream")
    SESSION = "session", _("Conversation session")
    RENDER = "render", _("Video render")
    BUILD = "build", _("Avatar build")


class Priority(models.IntegerChoices):
    """Admission order; a higher priority may preempt a lower one."""

    PUBLIC_SERVICE = 50, _("24/7 public service")
    SCHEDULED_LIVE = 40, _("Scheduled live")
    SESSION = 30, _("Interactive session")
    RENDER = 20, _("Batch render")
    BUILD = 10, _("Avatar build")


DEFAULT_PRIORITY = {
    WorkloadKind.LIVE: Priority.SCHEDULED_LIVE,
    WorkloadKind.SESSION: Priority.SESSION,
    WorkloadKind.RENDER: Priority.RENDER,
    WorkloadKind.BUILD: Priority.BUILD,
}

KIND_PIPELINE = {
    WorkloadKind.LIVE: Pipeline.LIVE,
    WorkloadKind.SESSION: Pipeline.CONVERSE,
    WorkloadKind.RENDER: Pipeline.RENDER,
    WorkloadKind.BUILD: Pipeline.BUILD,
}


class WorkloadState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    ADMITTED = "admitted", _("Admitted")
    PLACED = "placed", _("Placed")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    PREEMPTED = "preempted", _("Preempted")


ACTIVE_STATES = (WorkloadState.ADMITTED, WorkloadState.PLACED, WorkloadState.RUNNING)
ON_WORKER_STATES = (WorkloadState.PLACED, WorkloadState.RUNNING)
FINAL_STATES = (
    WorkloadState.SUCCEEDED,
    WorkloadState.FAILED,
    WorkloadState.CANCELLED,
    WorkloadState.PREEMPTED,
)


class Workload(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("kind"), max_length=8, choices=WorkloadKind.choices)
    pool = models.ForeignKey(WorkerPool, on_delete=models.PROTECT, related_name="workloads")
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices)
    slots = models.PositiveSmallIntegerField(
        _("slots"), default=1, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    spec = models.JSONField(_("spec"), default=dict, blank=True)
    state = models.CharField(
        _("state"), max_length=10, choices=WorkloadState.choices, default=WorkloadState.QUEUED
    )
    # Why it waits, why it was moved, why it failed: a machine word and a sentence for people.
    reason_code = models.CharField(_("reason code"), max_length=40, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    worker = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="workloads"
    )
    # Placements so far; each placement's number fences the reports of that attempt.
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Attempts that ended because the worker was lost; preemption and drains do not count.
    failures = models.PositiveSmallIntegerField(_("failures"), default=0)
    max_attempts = models.PositiveSmallIntegerField(_("max attempts"), default=3)
    progress = models.FloatField(_("progress"), default=0.0)
    result = models.JSONField(_("result"), default=dict, blank=True)
    idempotency_key = models.CharField(max_length=100, blank=True)
    reservation = models.ForeignKey(
        "Reservation", null=True, blank=True, on_delete=models.SET_NULL, related_name="workloads"
    )
    # Submitted by the platform itself (a shift's stream), never through the API: only such a
    # spec's credential references are resolved for its worker (`inference.spec_secrets`).
    platform_submitted = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    admitted_at = models.DateTimeField(null=True, blank=True)
    placed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("workload")
        verbose_name_plural = _("workloads")
        indexes = [
            models.Index(fields=["state", "priority", "created_at"]),
            models.Index(fields=["organization", "state"]),
            models.Index(fields=["worker", "state"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="workload_idempotency_key_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class WorkloadEvent(TenantOwned):
    """Append-only history of a workload: each state change with its reason."""

    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=10, choices=WorkloadState.choices)
    # For placements: which worker got which attempt (a late usage report is checked against it).
    worker = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempt = models.PositiveSmallIntegerField(default=0)
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["workload", "at"])]


class UsageReport(TenantOwned):
    """A worker's usage report, stored once per report id (a retried report counts once)."""

    report_id = models.CharField(max_length=64)
    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="usage_reports")
    worker = models.ForeignKey(Worker, null=True, on_delete=models.SET_NULL, related_name="+")
    gpu_class = models.CharField(max_length=8, choices=GpuClass.choices)
    stream_minutes = models.FloatField(default=0.0)
    gpu_seconds = models.FloatField(default=0.0)
    rendered_seconds = models.FloatField(default=0.0)
    interactions = models.PositiveIntegerField(default=0)
    reported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workload", "report_id"], name="usage_report_once_per_workload"
            )
        ]
        indexes = [models.Index(fields=["organization", "reported_at"])]


class ProcessedReport(models.Model):
    """Report ids already applied (progress and results too), so that a replay changes nothing."""

    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="+")
    report_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workload", "report_id"], name="report_once")
        ]

    def __str__(self) -> str:
        return self.report_id


class Reservation(TenantOwned):
    """Slots of a GPU class held for an organization over a window (a shift, a campaign)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gpu_class = models.CharField(_("GPU class"), max_length=8, choices=GpuClass.choices)
    slots = models.PositiveSmallIntegerField(_("slots"), validators=[MinValueValidator(1)])
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    purpose = models.CharField(_("purpose"), max_length=200, blank=True)
    # Who holds it (e.g. "shift:<uuid>"): reserving twice for the same holder is one reservation.
    holder = models.CharField(_("holder"), max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        indexes = [
            models.Index(fields=["gpu_class", "starts_at", "ends_at"]),
            models.Index(fields=["organization", "gpu_class", "starts_at"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["organization", "holder"], name="reservation_holder"),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="reservation_ends_after_start",
            ),
        ]


class InteractionOutcome(models.TextChoices):
    ANSWERED = "answered", _("Answered")
    HANDED_OFF = "handed_off", _("Handed to a person")


class Interaction(TenantOwned):
    """One exchange of a conversation (`session` workload): a visitor's question, what the
    digital employee answered or that it handed off, and how long the visitor waited for the
    first audio of the answer."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="interactions")
    question_id = models.CharField(max_length=64)  # the visitor's, or the relay's, id
    question = models.TextField(_("question"))
    language = models.CharField(_("language"), max_length=8)
    outcome = models.CharField(_("outcome"), max_length=10, choices=InteractionOutcome.choices)
    answer = models.TextField(_("answer"), blank=True)
    entry_id = models.CharField(_("knowledge entry"), max_length=64, blank=True)
    score = models.FloatField(_("similarity"), default=0.0)
    matched_by = models.CharField(_("matched by"), max_length=10, blank=True)
    rephrased = models.BooleanField(_("rephrased by the language model"), default=False)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency to first audio (ms)"))
    asked_at = models.DateTimeField(_("asked at"))

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["asked_at"]
        indexes = [models.Index(fields=["organization", "asked_at"])]
        constraints = [
            models.UniqueConstraint(fields=["workload", "question_id"], name="interaction_once")
        ]

    def __str__(self) -> str:
        return self.question[:60]
