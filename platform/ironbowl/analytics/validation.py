"""What a client may send as an event, checked strictly for its type.

Each event is a JSON object: `id` (the client's event id), `type`, `occurred_at` (ISO 8601
with an offset), optionally `station`, `employment`, `shift` (ids), and per type:

| type          | required        | optional                      |
|---------------|-----------------|-------------------------------|
| visit         |                 | viewer, session, properties   |
| view          | value (viewers) | properties                    |
| interaction   |                 | viewer, session, properties   |
| comment       |                 | viewer, session, properties   |
| handoff       |                 | viewer, session, properties   |
| session_start | session         | viewer, properties            |
| session_end   | session, value (seconds) | viewer, properties   |
| custom        | name            | value, viewer, session, properties |

Anything else is refused by field, never silently dropped. The checks are plain Python (no
serializer per event): a batch of thousands is validated in milliseconds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import re
import uuid
from typing import Any

from django.utils.translation import gettext as _

from ironbowl.analytics import retention
from ironbowl.analytics.marks import hour_of
from ironbowl.analytics.models import EventType

COMMON = frozenset({"id", "type", "occurred_at", "station", "employment", "shift"})
ALLOWED: dict[str, frozenset[str]] = {
    EventType.VISIT: frozenset({"viewer", "session", "properties"}),
    EventType.VIEW: frozenset({"value", "properties"}),
    EventType.INTERACTION: frozenset({"viewer", "session", "properties"}),
    EventType.COMMENT: frozenset({"viewer", "session", "properties"}),
    EventType.HANDOFF: frozenset({"viewer", "session", "properties"}),
    EventType.SESSION_START: frozenset({"session", "viewer", "properties"}),
    EventType.SESSION_END: frozenset({"session", "value", "viewer", "properties"}),
    EventType.CUSTOM: frozenset({"name", "value", "viewer", "session", "properties"}),
}
PERMITTED = {kind: COMMON | fields for kind, fields in ALLOWED.items()}
REQUIRED: dict[str, tuple[str, ...]] = {
    EventType.VIEW: ("value",),
    EventType.SESSION_START: ("session",),
    EventType.SESSION_END: ("session", "value"),
    EventType.CUSTOM: ("name",),
}
MAX_VIEWERS = 100_000_000
MAX_SESSION_SECONDS = 7 * 86400
MAX_PROPERTIES_BYTES = 2048
MAX_PROPERTIES_KEYS = 20
FUTURE_TOLERANCE = dt.timedelta(minutes=10)  # clients' clocks run a little ahead
# Rollups run every minute; an hour this long before the retention edge is rolled up in time.
ROLLUP_MARGIN = dt.timedelta(hours=1)
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Invalid(Exception):
    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclasses.dataclass(slots=True)
class CleanEvent:
    """An event that passed validation (ids parsed, not yet checked against the organization)."""

    index: int
    client_event_id: str
    type: str
    occurred_at: dt.datetime
    station_id: uuid.UUID | None = None
    employment_id: uuid.UUID | None = None
    shift_id: uuid.UUID | None = None
    name: str = ""
    viewer: str = ""
    session: str = ""
    value: float | None = None
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)


def clean(index: int, raw: Any, now: dt.datetime, retention_days: int) -> CleanEvent:
    """One event checked for its type and its time; raises Invalid with the first problem."""
    if not isinstance(raw, dict):
        raise Invalid("not_an_object", _("Each event must be a JSON object."))
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in ALLOWED:  # a list or an object is no type
        raise Invalid(
            "unknown_type",
            _("Unknown event type. Use one of: %(types)s.") % {"types": ", ".join(ALLOWED)},
            "type",
        )
    if not raw.keys() <= PERMITTED[kind]:
        unexpected = sorted(set(raw) - PERMITTED[kind])
        raise Invalid(
            "unexpected_field",
            _("A %(type)s event does not take the field “%(field)s”.")
            % {"type": kind, "field": unexpected[0]},
            unexpected[0],
        )
    for field in REQUIRED.get(kind, ()):
        if raw.get(field) in (None, ""):
            raise Invalid(
                "required",
                _("A %(type)s event needs “%(field)s”.") % {"type": kind, "field": field},
                field,
            )
    event = CleanEvent(
        index=index,
        client_event_id=_client_id(raw.get("id")),
        type=kind,
        occurred_at=_occurred_at(raw.get("occurred_at"), now, retention_days),
        station_id=_id(raw, "station"),
        employment_id=_id(raw, "employment"),
        shift_id=_id(raw, "shift"),
    )
    if "name" in raw:
        event.name = _text(raw, "name", 64)
        if not _NAME.match(event.name):
            raise Invalid(
                "invalid",
                _("Name a custom event with lower-case letters, digits, “_”, “.” or “-”."),
                "name",
            )
    event.viewer = _text(raw, "viewer", 128)
    event.session = _text(raw, "session", 64)
    if raw.get("value") is not None:
        event.value = _value(kind, raw["value"])
    if raw.get("properties") is not None:
        event.properties = _properties(raw["properties"])
    return event


def _client_id(value: Any) -> str:
    if not isinstance(value, str) or not _CLIENT_ID.match(value):
        raise Invalid(
            "invalid_id",
            _("Give each event an “id” of 1–64 printable characters without spaces."),
            "id",
        )
    return value


def _occurred_at(value: Any, now: dt.datetime, retention_days: int) -> dt.datetime:
    if not isinstance(value, str):
        raise Invalid("required", _("Say when the event happened in “occurred_at”."), "occurred_at")
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(
            "invalid_time",
            _("“occurred_at” is not an ISO 8601 time, e.g. 2026-11-26T19:00:00+08:00."),
            "occurred_at",
        ) from None
    if instant.tzinfo is None:
        raise Invalid(
            "naive_time",
            _("“occurred_at” needs a UTC offset (e.g. +08:00 or Z)."),
            "occurred_at",
        )
    earliest, latest = _window(now, retention_days)
    if instant > latest:
        raise Invalid("in_future", _("“occurred_at” is in the future."), "occurred_at")
    if instant < earliest:
        raise Invalid(
            "too_old",
            _("This event is older than your plan keeps events (%(days)s days).")
            % {"days": retention_days},
            "occurred_at",
        )
    return instant.astimezone(dt.UTC)


@functools.lru_cache(maxsize=8)
def _window(now: dt.datetime, retention_days: int) -> tuple[dt.datetime, dt.datetime]:
    """The instants an event may have happened between (the same for a whole batch).

    The earliest is the first whole UTC hour that starts at least ROLLUP_MARGIN inside the
    plan's retention: an hour counted by a rollup run after its first events expired keeps its
    counts as they were (`rollups`), so a late event must arrive while its whole hour is kept.
    """
    cut = retention.cutoff(retention_days, now) + ROLLUP_MARGIN
    earliest = hour_of(cut)
    if earliest < cut:
        earliest += dt.timedelta(hours=1)
    return earliest, now + FUTURE_TOLERANCE


# A batch names the same few stations and employments thousands of times: parse each id once.
_parse_id = functools.lru_cache(maxsize=4096)(uuid.UUID)


def _id(raw: dict[str, Any], field: str) -> uuid.UUID | None:
    value = raw.get(field)
    if value is None:
        return None
    try:
        return _parse_id(str(value))
    except ValueError:
        raise Invalid(
            "invalid_id", _("“%(field)s” is not an id.") % {"field": field}, field
        ) from None


def _text(raw: dict[str, Any], field: str, limit: int) -> str:
    value = raw.get(field)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(
            "invalid",
            _("“%(field)s” must be text of at most %(limit)s characters.")
            % {"field": field, "limit": limit},
            field,
        )
    return value


def _value(kind: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("invalid", _("“value” must be a number."), "value")
    if kind == EventType.VIEW and not (0 <= value <= MAX_VIEWERS and float(value).is_integer()):
        raise Invalid(
            "invalid",
            _("A view's “value” is the number of viewers: a whole number from 0."),
            "value",
        )
    if kind == EventType.SESSION_END and not 0 <= value <= MAX_SESSION_SECONDS:
        raise Invalid(
            "invalid",
            _("A session_end's “value” is the session's length in seconds (0 to 7 days)."),
            "value",
        )
    return float(value)


def _properties(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("invalid", _("“properties” must be an object."), "properties")
    scalars = all(
        isinstance(item, str | int | float | bool) or item is None for item in value.values()
    )
    too_big = (
        len(value) > MAX_PROPERTIES_KEYS
        or len(json.dumps(value, ensure_ascii=False).encode()) > MAX_PROPERTIES_BYTES
    )
    if not scalars or too_big:
        raise Invalid(
            "invalid",
            _(
                "“properties” holds at most %(keys)s keys of text, numbers or true/false, "
                "%(bytes)s bytes in all."
            )
            % {"keys": MAX_PROPERTIES_KEYS, "bytes": MAX_PROPERTIES_BYTES},
            "properties",
        )
    return value
