"""What the roster calendar shows for one page of stations over a week or a month: their shifts,
what their schedules will make beyond the materialisation horizon, the holidays of the range and
the gaps in 24/7 coverage.

A fixed number of queries whatever the number of stations, shifts or employments: the caller
passes one page of stations; shifts, schedules and holidays are read once each for that page,
and the gaps once for the organization (`scheduling.roster.coverage_gaps`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence

from django.utils import timezone
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus
from ironbowl.console.names import display_name
from scheduling import materialise, recurrence, roster
from scheduling.models import Holiday, Schedule, ShiftState, Station
from tenants.models import Organization

WEEK, MONTH = "week", "month"
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
EARLIEST_YEAR, LATEST_YEAR = 2000, 2199


@dataclasses.dataclass(frozen=True)
class Period:
    """A calendar week (Monday first) or month, as local days and as an instant range."""

    kind: str
    days: tuple[dt.date, ...]
    start: dt.datetime
    end: dt.datetime
    zone: zoneinfo.ZoneInfo

    @property
    def first(self) -> dt.date:
        return self.days[0]

    @property
    def last(self) -> dt.date:
        return self.days[-1]

    @property
    def param(self) -> str:
        """The query parameter's value naming this period: 2026-W05 or 2026-02."""
        if self.kind == WEEK:
            year, week, _day = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first:%Y-%m}"

    def query(self) -> dict[str, str]:
        return {self.kind: self.param}

    def neighbour(self, step: int) -> Period:
        """The period before (-1) or after (+1) this one."""
        if self.kind == WEEK:
            return week_of(self.first + dt.timedelta(weeks=step), self.zone)
        month = self.first.month - 1 + step
        return month_of(self.first.year + month // 12, month % 12 + 1, self.zone)


def _period(kind: str, days: list[dt.date], zone: zoneinfo.ZoneInfo) -> Period:
    start = recurrence.local_midnight(days[0], zone).astimezone(zone)
    end = recurrence.local_midnight(days[-1] + dt.timedelta(days=1), zone).astimezone(zone)
    return Period(kind, tuple(days), start, end, zone)


def week_of(day: dt.date, zone: zoneinfo.ZoneInfo) -> Period:
    monday = day - dt.timedelta(days=day.weekday())
    return _period(WEEK, [monday + dt.timedelta(days=n) for n in range(7)], zone)


def month_of(year: int, month: int, zone: zoneinfo.ZoneInfo) -> Period:
    first = dt.date(year, month, 1)
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    count = (following - first).days
    return _period(MONTH, [first + dt.timedelta(days=n) for n in range(count)], zone)


def period_from(
    week: str | None, month: str | None, today: dt.date, zone: zoneinfo.ZoneInfo
) -> Period | None:
    """The period that ?week=YYYY-Www or ?month=YYYY-MM names (this week when neither is
    given); None when the one given is not a week or month we show."""
    if month:
        found = _MONTH.match(month.strip())
        if not found:
            return None
        year, number = int(found[1]), int(found[2])
        if not (EARLIEST_YEAR <= year <= LATEST_YEAR and 1 <= number <= 12):
            return None
        return month_of(year, number, zone)
    if week:
        found = _WEEK.match(week.strip().upper())
        if not found:
            return None
        try:
            monday = dt.date.fromisocalendar(int(found[1]), int(found[2]), 1)
        except ValueError:
            return None
        if not EARLIEST_YEAR <= monday.year <= LATEST_YEAR:
            return None
        return week_of(monday, zone)
    return week_of(today, zone)


# --- What a cell shows ---------------------------------------------------------------------------


def employment_label(name_zh: str, name_en: str, title: str) -> str:
    """A hire as people name it: the avatar's name in the page's language, and the position."""
    return f"{display_name(name_zh, name_en)} · {title}"


LABEL_FIELDS = ("id", "avatar__name_zh", "avatar__name_en", "position__title")


@dataclasses.dataclass(frozen=True)
class Block:
    """A shift (or, beyond the horizon, a shift its schedule will make) in a day's cell."""

    schedule_id: uuid.UUID | None
    starts_at: dt.datetime  # local
    ends_at: dt.datetime  # local
    employment: str
    state: str
    state_label: str
    at_risk: bool = False
    risk_reason: str = ""
    reason: str = ""
    projected: bool = False
    # Started on an earlier day (shown on the range's first day) / runs past the day's end.
    carried: bool = False
    all_day: bool = False
    to_midnight: bool = False  # ends at the next local midnight: shown as 24:00

    @property
    def when(self) -> str:
        """19:00–20:00; 22:00–02:00 (+1) past midnight; 18:45–24:00; "All day"."""
        if self.all_day:
            return _("All day")
        begins = f"{'…' if self.carried else ''}{self.starts_at:%H:%M}"
        if self.to_midnight:
            return f"{begins}–24:00"
        later = " (+1)" if self.ends_at.date() != self.starts_at.date() else ""
        return f"{begins}–{self.ends_at:%H:%M}{later}"


@dataclasses.dataclass(frozen=True)
class GapSpan:
    """Part of one day of a 24/7 station when no shift covers it."""

    starts_at: dt.datetime  # local
    ends_at: dt.datetime  # local
    minutes: int
    all_day: bool


@dataclasses.dataclass
class Cell:
    day: dt.date
    blocks: list[Block] = dataclasses.field(default_factory=list)
    gaps: list[GapSpan] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Row:
    station: Station
    around_the_clock: bool
    cells: list[Cell]
    # Whether the person looking may change this station's schedules (the page decides).
    editable: bool = False

    @property
    def gap_minutes(self) -> int:
        return sum(gap.minutes for cell in self.cells for gap in cell.gaps)

    @property
    def gap_hours(self) -> int:
        return self.gap_minutes // 60

    @property
    def gap_rest(self) -> int:
        """The minutes past the whole hours of `gap_minutes`."""
        return self.gap_minutes % 60


@dataclasses.dataclass(frozen=True)
class HolidayMark:
    name: str
    kind: str
    calendar: str


@dataclasses.dataclass(frozen=True)
class DayHeader:
    day: dt.date
    marks: list[HolidayMark]


@dataclasses.dataclass
class Roster:
    period: Period
    rows: list[Row]
    headers: list[DayHeader]
    horizon: dt.datetime  # local: shifts exist up to here; beyond, blocks are projected


def roster_of(
    organization: Organization,
    stations: Sequence[Station],
    period: Period,
    *,
    now: dt.datetime | None = None,
) -> Roster:
    now = now or timezone.now()
    zone = period.zone
    horizon = now + materialise.horizon()
    ids = [station.pk for station in stations]
    cells: dict[uuid.UUID, dict[dt.date, Cell]] = {
        pk: {day: Cell(day) for day in period.days} for pk in ids
    }
    schedules = list(
        Schedule.objects.for_organization(organization)
        .filter(station_id__in=ids, is_active=True)
        .select_related("employment", "station")
    )
    # Plain rows: a month of a page of stations is thousands of shifts.
    shifts = list(
        roster.shifts_between(organization, period.start, period.end)
        .filter(station_id__in=ids)
        .values_list(
            "schedule_id",
            "station_id",
            "employment_id",
            "starts_at",
            "ends_at",
            "ended_at",
            "state",
            "at_risk",
            "risk_reason",
            "reason",
        )
    )
    labels = _labels(
        organization,
        {row[2] for row in shifts} | {schedule.employment_id for schedule in schedules},
    )
    states = {state.value: str(state.label) for state in ShiftState}
    made: set[tuple[uuid.UUID, dt.datetime]] = set()
    for shift in shifts:
        schedule_id, station_id, employment_id, begins, ends, ended, state = shift[:7]
        at_risk, risk_reason, reason = shift[7:]
        made.add((schedule_id, begins))
        _place(
            cells[station_id],
            period,
            Block(
                schedule_id=schedule_id,
                starts_at=begins.astimezone(zone),
                ends_at=(ended if ended and ended < ends else ends).astimezone(zone),
                employment=labels.get(employment_id, ""),
                state=state,
                state_label=states.get(state, state),
                at_risk=at_risk,
                risk_reason=risk_reason,
                reason=reason,
            ),
        )

    holidays, days_of = _holidays(organization, period)
    if horizon < period.end:
        since = max(horizon, period.start)
        for schedule in schedules:
            if schedule.employment.status != EmploymentStatus.ACTIVE:
                continue  # the materialiser makes no shifts for it
            if not schedule.station.is_active:
                continue
            calendar = (
                days_of.get(schedule.holiday_calendar_id) if schedule.holiday_calendar_id else None
            )
            for occurrence in recurrence.occurrences(
                recurrence.Timing.of(schedule), zone, since, period.end, calendar or {}
            ):
                if occurrence.starts_at < since or (schedule.pk, occurrence.starts_at) in made:
                    continue
                _place(
                    cells[schedule.station_id],
                    period,
                    Block(
                        schedule_id=schedule.pk,
                        starts_at=occurrence.starts_at.astimezone(zone),
                        ends_at=occurrence.ends_at.astimezone(zone),
                        employment=labels.get(schedule.employment_id, ""),
                        state="projected",
                        state_label=_("Not yet planned"),
                        projected=True,
                    ),
                )

    for gap in roster.coverage_gaps(organization, period.start, period.end, now=now):
        if gap.station_id in cells:
            _place_gap(cells[gap.station_id], gap, zone)

    around_the_clock = {schedule.station_id for schedule in schedules if schedule.always_on}
    rows = [
        Row(station, station.pk in around_the_clock, list(cells[station.pk].values()))
        for station in stations
    ]
    for row in rows:
        for cell in row.cells:
            cell.blocks.sort(key=lambda block: (block.starts_at, block.employment))
    headers = [DayHeader(day, holidays.get(day, [])) for day in period.days]
    return Roster(period, rows, headers, horizon.astimezone(zone))


def _labels(organization: Organization, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each hire's label (see `employment_label`), in one query."""
    rows = (
        Employment.objects.for_organization(organization)
        .filter(id__in=ids)
        .values_list(*LABEL_FIELDS)
    )
    return {pk: employment_label(*names) for pk, *names in rows}


def _next_midnight(at: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    day = at.astimezone(zone).date() + dt.timedelta(days=1)
    return recurrence.local_midnight(day, zone).astimezone(zone)


def _place(row: dict[dt.date, Cell], period: Period, block: Block) -> None:
    """A block goes in the cell of the local day it starts (the first day when it started
    before the range)."""
    day = block.starts_at.date()
    carried = day < period.first
    if carried:
        day = period.first
    if day not in row:
        return
    midnight = recurrence.local_midnight(block.starts_at.date(), period.zone)
    to_midnight = block.ends_at == _next_midnight(block.starts_at, period.zone)
    row[day].blocks.append(
        dataclasses.replace(
            block,
            carried=carried,
            all_day=to_midnight and block.starts_at == midnight,
            to_midnight=to_midnight,
        )
    )


def _place_gap(row: dict[dt.date, Cell], gap: roster.Gap, zone: zoneinfo.ZoneInfo) -> None:
    """A gap split at local midnights, one part per day's cell."""
    begins = gap.starts_at.astimezone(zone)
    ends = gap.ends_at.astimezone(zone)
    while begins < ends:
        midnight = _next_midnight(begins, zone)
        part_end = min(ends, midnight)
        day = begins.date()
        if day in row:
            minutes = int((part_end - begins).total_seconds() // 60)
            starts_day = begins == recurrence.local_midnight(day, zone)
            row[day].gaps.append(
                GapSpan(begins, part_end, minutes, all_day=starts_day and part_end == midnight)
            )
        begins = part_end


def _holidays(
    organization: Organization, period: Period
) -> tuple[dict[dt.date, list[HolidayMark]], dict[uuid.UUID, dict[dt.date, str]]]:
    """The range's holidays and make-up days by day (for the header), and each calendar's days
    (for the schedules' occurrences, which look two days back and one ahead)."""
    rows = (
        Holiday.objects.for_organization(organization)
        .filter(
            date__gte=period.first - dt.timedelta(days=2),
            date__lte=period.last + dt.timedelta(days=1),
        )
        .select_related("calendar")
        .order_by("date", "calendar__name")
    )
    by_day: dict[dt.date, list[HolidayMark]] = defaultdict(list)
    days_of: dict[uuid.UUID, dict[dt.date, str]] = defaultdict(dict)
    for holiday in rows:
        days_of[holiday.calendar_id][holiday.date] = holiday.kind
        if period.first <= holiday.date <= period.last:
            by_day[holiday.date].append(
                HolidayMark(holiday.name, holiday.kind, holiday.calendar.name)
            )
    return dict(by_day), dict(days_of)
