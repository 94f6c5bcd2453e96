"""Holiday calendars: days off and make-up working days (China's public holidays, a hospital's
own closures), kept by hand or imported from CSV or JSON.

Every change re-checks the schedules that use the calendar for conflicts (a make-up day adds a
shift to weekday schedules) and then re-materialises them, in the same transaction: a change
that would overbook a station or an employment is refused with the reason and writes nothing.
Importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from scheduling import materialise, schedules
from scheduling.models import DayKind, Holiday, HolidayCalendar, Schedule
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

MAX_IMPORT_ROWS = 1000
NAME_MAX_LENGTH = 200
CSV_COLUMNS = ("date", "kind", "name")


def _name_taken() -> ConflictError:
    return ConflictError(
        "calendar_name_taken", _("Another holiday calendar already has this name."), field="name"
    )


@transaction.atomic
def create_calendar(actor: Actor, organization: Organization, *, name: str) -> HolidayCalendar:
    try:
        with transaction.atomic():
            calendar = HolidayCalendar.objects.create(organization=organization, name=name)
    except IntegrityError:
        raise _name_taken() from None
    audit.record(
        actor, organization, "holiday_calendar.create", calendar, after=audit.snapshot(calendar)
    )
    return calendar


@transaction.atomic
def update_calendar(actor: Actor, calendar: HolidayCalendar, **changes: Any) -> HolidayCalendar:
    before = audit.snapshot(calendar)
    for name, value in changes.items():
        if name != "name":
            raise DomainError("read_only", _("This field cannot be changed."), field=name)
        calendar.name = value
    if audit.snapshot(calendar) == before:
        return calendar
    try:
        with transaction.atomic():
            calendar.save(update_fields=["name"])
    except IntegrityError:
        raise _name_taken() from None
    audit.record_update(
        actor, calendar.organization, "holiday_calendar.update", calendar, before=before
    )
    return calendar


@transaction.atomic
def delete_calendar(actor: Actor, calendar: HolidayCalendar) -> None:
    """Delete a calendar and its days; schedules that used it keep running without it."""
    organization = calendar.organization
    users = _schedules_using(calendar)
    for schedule in users:
        schedule.holiday_calendar = None
    schedules.check_conflicts(organization, users)
    audit.record(
        actor,
        organization,
        "holiday_calendar.delete",
        calendar,
        before={**audit.snapshot(calendar), "schedules": [str(s.pk) for s in users]},
    )
    calendar.delete()  # schedules' links are set to null by the foreign key
    _rematerialise(organization, users)


def _day_taken(date: dt.date) -> ConflictError:
    return ConflictError(
        "day_taken",
        _("%(date)s is already in this calendar; change that day instead.")
        % {"date": date.isoformat()},
        field="date",
    )


def _save_day(day: Holiday, **options: Any) -> None:
    """Save the day; a request that took its date meanwhile (after this one looked) is refused
    as if it had been seen, not answered with a server error."""
    try:
        with transaction.atomic():
            day.save(**options)
    except IntegrityError:
        raise _day_taken(day.date) from None


@transaction.atomic
def add_day(
    actor: Actor, calendar: HolidayCalendar, *, date: dt.date, kind: str, name: str = ""
) -> Holiday:
    organization = calendar.organization
    if Holiday.objects.for_organization(organization).filter(calendar=calendar, date=date).exists():
        raise _day_taken(date)
    day = Holiday(organization=organization, calendar=calendar, date=date, kind=kind, name=name)
    _apply(calendar, {date: kind})
    _save_day(day, force_insert=True)
    audit.record(actor, organization, "holiday.create", day, after=audit.snapshot(day))
    _rematerialise(organization, _schedules_using(calendar))
    return day


@transaction.atomic
def update_day(actor: Actor, day: Holiday, **changes: Any) -> Holiday:
    organization = day.organization
    before = audit.snapshot(day)
    old_date = day.date
    for name, value in changes.items():
        if name not in ("date", "kind", "name"):
            raise DomainError("read_only", _("This field cannot be changed."), field=name)
        setattr(day, name, value)
    if audit.snapshot(day) == before:
        return day
    taken = Holiday.objects.for_organization(organization).filter(
        calendar_id=day.calendar_id, date=day.date
    )
    if taken.exclude(pk=day.pk).exists():
        raise _day_taken(day.date)
    _apply(day.calendar, {old_date: None, day.date: day.kind})
    _save_day(day)
    audit.record_update(actor, organization, "holiday.update", day, before=before)
    _rematerialise(organization, _schedules_using(day.calendar))
    return day


@transaction.atomic
def delete_day(actor: Actor, day: Holiday) -> None:
    organization = day.organization
    _apply(day.calendar, {day.date: None})
    audit.record(actor, organization, "holiday.delete", day, before=audit.snapshot(day))
    day.delete()
    _rematerialise(organization, _schedules_using(day.calendar))


# --- Import --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DayRow:
    date: dt.date
    kind: str
    name: str


@dataclasses.dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class ImportInvalid(DomainError):
    """The file has problems; `problems` lists each as "row N: ..."; nothing was imported."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "import_invalid",
            _("The file has %(count)s problem(s); nothing was imported.")
            % {"count": len(problems)},
            field="rows",
        )
        self.problems = problems


