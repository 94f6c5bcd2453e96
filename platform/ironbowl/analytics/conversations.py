"""Conversations counted as events: each recorded exchange (`inference.Interaction`) is an
`interaction` event, and a hand-off to a person also a `handoff` event.

They go through ingestion like any client's events, with ids derived from the interaction
("interaction:<id>", "handoff:<id>"), so counting one twice stores it once. Two paths: the
receiver of `inference.signals.interaction_recorded`, right after the exchange commits, and the
sweep `count_recent`, which looks back over the last hour for exchanges whose signal was lost.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import structlog
from django.utils import timezone

from inference.models import Interaction, InteractionOutcome
from ironbowl.analytics.ingestion import IngestResult, ingest
from ironbowl.analytics.models import Event, EventType
from tenants.models import Organization

logger = structlog.get_logger(__name__)

# Errors that mean the spec's station or employment is not (or no longer) the organization's:
# the exchange still happened, so it is counted unattributed.
ATTRIBUTION_ERRORS = frozenset({"unknown_station", "unknown_employment", "attribution_mismatch"})
# The sweep looks back this far, leaving the last SETTLE to the receiver.
LOOKBACK = dt.timedelta(hours=1)
SETTLE = dt.timedelta(minutes=2)
BATCH = 1000


def event_ids(interaction: Interaction) -> list[str]:
    """The client event ids an interaction is counted under."""
    ids = [f"interaction:{interaction.pk}"]
    if interaction.outcome == InteractionOutcome.HANDED_OFF:
        ids.append(f"handoff:{interaction.pk}")
    return ids


def events_of(interaction: Interaction) -> list[dict[str, Any]]:
    """The interaction as events, in the shape a client sends them."""
    spec = interaction.workload.spec if isinstance(interaction.workload.spec, dict) else {}
    common: dict[str, Any] = {
        "occurred_at": interaction.asked_at.isoformat(),
        "session": str(interaction.workload_id),
        "properties": {
            "outcome": interaction.outcome,
            "language": interaction.language,
            "latency_ms": interaction.latency_ms,
        },
    }
    for key in ("station", "employment"):
        named = _uuid(spec.get(key))
        if named is not None:
            common[key] = str(named)
    types = [EventType.INTERACTION, EventType.HANDOFF]
    return [
        {"id": client_id, "type": str(kind), **common}
        for client_id, kind in zip(event_ids(interaction), types, strict=False)
    ]


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


@dataclasses.dataclass
class Counted:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0

    def add(self, result: IngestResult | Counted) -> None:
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.refused += result.rejected if isinstance(result, IngestResult) else result.refused

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def count(organization: Organization, interactions: Iterable[Interaction]) -> Counted:
    """Ingests the interactions of one organization as events. One whose workload names a
    station or employment the organization does not have is counted without them."""
    raw = [event for interaction in interactions for event in events_of(interaction)]
    counted = Counted()
    if not raw:
        return counted
    result = ingest(organization, raw)
    retry = [raw[error.index] for error in result.errors if error.code in ATTRIBUTION_ERRORS]
    result.errors = [error for error in result.errors if error.code not in ATTRIBUTION_ERRORS]
    counted.add(result)
    if retry:
        unattributed = [
            {key: value for key, value in event.items() if key not in ("station", "employment")}
            for event in retry
        ]
        again = ingest(organization, unattributed)
        counted.add(again)
        result.errors.extend(again.errors)
    for error in result.errors:
        logger.error(
            "interaction_event_refused", code=error.code, field=error.field, message=error.message
        )
    return counted


def count_interaction(organization_id: uuid.UUID, interaction_id: uuid.UUID) -> Counted:
    """Counts one recorded interaction (the receiver's path)."""
    interaction = (
        Interaction.objects.unscoped_dangerously()
        .filter(organization_id=organization_id, pk=interaction_id)
        .select_related("workload", "organization")
        .first()
    )
    if interaction is None:
        return Counted()
    return count(interaction.organization, [interaction])


def count_recent(now: dt.datetime | None = None) -> Counted:
    """The safety net: counts the interactions of the last LOOKBACK (but not the last SETTLE,
    which the receiver has in hand) that have no event yet, in every organization."""
    now = now or timezone.now()
    start, end = now - LOOKBACK, now - SETTLE
    organizations = list(Organization.objects.values_list("pk", flat=True))
    # One index range per organization ((organization, asked_at)); there is no global one.
    recent = (
        Interaction.objects.unscoped_dangerously()
        .filter(organization_id__in=organizations, asked_at__gte=start, asked_at__lt=end)
        .select_related("workload", "organization")
    )
    total = Counted()
    pending: dict[uuid.UUID, list[Interaction]] = defaultdict(list)
    for number, interaction in enumerate(recent.iterator(chunk_size=BATCH), start=1):
        pending[interaction.organization_id].append(interaction)
        if number % BATCH == 0:
            _count_missing(pending, start, end, total)
            pending.clear()
    _count_missing(pending, start, end, total)
    if total.accepted or total.refused:
        logger.info("interactions_counted", **total.as_dict())
    return total


def _count_missing(
    pending: dict[uuid.UUID, list[Interaction]],
    start: dt.datetime,
    end: dt.datetime,
    total: Counted,
) -> None:
    for interactions in pending.values():
        organization = interactions[0].organization
        wanted = {client_id for i in interactions for client_id in event_ids(i)}
        present = set(
            Event.objects.for_organization(organization)
            .filter(occurred_at__gte=start, occurred_at__lt=end, client_event_id__in=wanted)
            .values_list("client_event_id", flat=True)
        )
        missing = [i for i in interactions if not set(event_ids(i)) <= present]
        if missing:
            total.add(count(organization, missing))
