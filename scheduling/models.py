"""Where and when digital employees work: stations, schedules (a recurrence rule in the
organization's time zone), holiday calendars, and the shifts materialised from schedules."""

from __future__ import annotations

import uuid

from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from tenants.scoping import TenantOwned


class StationKind(models.TextChoices):
    LIVE_ROOM = "live_room", _("Live room (RTMP push)")
    KIOSK = "kiosk", _("Lobby kiosk")
    WEB_WIDGET = "web_widget", _("Web widget")
    HOTLINE = "hotline", _("Hotline")


class Station(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=StationKind.choices)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Live rooms: where the stream is pushed. The stream key is a credential: encrypted at rest
    # (scheduling.secrets), never shown again after it is saved (only its last characters).
    platform = models.CharField(_("streaming platform"), max_length=20, blank=True)
    push_url = models.CharField(_("RTMP push URL"), max_length=500, blank=True)
    stream_key_encrypted = models.TextField(blank=True, editable=False)
    stream_key_hint = models.CharField(max_length=8, blank=True, editable=False)
    # Web widgets: a public key the widget's page embeds to open conversations.
    widget_key = models.CharField(max_length=64, blank=True, editable=False)
    ai_label_required = models.BooleanField(_("AI-generated label required"), default=True)
    max_on_air = models.PositiveSmallIntegerField(
        _("employees on air at once"), default=1, validators=[MinValueValidator(1)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("station")
        verbose_name_plural = _("stations")
        permissions = [("operate_station", _("Operate this station"))]
        indexes = [models.Index(fields=["organization", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="station_name_per_org"),
            models.UniqueConstraint(
                fields=["widget_key"], condition=~models.Q(widget_key=""), name="widget_key_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name


# django-guardian with direct foreign keys: real joins, no generic object_pk casts.
class StationUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Station, on_delete=models.CASCADE)


class StationGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Station, on_delete=models.CASCADE)


class HolidayCalendar(TenantOwned):
    """Days off and make-up working days (e.g. China's public holidays), importable per year."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("holiday calendar")
        verbose_name_plural = _("holiday calendars")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="holiday_calendar_name_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.name


class DayKind(models.TextChoices):
    HOLIDAY = "holiday", _("Holiday (no work)")
    WORKDAY = "workday", _("Make-up working day")


class Holiday(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    calendar = models.ForeignKey(HolidayCalendar, on_delete=models.CASCADE, related_name="days")
    date = models.DateField(_("date"))
    kind = models.CharField(_("kind"), max_length=8, choices=DayKind.choices)
    name = models.CharField(_("name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        constraints = [
            models.UniqueConstraint(fields=["calendar", "date"], name="holiday_once_per_date")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.kind}"


class Schedule(TenantOwned):
    """An employment at a station: when its shifts start (an RFC 5545 RRULE from `valid_from`,
    at `start_time` in the organization's time zone) and how long they last; or around the
    clock (`always_on`). Holidays of its calendar are skipped; make-up working days added."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    employment = models.ForeignKey("avatars.Employment", on_delete=models.PROTECT, related_name="+")
    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="schedules")
    rrule = models.CharField(_("recurrence rule (RFC 5545)"), max_length=500, blank=True)
    start_time = models.TimeField(_("start time (local)"), null=True, blank=True)
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"), null=True, blank=True)
    always_on = models.BooleanField(_("around the clock"), default=False)
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    exdates = models.JSONField(_("exception dates"), default=list, blank=True)
    holiday_calendar = models.ForeignKey(
        HolidayCalendar, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What a live room's avatar says on air: live segments `{"text", "language"}` in order;
    # empty: a greeting in the employment's language.
    segments = models.JSONField(_("script"), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Bumped on every change: shifts remember the version they were made from.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        indexes = [models.Index(fields=["organization", "is_active"])]

    def __str__(self) -> str:
        return f"{self.employment_id} at {self.station_id}"


class ShiftState(models.TextChoices):
    PLANNED = "planned", _("Planned")
    WARMING = "warming", _("Warming up")
    ON_DUTY = "on_duty", _("On duty")
    TAKEN_OVER = "taken_over", _("Taken over by a person")
    ENDED = "ended", _("Ended")
    MISSED = "missed", _("Missed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


SHIFT_FINAL_STATES = (
    ShiftState.ENDED,
    ShiftState.MISSED,
    ShiftState.FAILED,
    ShiftState.CANCELLED,
)


class Shift(TenantOwned):
    """One occurrence of a schedule, in UTC. Made ahead by materialisation (unique per schedule
    and start, so making them twice makes nothing new); it reserves GPU capacity when made and
    requests its `live` workload a lead time before it starts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="shifts")
    employment = models.ForeignKey("avatars.Employment", on_delete=models.PROTECT, related_name="+")
    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="shifts")
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    schedule_version = models.PositiveIntegerField(default=1)
    state = models.CharField(
        _("state"), max_length=10, choices=ShiftState.choices, default=ShiftState.PLANNED
    )
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    at_risk = models.BooleanField(_("at risk"), default=False)
    risk_reason = models.TextField(_("why at risk"), blank=True)
    reservation = models.ForeignKey(
        "inference.Reservation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    workload = models.ForeignKey(
        "inference.Workload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    on_duty_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("shift")
        verbose_name_plural = _("shifts")
        indexes = [
            models.Index(fields=["state", "starts_at"]),
            models.Index(fields=["organization", "starts_at"]),
            models.Index(fields=["station", "starts_at"]),
            models.Index(fields=["employment", "starts_at"]),
            # Analytics' rollup scans shifts changed since its last run, every minute.
            models.Index(fields=["updated_at"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "starts_at"], name="shift_once"),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="shift_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.station_id} {self.starts_at:%Y-%m-%d %H:%M}"
