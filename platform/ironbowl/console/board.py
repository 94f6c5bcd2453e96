"""The on-air board's live state and its publishing.

The board lists an organization's shifts under way (warming up, on duty, taken over by a person)
with what is measured of each: frames/s its worker reports with its heartbeats
(`inference.services.stream_stats`), the latest concurrent-viewers sample a streaming platform
sent for the shift (analytics `view` events), and the mean latency to first audio of the
conversations at its station in the last minutes (`inference.Interaction.latency_ms`).

Consoles follow it over a websocket (`consumers.BoardConsumer`) joined to the organization's
group, and nothing else: `publish_board` sends a small update to one organization's group. A
shift that moved sends `{"type": "shift", ...}` (the console re-fetches its rows, rendered in
the reader's language); new numbers send `{"type": "stats", ...}` (applied in place). Updates
are hints that may be dropped under load: a console re-fetches the whole board when its socket
comes back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Avg, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from inference import services as inference
from inference.models import Interaction
from ironbowl.analytics.models import Event, EventType
from scheduling.models import Shift, ShiftState
from tenants.models import Organization

logger = structlog.get_logger(__name__)

# Shifts the board shows: under way, by the avatar or by a person.
BOARD_STATES = (ShiftState.WARMING, ShiftState.ON_DUTY, ShiftState.TAKEN_OVER)
# A viewers sample older than this says nothing about now.
VIEWERS_FRESH = dt.timedelta(minutes=5)
# Conversations whose latency the board averages.
LATENCY_WINDOW = dt.timedelta(minutes=15)
# The channel layer's message type; the consumer's handler is `board_update`.
MESSAGE_TYPE = "board.update"


def board_group(organization_id: object) -> str:
    """The one group an organization's boards listen on."""
    return f"console.board.{organization_id}"


@dataclasses.dataclass(frozen=True)
class Stats:
    """What is measured of one shift now; None where nothing fresh was reported."""

    fps: float | None = None
    viewers: int | None = None
    latency_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fps": self.fps, "viewers": self.viewers, "latency_ms": self.latency_ms}


@dataclasses.dataclass
class Row:
    shift: Shift
    stats: Stats
    may_operate: bool = False


def board_shifts(organization: Organization) -> QuerySet[Shift]:
    """The organization's shifts under way, by station."""
    return (
        Shift.objects.for_organization(organization)
        .filter(state__in=BOARD_STATES)
        .select_related("station", "employment__avatar", "workload")
        .order_by("station__name", "starts_at", "id")
    )


def rows(organization: Organization, now: dt.datetime | None = None) -> list[Row]:
    shifts = list(board_shifts(organization))
    stats = stats_of(organization, shifts, now)
    return [Row(shift, stats[shift.pk]) for shift in shifts]


def stats_of(
    organization: Organization, shifts: Sequence[Shift], now: dt.datetime | None = None
) -> dict[uuid.UUID, Stats]:
    """Each shift's numbers, in three queries (and one cache read) whatever their count."""
    now = now or timezone.now()
    fps = _frames_per_second(organization, shifts)
    viewers = _viewers(organization, [s.pk for s in shifts], now)
    latency = _latency(organization, shifts, now)
    return {
        shift.pk: Stats(
            fps=fps.get(shift.pk),
            viewers=viewers.get(shift.pk),
            latency_ms=latency.get((shift.station_id, shift.employment_id)),
        )
        for shift in shifts
    }


def _frames_per_second(
    organization: Organization, shifts: Sequence[Shift]
) -> dict[uuid.UUID, float]:
    # A taken-over shift's stream was stopped: whatever its worker said last is not on air.
    streaming = {
        str(s.workload_id): s.pk
        for s in shifts
        if s.workload_id is not None and s.state != ShiftState.TAKEN_OVER
    }
    reported = inference.stream_stats(organization.pk, streaming)
    return {streaming[key]: float(value["fps"]) for key, value in reported.items()}


