"""The demo's past month of audience, so that `make run` has KPIs and charts to look at.

The hospital's anchor has been on air Monday to Friday 19:00–20:00 in its live room: visits,
a viewer count every minute, comments and questions. The bureau's desk has answered questions
around the clock, most in office hours, a few handed to a clerk. The events go through the same
ingestion as a streaming platform's (deterministic ids: seeding again stores nothing twice), then
the rollup runs once so the figures are there at once. The numbers come from a generator seeded
by the day: the same day always gets the same events.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import zoneinfo
from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from avatars.models import Employment, EmploymentStatus
from ironbowl.analytics import rollups
from ironbowl.analytics.ingestion import ingest
from scheduling.models import Station, StationKind
from tenants.models import Organization

HOSPITAL = "qinghe-hospital"
BUREAU = "lanxi-market-bureau"
DAYS = 28  # inside the trial plan's 30 days of raw events
BATCH = 1000


def seed_analytics(now: dt.datetime | None = None) -> list[str]:
    now = now or timezone.now()
    created = []
    for organization in Organization.objects.filter(slug__in=(HOSPITAL, BUREAU)):
        hire = Employment.objects.for_organization(organization).get(status=EmploymentStatus.ACTIVE)
        kind = StationKind.LIVE_ROOM if organization.slug == HOSPITAL else StationKind.WEB_WIDGET
        station = Station.objects.for_organization(organization).get(kind=kind)
        make = _broadcasts if organization.slug == HOSPITAL else _desk
        events = list(make(organization, str(hire.pk), str(station.pk), now))
        stored = sum(
            ingest(organization, events[start : start + BATCH], now=now).accepted
            for start in range(0, len(events), BATCH)
        )
        if stored:
            created.append(f"{organization.slug}: {stored} analytics events over {DAYS} days")
    rollups.run(limit=10_000, now=now)
    return created


def _days(organization: Organization, now: dt.datetime) -> Iterator[dt.date]:
    today = now.astimezone(zoneinfo.ZoneInfo(organization.time_zone)).date()
    for back in range(DAYS, 0, -1):
        yield today - dt.timedelta(days=back)


def _random(organization: Organization, day: dt.date) -> random.Random:
    """The same figures for the same day, whichever day the demo is seeded on (an event's id and
    time must not change, or seeding again would count it twice)."""
    return random.Random(f"{organization.slug}-{day.isoformat()}")  # noqa: S311 - demo figures


def _at(organization: Organization, day: dt.date, seconds: float) -> dt.datetime:
    midnight = dt.datetime.combine(day, dt.time(), zoneinfo.ZoneInfo(organization.time_zone))
    return midnight + dt.timedelta(seconds=seconds)


def _event(
    kind: str, key: str, at: dt.datetime, hire: str, station: str, **fields: Any
) -> dict[str, Any]:
    return {
        "id": f"demo-{key}",
        "type": kind,
        "occurred_at": at.isoformat(),
        "employment": hire,
        "station": station,
        **fields,
    }


def _broadcasts(
    organization: Organization, hire: str, station: str, now: dt.datetime
) -> Iterator[dict[str, Any]]:
    """An hour's health broadcast each weekday evening; the audience grows over the month."""
    for day in _days(organization, now):
        if day.weekday() >= 5:
            continue
        rng = _random(organization, day)
        audience = 400 + 20 * day.day + rng.randint(-60, 60)
        start = 19 * 3600
        for minute in range(60):  # viewers right now, sampled each minute: up, then easing off
            shape = math.sin(math.pi * (minute + 5) / 70)
            viewers = max(0, int(audience * shape + rng.randint(-20, 20)))
            at = _at(organization, day, start + minute * 60)
            yield _event("view", f"{day}-view-{minute}", at, hire, station, value=viewers)
        for n in range(int(audience * 1.6)):
            at = _at(organization, day, start + rng.uniform(0, 3600))
            viewer = f"viewer-{rng.randint(1, audience * 3)}"
            yield _event("visit", f"{day}-visit-{n}", at, hire, station, viewer=viewer)
        for n in range(audience // 8):
            at = _at(organization, day, start + rng.uniform(60, 3600))
            yield _event("comment", f"{day}-comment-{n}", at, hire, station)
        for n in range(audience // 20):
            at = _at(organization, day, start + rng.uniform(60, 3600))
            yield _event("interaction", f"{day}-question-{n}", at, hire, station)


def _desk(
    organization: Organization, hire: str, station: str, now: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Questions day and night, mostly in office hours; about one in twelve goes to a clerk."""
    for day in _days(organization, now):
        rng = _random(organization, day)
        busy = day.weekday() < 5
        for n in range(rng.randint(180, 260) if busy else rng.randint(40, 80)):
            office = rng.random() < (0.85 if busy else 0.5)
            seconds = rng.uniform(9 * 3600, 17 * 3600) if office else rng.uniform(0, 86400)
            at = _at(organization, day, seconds)
            session = f"{day}-s{n}"
            visitor = f"citizen-{rng.randint(1, 2500)}"
            fields = {"session": session, "viewer": visitor}
            yield _event("session_start", f"{session}-start", at, hire, station, **fields)
            yield _event("interaction", f"{session}-q", at, hire, station, **fields)
            if rng.random() < 1 / 12:
                yield _event("handoff", f"{session}-handoff", at, hire, station, **fields)
            end = at + dt.timedelta(seconds=rng.uniform(40, 400))
            if end < now:
                length = round((end - at).total_seconds())
                yield _event(
                    "session_end",
                    f"{session}-end",
                    end,
                    hire,
                    station,
                    session=session,
                    value=length,
                )
