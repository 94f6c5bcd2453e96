"""Events counted, hourly and daily rollups of them, and usage records ready for billing.

Raw events are many and short-lived: on PostgreSQL `analytics_event` is partitioned by retention
class and then by day (migration 0002, `partitions.py`), so retention drops whole partitions.
Events name their employment, station and shift by id without foreign keys: attribution is
resolved once at ingestion, and a constraint check per row would halve the ingestion rate.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.scoping import AppendOnlyManager, AppendOnlyRow, TenantOwned


class EventType(models.TextChoices):
    VISIT = "visit", _("Visit")
    VIEW = "view", _("Concurrent viewers (sample)")
    INTERACTION = "interaction", _("Interaction")
    COMMENT = "comment", _("Comment")
    HANDOFF = "handoff", _("Hand-off to a person")
    SESSION_START = "session_start", _("Session started")
    SESSION_END = "session_end", _("Session ended")
    CUSTOM = "custom", _("Custom")


class Event(TenantOwned):
    """One thing that happened, as the client sent it (validated), attributed at ingestion.

    The client's event id deduplicates: (organization, client_event_id, occurred_at) is unique —
    a retried event is the same event at the same instant. On PostgreSQL the unique index also
    holds `retention_days`, the partition key.
    """

    id = models.BigAutoField(primary_key=True)
    client_event_id = models.CharField(max_length=64)
    type = models.CharField(max_length=16, choices=EventType.choices)
    name = models.CharField(max_length=64, blank=True)  # a custom event's name
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    employment_id = models.UUIDField(null=True, blank=True)
    station_id = models.UUIDField(null=True, blank=True)
    shift_id = models.UUIDField(null=True, blank=True)
    # A keyed hash of the client's viewer id (the id itself is never stored): unique viewers.
    viewer_hash = models.BigIntegerField(null=True, blank=True)
    session = models.CharField(max_length=64, blank=True)
    # view: concurrent viewers sampled; session_end: seconds; custom: any number.
    value = models.FloatField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    retention_days = models.PositiveSmallIntegerField()

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [models.Index(fields=["organization", "occurred_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "client_event_id", "occurred_at", "retention_days"],
                name="event_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.client_event_id}"


class RollupGrain(models.TextChoices):
    HOUR = "hour", _("Hour")
    DAY = "day", _("Day")


class Rollup(TenantOwned):
    """Counts for one organization × employment × station × hour (UTC) or day (the
    organization's local day, `bucket` being its midnight). Rewritten whole from raw events
    each time its hour is marked, so re-running changes nothing and late events are counted."""

    id = models.BigAutoField(primary_key=True)
    grain = models.CharField(max_length=4, choices=RollupGrain.choices)
    bucket = models.DateTimeField()
    employment_id = models.UUIDField(null=True, blank=True)
    station_id = models.UUIDField(null=True, blank=True)
    visits = models.PositiveBigIntegerField(default=0)
    unique_viewers = models.PositiveBigIntegerField(default=0)  # estimated from the sketch
    viewer_sketch = models.BinaryField(default=b"", blank=True)  # HyperLogLog registers
    view_samples = models.PositiveBigIntegerField(default=0)
    view_sum = models.FloatField(default=0.0)
    peak_viewers = models.PositiveBigIntegerField(default=0)
    interactions = models.PositiveBigIntegerField(default=0)
    comments = models.PositiveBigIntegerField(default=0)
    handoffs = models.PositiveBigIntegerField(default=0)
    sessions = models.PositiveBigIntegerField(default=0)
    custom_events = models.PositiveBigIntegerField(default=0)
    broadcast_seconds = models.FloatField(default=0.0)
    gpu_seconds = models.FloatField(default=0.0)
    # An hour's row: the shortest retention of the raw events it counted (null: it counted none).
    # Once the hour is older than that, some of them may be gone, and a recomputation keeps the
    # columns counted from events as they are (`rollups.read_hours`).
    event_retention_days = models.PositiveSmallIntegerField(null=True, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("rollup")
        verbose_name_plural = _("rollups")
        indexes = [
            models.Index(fields=["organization", "grain", "bucket"]),
            models.Index(fields=["organization", "grain", "employment_id", "bucket"]),
        ]


class RollupZone(TenantOwned):
    """The time zone an organization's day rollups are cut in. When the organization's own zone
    is another (it was changed; or blank: not known, rows from before zones were recorded), the
    rollup run rebuilds every day row from the hour rows in the organization's zone before it
    writes any more days (`rollups.move_days`)."""

    id = models.BigAutoField(primary_key=True)
    time_zone = models.CharField(max_length=64, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="one_rollup_zone_per_org")
        ]

    def __str__(self) -> str:
        return self.time_zone


class RollupMark(TenantOwned):
    """An hour of an organization whose rollup is stale: appended by ingestion (and by shifts
    and usage), taken and deleted by the rollup run that recomputes it."""

    id = models.BigAutoField(primary_key=True)
    hour = models.DateTimeField()
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["marked_at"]),
            models.Index(fields=["organization", "hour"]),
        ]


class UsageType(models.TextChoices):
    STREAM_MINUTES = "stream_minutes", _("Stream minutes")
    GPU_SECONDS = "gpu_seconds", _("GPU seconds")
    RENDERED_SECONDS = "rendered_seconds", _("Rendered seconds")
    INTERACTIONS = "interactions", _("Interactions")
    # Appended by billing, one per employment per local day it was active (quantity = seats).
    SEAT_DAYS = "seat_days", _("Seat-days")


class UsageManager(AppendOnlyManager["UsageRecord"]):
    """The ledger's rows, read through their organization; never updated or deleted."""


class UsageRecord(AppendOnlyRow):
    """A billable quantity, appended once per source (`source_id`, unique per organization):
    the ledger billing rates. Never updated; a correction is a record that `reverses` another
    with the opposite quantity."""

    id = models.BigAutoField(primary_key=True)
    # PROTECT: an organization with billable history is deactivated, never deleted (its ledger
    # could not be deleted anyway: the rows are append-only).
    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.PROTECT, related_name="+", editable=False
    )
    source_id = models.CharField(max_length=100)
    usage_type = models.CharField(max_length=20, choices=UsageType.choices)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    gpu_class = models.CharField(max_length=8, blank=True)
    # A price fixed when the usage happened (a seat-day carries the hire's rate per seat-month);
    # empty: the plan in force prices it.
    unit_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    employment_id = models.UUIDField(null=True, blank=True)
    station_id = models.UUIDField(null=True, blank=True)
    workload_id = models.UUIDField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects: ClassVar[UsageManager] = UsageManager()

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        indexes = [
            models.Index(fields=["organization", "occurred_at"]),
            models.Index(fields=["organization", "employment_id", "occurred_at"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["organization", "source_id"], name="usage_once")
        ]

    def __str__(self) -> str:
        return f"{self.usage_type} {self.quantity} ({self.source_id})"


class ConvertedUsageReport(models.Model):
    """Inference usage reports already turned into usage records (so a sweep converts each
    exactly once, including reports that carried nothing billable)."""

    report_id = models.BigIntegerField(unique=True)
    converted_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return str(self.report_id)


class OutcomeValues(TenantOwned):
    """What an organization says its outcomes are worth, for ROI: the money a visit, an answered
    interaction, a viewer-hour or a hand-off avoided stands for, in its currency."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    per_visit = models.DecimalField(_("per visit"), max_digits=12, decimal_places=4, default=0)
    per_interaction = models.DecimalField(
        _("per interaction"), max_digits=12, decimal_places=4, default=0
    )
    per_viewer_hour = models.DecimalField(
        _("per viewer-hour"), max_digits=12, decimal_places=4, default=0
    )
    per_handoff_avoided = models.DecimalField(
        _("per question answered without a person"), max_digits=12, decimal_places=4, default=0
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("outcome values")
        verbose_name_plural = _("outcome values")
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="one_outcome_values_per_org")
        ]
