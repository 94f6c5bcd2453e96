"""Stations: where digital employees work. Schedules and shifts arrive with the scheduling issue."""

from __future__ import annotations

import uuid

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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("station")
        verbose_name_plural = _("stations")
        permissions = [("operate_station", _("Operate this station"))]
        indexes = [models.Index(fields=["organization", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="station_name_per_org")
        ]

    def __str__(self) -> str:
        return self.name


# django-guardian with direct foreign keys: real joins, no generic object_pk casts.
class StationUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Station, on_delete=models.CASCADE)


class StationGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Station, on_delete=models.CASCADE)
