"""When a schedule's shifts fall: an RFC 5545 RRULE read in the organization's time zone, minus
holidays and exception dates, plus make-up working days; correct across daylight-saving changes.

Rules repeat in local wall-clock time, as people's calendars do: a 19:00 shift stays 19:00 local
when the clocks change. The wall-clock start is then placed on the time line with `zoneinfo`:
a start inside the spring-forward gap moves forward by the gap (02:30 becomes 03:30), and a start
in the repeated autumn hour takes its first pass (fold 0). Durations are elapsed time. A 24/7
schedule makes one shift per local calendar day, midnight to midnight, so 23 or 25 hours on the
days the clocks change, and the shifts join end to end.

Pure functions of plain values (no ORM), so the materialiser, the conflict check and the tests
share one definition.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

from dateutil.rrule import rrule, rrulestr
from django.utils.translation import gettext as _

from tenants.errors import DomainError

# The rule's parts we accept. The time of day comes from `start_time`, the first day from
# `valid_from` and the last from `valid_until`, so BYHOUR/BYMINUTE/BYSECOND, DTSTART and UNTIL
# are refused rather than silently overriding (or fighting) those fields.
FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
TOO_FREQUENT = ("SECONDLY", "MINUTELY")
ALLOWED_PARTS = ("FREQ", "INTERVAL", "COUNT", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST")
FROM_FIELDS = {
    "DTSTART": "valid_from",
    "UNTIL": "valid_until",
    "TZID": "the organization's time zone",
    "BYHOUR": "start_time",
    "BYMINUTE": "start_time",
    "BYSECOND": "start_time",
    "EXDATE": "exdates",
}
MAX_COUNT = 1000
MAX_INTERVAL = 1000
MAX_DURATION_MINUTES = 24 * 60
MAX_EXDATES = 1000
# A rule must occur within this long after `valid_from` (leap-day rules occur every 4-8 years).
FIRST_OCCURRENCE_YEARS = 8
WEEKDAYS = frozenset({"MO", "TU", "WE", "TH", "FR"})
HOLIDAY, WORKDAY = "holiday", "workday"
# Rules whose periods have a fixed length in local time: their expansion may start near the
# window instead of at `valid_from` (same phase), which keeps old schedules cheap to expand.
_PERIOD = {
    "HOURLY": dt.timedelta(hours=1),
    "DAILY": dt.timedelta(days=1),
    "WEEKLY": dt.timedelta(weeks=1),
}


@dataclasses.dataclass(frozen=True)
class Timing:
    """What decides when a schedule's shifts are (a schedule's fields, without the ORM)."""

    rrule: str
    start_time: dt.time | None
    duration_minutes: int | None
    always_on: bool
    valid_from: dt.date
    valid_until: dt.date | None = None
    exdates: frozenset[dt.date] = frozenset()

    @classmethod
    def of(cls, schedule: Any) -> Timing:
        return cls(
            rrule=schedule.rrule,
            start_time=schedule.start_time,
            duration_minutes=schedule.duration_minutes,
            always_on=schedule.always_on,
            valid_from=schedule.valid_from,
            valid_until=schedule.valid_until,
            exdates=frozenset(dt.date.fromisoformat(day) for day in schedule.exdates or ()),
        )


@dataclasses.dataclass(frozen=True, order=True)
class Occurrence:
    starts_at: dt.datetime  # UTC
    ends_at: dt.datetime  # UTC


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The organization's time zone; a clear error when it is not an IANA zone."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DomainError(
            "unknown_time_zone",
            _("%(zone)s is not a known time zone; set one such as Asia/Shanghai.") % {"zone": name},
            field="time_zone",
        ) from None


def _invalid(message: str, code: str = "invalid_rrule") -> DomainError:
    return DomainError(code, message, field="rrule")


def parse_rule(text: str) -> dict[str, str]:
    """The parts of one RRULE (`FREQ=WEEKLY;BYDAY=MO`, with or without `RRULE:`), upper-cased
    and checked against what a schedule may say; raises DomainError(field="rrule")."""
    body = text.strip()
    for line in body.splitlines():
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        if ":" in line and name in FROM_FIELDS:
            raise _invalid(
                _("%(name)s cannot be part of the rule: it comes from %(field)s.")
                % {"name": name, "field": FROM_FIELDS[name]}
            )
    if "\n" in body or "\r" in body:
        raise _invalid(_("Give one RRULE line; exception dates go in exdates."))
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body:
        raise _invalid(_("A recurrence rule is required, e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR."))
    if ":" in body:
        name = body.split(":", 1)[0].upper()
        raise _invalid(_("Only an RRULE is accepted here, not %(name)s.") % {"name": name})
    parts: dict[str, str] = {}
    for pair in body.split(";"):
        name, sep, value = pair.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise _invalid(_("%(pair)r is not NAME=VALUE.") % {"pair": pair})
        if name in FROM_FIELDS:
            raise _invalid(
                _("%(name)s cannot be part of the rule: it comes from %(field)s.")
                % {"name": name, "field": FROM_FIELDS[name]}
            )
        if name not in ALLOWED_PARTS:
            raise _invalid(_("%(name)s is not a recurrence rule part.") % {"name": name})
        if name in parts:
            raise _invalid(_("%(name)s is given twice.") % {"name": name})
        parts[name] = value
    frequency = parts.get("FREQ")
    if frequency is None:
        raise _invalid(_("The rule needs FREQ (HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)."))
    if frequency in TOO_FREQUENT:
        raise _invalid(
            _("Shifts may repeat at most hourly; FREQ=%(freq)s is too frequent.")
            % {"freq": frequency},
            "rrule_too_frequent",
        )
    if frequency not in FREQUENCIES:
        raise _invalid(_("FREQ must be HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY."))
    _bounded_integer(parts, "INTERVAL", MAX_INTERVAL)
    _bounded_integer(parts, "COUNT", MAX_COUNT)
    try:
        _rule(parts, dt.datetime(2000, 1, 1))  # noqa: DTZ001  # rules run on local wall-clock time
    except ValueError as error:
        raise _invalid(_("The rule is not valid RFC 5545: %(error)s.") % {"error": error}) from None
    _check_month_days(parts)
    _check_set_positions(parts)
    return parts


def _bounded_integer(parts: dict[str, str], name: str, maximum: int) -> None:
    value = parts.get(name)
    if value is None:
        return
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise _invalid(
            _("%(name)s must be a whole number from 1 to %(max)s.")
            % {"name": name, "max": maximum},
            "rrule_out_of_bounds",
        )


def _check_month_days(parts: dict[str, str]) -> None:
    # A day of the month that no allowed month has (30 February) would make the expansion search
    # until the year 9999 for an occurrence; refuse it up front.
    if "BYMONTHDAY" not in parts:
        return
    days = [int(day) for day in parts["BYMONTHDAY"].split(",")]
    months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else range(1, 13)
    longest = {month: calendar.monthrange(2000, month)[1] for month in months}  # 2000: leap
    if not any(abs(day) <= longest[month] for day in days for month in months):
        raise _invalid(_("No month of the rule has that day of the month: it never occurs."))


def _check_set_positions(parts: dict[str, str]) -> None:
    # BYSETPOS picks from each period's set; with short periods and a position the set never
    # reaches, the expansion would walk hours or days until the year 9999 (tens of seconds).
    if "BYSETPOS" not in parts:
        return
    largest = {"MONTHLY": 31, "YEARLY": 366}.get(parts["FREQ"])
    if largest is None:
        raise _invalid(_("BYSETPOS is only for monthly and yearly rules."))
    for value in parts["BYSETPOS"].split(","):
        if not value.lstrip("+-").isdigit() or not 1 <= abs(int(value)) <= largest:
            raise _invalid(
                _("BYSETPOS values are from 1 to %(max)s or -1 to -%(max)s for this rule.")
                % {"max": largest},
                "rrule_out_of_bounds",
            )


def runs_on_weekdays(parts: Mapping[str, str]) -> bool:
    """Whether make-up working days add shifts: the rule repeats every week on exactly Monday to
    Friday (FREQ=WEEKLY or DAILY, INTERVAL=1, BYDAY=MO,TU,WE,TH,FR, no COUNT, BYMONTH,
    BYMONTHDAY or BYSETPOS)."""
    if parts.get("FREQ") not in ("DAILY", "WEEKLY") or parts.get("INTERVAL", "1") != "1":
        return False
    if set(parts) - {"FREQ", "INTERVAL", "BYDAY", "WKST"}:
        return False
    return set(parts.get("BYDAY", "").split(",")) == WEEKDAYS


def validate(timing: Timing, zone: zoneinfo.ZoneInfo) -> None:
    """Refuse a timing that cannot make sensible shifts; the error names the field."""
    if timing.valid_until is not None and timing.valid_until < timing.valid_from:
        raise DomainError(
            "ends_before_start",
            _("valid_until is before valid_from."),
            field="valid_until",
        )
    if len(timing.exdates) > MAX_EXDATES:
        raise DomainError(
            "too_many_exdates",
            _("At most %(max)s exception dates.") % {"max": MAX_EXDATES},
            field="exdates",
        )
    if timing.always_on:
        for name in ("rrule", "start_time", "duration_minutes"):
            if getattr(timing, name) not in ("", None):
                raise DomainError(
                    "always_on_fields",
                    _("A 24/7 schedule runs midnight to midnight: leave %(field)s empty.")
                    % {"field": name},
                    field=name,
                )
        return
    if timing.start_time is None:
        raise DomainError(
            "required", _("A start time is required (or make it 24/7)."), field="start_time"
        )
    if timing.duration_minutes is None or not 1 <= timing.duration_minutes <= MAX_DURATION_MINUTES:
        raise DomainError(
            "invalid_duration",
            _("A shift lasts from 1 minute to 24 hours; longer ones are 24/7 schedules."),
            field="duration_minutes",
        )
    parts = parse_rule(timing.rrule)
    first = _wall_clock(timing.valid_from, timing.start_time)
    horizon = dt.datetime.combine(
        timing.valid_from + dt.timedelta(days=366 * FIRST_OCCURRENCE_YEARS), dt.time.max
    )
    if timing.valid_until is not None:
        horizon = min(horizon, dt.datetime.combine(timing.valid_until, dt.time.max))
    following = _rule(parts, first).after(first, inc=True)
    if following is None or following > horizon:
        raise _invalid(
            _("The rule has no occurrence between valid_from and valid_until."), "rrule_never"
        )


def _wall_clock(day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time.replace(tzinfo=None))


def _rule(parts: Mapping[str, str], dtstart: dt.datetime) -> rrule:
    text = ";".join(f"{name}={value}" for name, value in parts.items())
    parsed = rrulestr(text, dtstart=dtstart)
    if not isinstance(parsed, rrule):  # a set: only from several lines, which parse_rule refuses
        raise _invalid(_("Give one RRULE line; exception dates go in exdates."))
    return parsed


def to_utc(wall: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A local wall-clock time on the time line (gap: moved forward; repeated hour: first)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def local_midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return to_utc(dt.datetime.combine(day, dt.time()), zone)


def occurrences(
    timing: Timing,
    zone: zoneinfo.ZoneInfo,
    start: dt.datetime,
    end: dt.datetime,
    days: Mapping[dt.date, str] | None = None,
) -> list[Occurrence]:
    """The shifts of `timing` that overlap [start, end) (aware datetimes), in order, in UTC.

    `days` maps dates of the schedule's holiday calendar to "holiday" (no shift starts that
    local day) or "workday" (a make-up working day: rules that run on exactly Monday to Friday
    get a shift that day at their start time). Exception dates drop the shifts that start on
    them, make-up ones included.
    """
    days = days or {}
    local_start = start.astimezone(zone).replace(tzinfo=None)
    local_end = end.astimezone(zone).replace(tzinfo=None)
    # Shifts that started up to a day before `start` may still run into the window.
    first_day = max(timing.valid_from, (local_start - dt.timedelta(days=2)).date())
    last_day = (local_end + dt.timedelta(days=1)).date()
    if timing.valid_until is not None:
        last_day = min(last_day, timing.valid_until)
    if last_day < first_day:
        return []

    def wanted(day: dt.date) -> bool:
        return day not in timing.exdates and days.get(day) != HOLIDAY

    found: set[Occurrence] = set()
    if timing.always_on:
        day = first_day
        while day <= last_day:
            if wanted(day):
                found.add(Occurrence(local_midnight(day, zone), local_midnight(_next(day), zone)))
            day = _next(day)
    elif timing.start_time is not None and timing.duration_minutes is not None:
        length = dt.timedelta(minutes=timing.duration_minutes)
        starts = _rule_starts(timing, timing.start_time, first_day, last_day)
        parts = parse_rule(timing.rrule)
        if runs_on_weekdays(parts):
            starts.extend(
                _wall_clock(day, timing.start_time)
                for day, kind in days.items()
                if kind == WORKDAY and first_day <= day <= last_day
            )
        for wall in starts:
            if wanted(wall.date()):
                begins = to_utc(wall, zone)
                found.add(Occurrence(begins, begins + length))
    return sorted(o for o in found if o.starts_at < end and o.ends_at > start)


def _next(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=1)


def _rule_starts(
    timing: Timing, start_time: dt.time, first_day: dt.date, last_day: dt.date
) -> list[dt.datetime]:
    parts = parse_rule(timing.rrule)
    dtstart = _wall_clock(timing.valid_from, start_time)
    after = dt.datetime.combine(first_day, dt.time())
    before = dt.datetime.combine(last_day, dt.time.max)
    period = _PERIOD.get(parts["FREQ"])
    if period is not None and "COUNT" not in parts and after > dtstart:
        # Same phase, fewer periods to walk: whole intervals forward from valid_from.
        step = period * int(parts.get("INTERVAL", "1"))
        dtstart += step * ((after - dtstart) // step)
    return list(_rule(parts, dtstart).between(after, before, inc=True))


def peak(intervals: Iterable[tuple[dt.datetime, dt.datetime]]) -> tuple[int, dt.datetime | None]:
    """The most intervals overlapping at one instant (half-open), and the first such instant."""
    edges: list[tuple[dt.datetime, int]] = []
    for begins, ends in intervals:
        edges.append((begins, 1))
        edges.append((ends, -1))
    edges.sort()  # at equal times ends (-1) sort before starts: back-to-back is no overlap
    held = best = 0
    when: dt.datetime | None = None
    for at, change in edges:
        held += change
        if held > best:
            best, when = held, at
    return best, when