def _viewers(
    organization: Organization, shift_ids: Sequence[uuid.UUID], now: dt.datetime
) -> dict[uuid.UUID, int]:
    if not shift_ids:
        return {}
    samples = (
        Event.objects.for_organization(organization)
        .filter(
            type=EventType.VIEW,
            shift_id__in=shift_ids,
            occurred_at__gt=now - VIEWERS_FRESH,
            occurred_at__lte=now,
        )
        .order_by("shift_id", "-occurred_at", "-id")
        .values_list("shift_id", "value")
    )
    latest: dict[uuid.UUID, int] = {}
    for shift_id, value in samples:
        if shift_id is not None and shift_id not in latest and value is not None:
            latest[shift_id] = round(value)
    return latest


def _latency(
    organization: Organization, shifts: Sequence[Shift], now: dt.datetime
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """Mean latency to first audio of the last minutes' conversations, per (station,
    employment) of the shifts: a session's spec names both."""
    if not shifts:
        return {}
    stations = sorted({str(s.station_id) for s in shifts})
    averages = (
        Interaction.objects.for_organization(organization)
        .filter(
            asked_at__gt=now - LATENCY_WINDOW,
            asked_at__lte=now,
            workload__spec__station__in=stations,
        )
        .annotate(
            # KT("workload__spec__station") would read the JSON from the foreign key's column.
            spec_station=KeyTextTransform("station", "workload__spec"),
            spec_employment=KeyTextTransform("employment", "workload__spec"),
        )
        .values("spec_station", "spec_employment")
        .annotate(mean=Avg("latency_ms"))
        .order_by()
    )
    found: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for row in averages:
        try:
            key = (uuid.UUID(row["spec_station"]), uuid.UUID(row["spec_employment"]))
        except (TypeError, ValueError):
            continue
        found[key] = round(row["mean"])
    return found


# --- Publishing ----------------------------------------------------------------------------------


def _message(payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "payload": payload}


def publish_board(organization_id: object, payload: dict[str, Any]) -> None:
    """Send `payload` to every board of this organization (and no other's)."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(board_group(organization_id), _message(payload))


async def apublish_board(organization_id: object, payload: dict[str, Any]) -> None:
    """`publish_board` from async code (an event loop cannot call `async_to_sync`)."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(board_group(organization_id), _message(payload))


def shift_update(shift_id: object, state: str) -> dict[str, Any]:
    return {"type": "shift", "shift": str(shift_id), "state": state}


def stats_update(shift_id: object, stats: Stats) -> dict[str, Any]:
    return {"type": "stats", "shift": str(shift_id), **stats.to_json()}


def publish_shift_moved(organization_id: object, shift_id: object, state: str) -> None:
    publish_board(organization_id, shift_update(shift_id, state))


def publish_stats(organization: Organization, shifts: Iterable[Shift]) -> int:
    """Push the current numbers of these shifts (those still under way); returns how many."""
    under_way = [s for s in shifts if s.state in BOARD_STATES]
    if not under_way:
        return 0
    stats = stats_of(organization, under_way)
    for shift in under_way:
        publish_board(organization.pk, stats_update(shift.pk, stats[shift.pk]))
    return len(under_way)


def publish_stats_of_workloads(organization_id: uuid.UUID, workload_ids: Sequence[object]) -> int:
    """A worker measured these streams: push the numbers of the shifts they carry."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None or not workload_ids:
        return 0
    shifts = board_shifts(organization).filter(workload_id__in=list(workload_ids))
    return publish_stats(organization, shifts)


def publish_stats_of_interaction(organization_id: uuid.UUID, interaction_id: uuid.UUID) -> int:
    """A conversation was recorded: push the numbers of the shift at its station (its
    session's spec names the station and the employment)."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return 0
    spec = (
        Interaction.objects.for_organization(organization)
        .filter(pk=interaction_id)
        .values_list("workload__spec", flat=True)
        .first()
    )
    if not isinstance(spec, dict):
        return 0
    try:
        station = uuid.UUID(str(spec.get("station")))
        employment = uuid.UUID(str(spec.get("employment")))
    except ValueError:
        return 0
    shifts = board_shifts(organization).filter(station_id=station, employment_id=employment)
    return publish_stats(organization, shifts)
