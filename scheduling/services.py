"""Actions on stations: create, change, delete, the web widget's key, and per-station operator
grants. A live room's stream key is encrypted here (scheduling.secrets) and never leaves again:
audit entries record only whether one is set and its last characters."""

from __future__ import annotations

import dataclasses
import re
import secrets as random
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, models, transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from guardian.shortcuts import assign_perm, remove_perm

from scheduling import secrets, selectors
from scheduling.models import Station, StationKind, StationUserObjectPermission
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Membership, Organization
from tenants.roles import Role


class StreamingPlatform(models.TextChoices):
    DOUYIN = "douyin", gettext_lazy("Douyin")
    KUAISHOU = "kuaishou", gettext_lazy("Kuaishou")
    WECHAT_CHANNELS = "wechat_channels", gettext_lazy("WeChat Channels")
    BILIBILI = "bilibili", gettext_lazy("Bilibili")
    TAOBAO = "taobao", gettext_lazy("Taobao Live")
    OTHER = "other", gettext_lazy("Other")


STATION_FIELDS = (
    "name",
    "kind",
    "description",
    "is_active",
    "platform",
    "push_url",
    "ai_label_required",
    "max_on_air",
)
LIVE_ROOM_FIELDS = ("platform", "push_url")
STREAM_KEY_MAX_LENGTH = 500
MAX_ON_AIR = 1000
WIDGET_KEY_PREFIX = "wk_"
_NO_SPACES = re.compile(r"^\S+$")


def _name_taken() -> ConflictError:
    return ConflictError(
        "station_name_taken", _("Another station already has this name."), field="name"
    )


def station_snapshot(station: Station) -> dict[str, Any]:
    """The audit log's picture of a station: the stream key only as set or not, and its hint."""
    data = audit.snapshot(station, exclude=("stream_key_encrypted",))
    data["stream_key_set"] = bool(station.stream_key_encrypted)
    data["stream_key_hint"] = station.stream_key_hint
    data["widget_key"] = station.widget_key  # public by design: the widget's page embeds it
    return data


def new_widget_key() -> str:
    return WIDGET_KEY_PREFIX + random.token_urlsafe(24)


def _check_push_url(value: str) -> str:
    def refuse(message: str) -> DomainError:
        return DomainError("invalid_push_url", message, field="push_url")

    if not _NO_SPACES.match(value) or len(value) > 500:
        raise refuse(_("A push URL has no spaces and at most 500 characters."))
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise refuse(_("This is not a URL; it looks like rtmp://push.example.com/live.")) from None
    if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
        raise refuse(
            _("A push URL starts with rtmp:// or rtmps:// and names a server, e.g. %(example)s.")
            % {"example": "rtmp://push.example.com/live"}
        )
    if parts.username is not None or parts.password is not None:
        raise refuse(_("Put credentials in the stream key, not in the push URL."))
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise refuse(
            _(
                "The push URL is the server's address only; the stream name and its parameters "
                "go in the stream key."
            )
        )
    if port == 0:
        raise refuse(_("The push URL's port must be between 1 and 65535."))
    return value.rstrip("/")


def _check_stream_key(value: str) -> str:
    if not _NO_SPACES.match(value):
        raise DomainError(
            "invalid_stream_key",
            _("A stream key has no spaces or line breaks; paste it again."),
            field="stream_key",
        )
    if len(value) > STREAM_KEY_MAX_LENGTH:
        raise DomainError(
            "invalid_stream_key",
            _("A stream key has at most %(n)s characters.") % {"n": STREAM_KEY_MAX_LENGTH},
            field="stream_key",
        )
    return value


def _apply(station: Station, changes: dict[str, Any], stream_key: str | None) -> None:
    """Check the station as it would be after `changes` and, only if it is valid, change it in
    memory. A live room's fields on another kind are refused when sent, and forgotten when the
    kind changes; a web widget gets its key when it becomes one, and loses it when it stops."""
    for field in changes:
        if field not in STATION_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=field)
    values = {field: changes.get(field, getattr(station, field)) for field in STATION_FIELDS}
    if not str(values["name"]).strip():
        raise DomainError("required", _("A station needs a name."), field="name")
    if values["kind"] not in StationKind.values:
        raise DomainError("invalid_kind", _("Unknown kind of station."), field="kind")
    if not isinstance(values["max_on_air"], int) or not 1 <= values["max_on_air"] <= MAX_ON_AIR:
        raise DomainError(
            "invalid_max_on_air",
            _("A station holds from 1 to %(n)s employees on air at once.") % {"n": MAX_ON_AIR},
            field="max_on_air",
        )
    live_room = values["kind"] == StationKind.LIVE_ROOM
    if not live_room:
        sent = [field for field in LIVE_ROOM_FIELDS if changes.get(field)]
        if stream_key:
            sent.append("stream_key")
        if sent:
            raise DomainError(
                "live_room_only",
                _("Only live rooms have a streaming platform, a push URL and a stream key."),
                field=sent[0],
            )
        values.update(platform="", push_url="")
        stream_key = "" if station.stream_key_encrypted else None
    if values["platform"] and values["platform"] not in StreamingPlatform.values:
        raise DomainError("invalid_platform", _("Unknown streaming platform."), field="platform")
    if values["push_url"] and "push_url" in changes:
        values["push_url"] = _check_push_url(values["push_url"])
    if stream_key:
        stream_key = _check_stream_key(stream_key)

    for field, value in values.items():
        setattr(station, field, value)
    if stream_key is not None:
        station.stream_key_encrypted = secrets.encrypt(stream_key) if stream_key else ""
        station.stream_key_hint = secrets.hint(stream_key)
    if values["kind"] == StationKind.WEB_WIDGET:
        station.widget_key = station.widget_key or new_widget_key()
    else:
        station.widget_key = ""


