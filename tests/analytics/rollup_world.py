"""What the rollup tests make and read: shifts as scheduling's tick leaves them, rollup rows as
plain values, raw events counted by local day, and the migration that introduced rollup zones
run on the rows of a test."""

from __future__ import annotations

import datetime as dt
import importlib
import zoneinfo
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ironbowl.analytics.models import Rollup
from scheduling.models import Shift, ShiftState
from tenants.models import Organization
from tests.scheduling import duty_world as world

ZONE_MIGRATION = ("analytics", "0004_rollup_event_retention_and_day_zone")


def on_duty(
    organization: Organization,
    on_duty_at: dt.datetime,
    ended_at: dt.datetime | None = None,
    *,
    updated_at: dt.datetime,
) -> Shift:
    """A shift as the tick leaves it: on duty since `on_duty_at` (ended at `ended_at`), its row
    last updated at `updated_at`."""
    plan = world.schedule(world.hire(organization), world.station(organization))
    made = world.shift(plan, on_duty_at.replace(minute=0), minutes=180)
    moved(made, on_duty_at=on_duty_at, ended_at=ended_at, updated_at=updated_at)
    return made


def moved(shift: Shift, *, updated_at: dt.datetime, **fields: Any) -> None:
    """The shift's row changed as the tick changes it (a correction, an end), at `updated_at`."""
    state = ShiftState.ENDED if fields.get("ended_at") else ShiftState.ON_DUTY
    Shift.objects.for_organization(shift.organization).filter(pk=shift.pk).update(
        state=state, updated_at=updated_at, **fields
    )


def rows(organization: Organization) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every rollup row of the organization, keyed by (grain, bucket, employment, station): its
    columns but the id and `computed_at` (which a rewrite renews), sketches as bytes."""
    found = {}
    for row in Rollup.objects.for_organization(organization).values():
        key = (row["grain"], row["bucket"], row["employment_id"], row["station_id"])
        found[key] = {
            name: bytes(value) if isinstance(value, memoryview) else value
            for name, value in row.items()
            if name not in ("id", "computed_at")
        }
    return found


def by_local_day(instants: Iterable[dt.datetime], zone: str) -> Counter[dt.date]:
    """How many of these instants fall on each local day of the zone."""
    local = zoneinfo.ZoneInfo(zone)
    return Counter(instant.astimezone(local).date() for instant in instants)


def run_zone_migration_backfill() -> None:
    """The data step of the migration that added `Rollup.event_retention_days` and `RollupZone`,
    on the database as it is now (with the models as that migration left them)."""
    module = importlib.import_module(f"ironbowl.analytics.migrations.{ZONE_MIGRATION[1]}")
    state = MigrationExecutor(connection).loader.project_state(ZONE_MIGRATION)
    module.backfill(state.apps, None)