def parse_csv(data: bytes) -> list[DayRow]:
    """Rows of a CSV file with the header `date,kind,name` (UTF-8, a BOM is fine)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportInvalid([_("The file is not UTF-8 text.")]) from None
    reader = csv.reader(io.StringIO(text))
    header = [column.strip().lower() for column in next(reader, [])]
    if not header or header[0] != "date" or not set(header) <= set(CSV_COLUMNS):
        raise ImportInvalid(
            [_("The first row must be the header date,kind,name (name may be left out).")]
        )
    items = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue
        items.append(dict(zip(header, values, strict=False)))
    return _rows(items, first_row=2)


def parse_json(data: Any) -> list[DayRow]:
    """Rows of JSON: `{"days": [...]}` or a bare list of `{"date", "kind", "name"?}`."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            raise ImportInvalid([_("The body is not valid JSON.")]) from None
    if isinstance(data, dict) and set(data) == {"days"}:
        data = data["days"]
    if not isinstance(data, list):
        raise ImportInvalid([_('Send {"days": [...]}, a list of {"date", "kind", "name"}.')])
    return _rows(data, first_row=1)


def _rows(items: list[Any], *, first_row: int) -> list[DayRow]:
    problems: list[str] = []
    rows: list[DayRow] = []
    seen: dict[dt.date, int] = {}
    if len(items) > MAX_IMPORT_ROWS:
        raise ImportInvalid(
            [_("At most %(max)s days per import; split the file.") % {"max": MAX_IMPORT_ROWS}]
        )
    for number, item in enumerate(items, start=first_row):
        problem = _row_problem(item, seen)
        if problem is not None:
            problems.append(_("row %(n)s: %(problem)s") % {"n": number, "problem": problem})
            continue
        date = dt.date.fromisoformat(str(item["date"]).strip())
        seen[date] = number
        kind = str(item["kind"]).strip().lower()
        rows.append(DayRow(date, kind, str(item.get("name") or "").strip()))
    if problems:
        raise ImportInvalid(problems)
    return rows


def _row_problem(item: Any, seen: dict[dt.date, int]) -> str | None:
    """What is wrong with one row, or None."""
    if not isinstance(item, dict):
        return _("expected an object with date, kind and name")
    unknown = sorted(str(name) for name in set(item) - set(CSV_COLUMNS))
    if unknown:
        return _("unknown field %(names)s") % {"names": ", ".join(unknown)}
    try:
        date = dt.date.fromisoformat(str(item.get("date", "")).strip())
    except ValueError:
        return _("date must be YYYY-MM-DD")
    if str(item.get("kind") or "").strip().lower() not in DayKind.values:
        return _("kind must be holiday or workday")
    if len(str(item.get("name") or "").strip()) > NAME_MAX_LENGTH:
        return _("name is longer than %(max)s characters") % {"max": NAME_MAX_LENGTH}
    if date in seen:
        return _("%(date)s is also on row %(other)s") % {
            "date": date.isoformat(),
            "other": seen[date],
        }
    return None


@transaction.atomic
def import_days(actor: Actor, calendar: HolidayCalendar, rows: list[DayRow]) -> ImportReport:
    """Add or correct the calendar's days from rows; days the rows do not name stay. Idempotent:
    the same rows again report everything unchanged and write nothing."""
    organization = calendar.organization
    report = ImportReport()
    existing = {
        day.date: day
        for day in Holiday.objects.for_organization(organization).filter(
            calendar=calendar, date__in=[row.date for row in rows]
        )
    }
    new, changed = [], []
    for row in rows:
        day = existing.get(row.date)
        if day is None:
            new.append(
                Holiday(
                    id=uuid.uuid4(),
                    organization=organization,
                    calendar=calendar,
                    date=row.date,
                    kind=row.kind,
                    name=row.name,
                )
            )
        elif (day.kind, day.name) != (row.kind, row.name):
            day.kind, day.name = row.kind, row.name
            changed.append(day)
        else:
            report.unchanged += 1
    if not new and not changed:
        return report
    _apply(calendar, {day.date: day.kind for day in [*new, *changed]})
    days = Holiday.objects.for_organization(organization)
    days.bulk_create(new)
    days.bulk_update(changed, ["kind", "name"])
    report.created, report.updated = len(new), len(changed)
    audit.record(
        actor,
        organization,
        "holiday_calendar.import",
        calendar,
        after={
            **report.as_dict(),
            "dates": [day.date.isoformat() for day in [*new, *changed]][:100],
        },
    )
    _rematerialise(organization, _schedules_using(calendar))
    return report


# --- Effects on schedules ------------------------------------------------------------------------


def _schedules_using(calendar: HolidayCalendar) -> list[Schedule]:
    return list(
        Schedule.objects.for_organization(calendar.organization)
        .filter(holiday_calendar=calendar, is_active=True)
        .select_related("employment", "station")
    )


def _apply(calendar: HolidayCalendar, changes: dict[dt.date, str | None]) -> None:
    """Refuse the change when the calendar's schedules would conflict with it (a make-up day
    adds shifts); `None` removes a day."""
    users = _schedules_using(calendar)
    if not users:
        return
    days: dict[dt.date, str] = dict(
        Holiday.objects.for_organization(calendar.organization)
        .filter(calendar=calendar)
        .values_list("date", "kind")
    )
    for date, kind in changes.items():
        if kind is None:
            days.pop(date, None)
        else:
            days[date] = kind
    schedules.check_conflicts(calendar.organization, users, days_of={calendar.pk: days})


def _rematerialise(organization: Organization, users: list[Schedule]) -> None:
    if users:
        materialise.materialise_organization(
            organization, schedule_ids=[schedule.pk for schedule in users]
        )