@transaction.atomic
def create_station(
    actor: Actor, organization: Organization, stream_key: str | None = None, **fields: Any
) -> Station:
    station = Station(organization=organization)
    _apply(station, fields, stream_key)
    try:
        with transaction.atomic():
            station.save(force_insert=True)
    except IntegrityError:
        raise _name_taken() from None
    audit.record(actor, organization, "station.create", station, after=station_snapshot(station))
    return station


@transaction.atomic
def update_station(
    actor: Actor, station: Station, stream_key: str | None = None, **changes: Any
) -> Station:
    """Change a station; `stream_key` None keeps the saved key, "" forgets it."""
    before = station_snapshot(station)
    _apply(station, changes, stream_key)
    try:
        with transaction.atomic():
            station.save()
    except IntegrityError:
        raise _name_taken() from None
    after = station_snapshot(station)
    if stream_key:
        # A new key with the same last characters still changed: say so, not the key.
        after["stream_key_replaced"] = True
    if after != before:
        audit.record(
            actor, station.organization, "station.update", station, before=before, after=after
        )
    return station


@transaction.atomic
def rotate_widget_key(actor: Actor, station: Station) -> Station:
    """Give a web widget a new public key; the old one stops opening conversations at once."""
    if station.kind != StationKind.WEB_WIDGET:
        raise ConflictError("not_a_widget", _("Only web widget stations have a widget key."))
    before = {"widget_key": station.widget_key}
    station.widget_key = new_widget_key()
    station.save(update_fields=["widget_key", "updated_at"])
    audit.record(
        actor,
        station.organization,
        "station.rotate_widget_key",
        station,
        before=before,
        after={"widget_key": station.widget_key},
    )
    return station


@transaction.atomic
def delete_station(actor: Actor, station: Station) -> None:
    audit.record(
        actor, station.organization, "station.delete", station, before=station_snapshot(station)
    )
    try:
        with transaction.atomic():
            station.delete()
    except ProtectedError:
        raise ConflictError(
            "station_rostered",
            _(
                "This station has schedules or shifts, which keep its history; remove its "
                "schedules first, or switch the station off instead."
            ),
        ) from None


@dataclasses.dataclass
class StreamKeyRotation:
    rotated: int = 0
    current: int = 0
    unreadable: list[Station] = dataclasses.field(default_factory=list)


def rotate_stream_keys() -> StreamKeyRotation:
    """Re-encrypt every saved stream key, in every organization, with the key that encrypts now
    (platform maintenance after STREAM_KEY_ENCRYPTION_KEY changed). Safe to run again: keys
    already under the current key are left alone; keys no configured key opens are reported."""
    outcome = StreamKeyRotation()
    # A platform-wide job, not an organization's request: the one place that reads all stations.
    stations = Station.objects.unscoped_dangerously()
    pending = stations.exclude(stream_key_encrypted="").order_by("pk").values_list("pk", flat=True)
    for pk in list(pending):
        with transaction.atomic():
            station = stations.select_for_update().select_related("organization").get(pk=pk)
            if secrets.is_current(station.stream_key_encrypted):
                outcome.current += 1
                continue
            try:
                token = secrets.reencrypt(station.stream_key_encrypted)
            except secrets.StreamKeyUnreadable:
                outcome.unreadable.append(station)
                continue
            # Not a change anyone made to the station: its updated_at stays, nothing is audited.
            stations.filter(pk=pk).update(stream_key_encrypted=token)
            outcome.rotated += 1
    return outcome


@transaction.atomic
def grant_station_operator(actor: Actor, station: Station, membership: Membership) -> Membership:
    if membership.organization_id != station.organization_id:
        raise DomainError("not_found", _("No such member."), field="member")
    if membership.role != Role.OPERATOR:
        raise DomainError(
            "not_an_operator",
            _(
                "Only members with the operator role get per-station grants; "
                "owners and administrators already operate every station."
            ),
            field="member",
        )
    if membership.user_id in set(selectors.operator_user_ids(station)):
        raise ConflictError("already_granted", _("This member already operates this station."))
    assign_perm(f"scheduling.{selectors.OPERATE}", membership.user, station)
    audit.record(
        actor,
        station.organization,
        "station.grant_operator",
        station,
        after={"member": str(membership.pk)},
    )
    return membership


@transaction.atomic
def revoke_station_operator(actor: Actor, station: Station, membership: Membership) -> None:
    if membership.user_id not in set(selectors.operator_user_ids(station)):
        raise DomainError("not_found", _("This member does not operate this station."))
    remove_perm(f"scheduling.{selectors.OPERATE}", membership.user, station)
    audit.record(
        actor,
        station.organization,
        "station.revoke_operator",
        station,
        before={"member": str(membership.pk)},
    )


def drop_grants_of_member(membership: Membership) -> int:
    """Remove a departing member's station grants in that organization (not elsewhere)."""
    stations = Station.objects.for_organization(membership.organization).values("id")
    deleted, _by_model = StationUserObjectPermission.objects.filter(
        user_id=membership.user_id, content_object_id__in=stations
    ).delete()
    return deleted
