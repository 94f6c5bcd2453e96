"""Which employment, station and shift an event belongs to, resolved once at ingestion.

An event may name a shift, a station, an employment or several of them. Whatever it leaves out
is found from the shift that covered the moment it happened (a live room's events name the
station; the hire on duty there is the one they count for). Ids are checked against the
organization in a handful of queries per batch: another organization's id is "unknown", exactly
like an id that does not exist.
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Q
from django.utils.translation import gettext as _

from avatars.models import Employment
from ironbowl.analytics.validation import CleanEvent, Invalid
from scheduling.models import Shift, ShiftState, Station
from tenants.models import Organization

# Shifts that were (or are) on air: their window attributes events.
AIRED = (
    ShiftState.WARMING,
    ShiftState.ON_DUTY,
    ShiftState.TAKEN_OVER,
    ShiftState.ENDED,
    ShiftState.FAILED,
)


class _Window:
    __slots__ = ("employment_id", "ends_at", "shift_id", "starts_at", "station_id")

    def __init__(self, shift: Shift) -> None:
        self.shift_id: uuid.UUID = shift.pk
        self.station_id: uuid.UUID = shift.station_id
        self.employment_id: uuid.UUID = shift.employment_id
        self.starts_at = shift.starts_at
        self.ends_at = shift.ends_at


class Resolver:
    """Resolves a batch: construct with the batch's clean events, then `resolve` each."""

    def __init__(self, organization: Organization, events: Sequence[CleanEvent]) -> None:
        stations = {e.station_id for e in events if e.station_id}
        employments = {e.employment_id for e in events if e.employment_id}
        shift_ids = {e.shift_id for e in events if e.shift_id}
        self.stations = set(
            Station.objects.for_organization(organization)
            .filter(pk__in=stations)
            .values_list("pk", flat=True)
        )
        self.employments = set(
            Employment.objects.for_organization(organization)
            .filter(pk__in=employments)
            .values_list("pk", flat=True)
        )
        self.shifts = {
            shift.pk: _Window(shift)
            for shift in Shift.objects.for_organization(organization)
            .filter(pk__in=shift_ids)
            .only("pk", "station_id", "employment_id", "starts_at", "ends_at")
        }
        self._by_station: dict[uuid.UUID, list[_Window]] = defaultdict(list)
        self._by_employment: dict[uuid.UUID, list[_Window]] = defaultdict(list)
        wanted = [e for e in events if not e.shift_id and (e.station_id or e.employment_id)]
        if wanted:
            earliest = min(e.occurred_at for e in wanted)
            latest = max(e.occurred_at for e in wanted)
            covering = (
                Shift.objects.for_organization(organization)
                .filter(Q(station_id__in=self.stations) | Q(employment_id__in=self.employments))
                .filter(state__in=AIRED, starts_at__lte=latest, ends_at__gt=earliest)
                .only("pk", "station_id", "employment_id", "starts_at", "ends_at")
                .order_by("starts_at")
            )
            for shift in covering:
                window = _Window(shift)
                self._by_station[window.station_id].append(window)
                self._by_employment[window.employment_id].append(window)

    def resolve(self, event: CleanEvent) -> None:
        """Fills in the event's employment, station and shift, or raises Invalid."""
        if event.station_id and event.station_id not in self.stations:
            raise Invalid("unknown_station", _("There is no such station."), "station")
        if event.employment_id and event.employment_id not in self.employments:
            raise Invalid("unknown_employment", _("There is no such employee."), "employment")
        if event.shift_id:
            window = self.shifts.get(event.shift_id)
            if window is None:
                raise Invalid("unknown_shift", _("There is no such shift."), "shift")
            if event.station_id not in (None, window.station_id) or event.employment_id not in (
                None,
                window.employment_id,
            ):
                raise Invalid(
                    "attribution_mismatch",
                    _("The station or employee named is not the shift's."),
                    "shift",
                )
            self._apply(event, window)
            return
        if event.station_id:
            window = _covering(self._by_station.get(event.station_id, ()), event)
        elif event.employment_id:
            window = _covering(self._by_employment.get(event.employment_id, ()), event)
        else:
            return
        if window is not None:
            self._apply(event, window)

    @staticmethod
    def _apply(event: CleanEvent, window: _Window) -> None:
        event.shift_id = window.shift_id
        event.station_id = window.station_id
        event.employment_id = window.employment_id


def _covering(windows: Sequence[_Window], event: CleanEvent) -> _Window | None:
    """The latest-starting window that covers the event (and agrees with what it names)."""
    starts = [window.starts_at for window in windows]
    for position in range(bisect.bisect_right(starts, event.occurred_at) - 1, -1, -1):
        window = windows[position]
        if window.ends_at <= event.occurred_at:
            continue
        if event.employment_id and window.employment_id != event.employment_id:
            continue
        if event.station_id and window.station_id != event.station_id:
            continue
        return window
    return None
