"""The demo's rosters: the hospital's anchor on air Monday to Friday at 19:00 in its live room,
and the bureau's service desk open around the clock on its web widget.

So that `make run` shows a shift going on duty without waiting for the evening, the hospital
also gets a rehearsal: a one-off shift of `REHEARSAL_MINUTES` that starts a couple of minutes
after seeding (its stream is requested at once, within its warm-up), streams HLS into the local
workers' output folder (`MEDIA_ROOT/renders/station-<id>/`) and ends. A later seeding moves the
rehearsal to its next couple of minutes once the last one is over; while one is still to come or
under way, seeding again changes nothing. Everything goes through the schedules' service, which
materialises the shifts and reserves their capacity; beat's tick puts them on duty.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from avatars.models import Employment, EmploymentStatus
from scheduling import schedules
from scheduling.duty import STARTED
from scheduling.models import Schedule, Shift, ShiftState, Station, StationKind
from tenants.audit import Actor
from tenants.errors import ConflictError
from tenants.models import Membership, Organization
from tenants.roles import Role

HOSPITAL = "qinghe-hospital"
BUREAU = "lanxi-market-bureau"
WEEKDAYS_AT_SEVEN = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
ONCE = "FREQ=DAILY;COUNT=1"
REHEARSAL_LEAD = dt.timedelta(minutes=2)
REHEARSAL_MINUTES = 2

EVENING_SCRIPT = [
    {"text": "各位观众晚上好，欢迎来到清河人民医院健康直播间。", "language": "zh"},
    {
        "text": "今天我们聊一聊秋冬季节如何预防流感：勤洗手、多通风，按时接种疫苗。",
        "language": "zh",
    },
    {"text": "直播间只做健康科普，身体不适请到门诊就诊；出现急症请立即拨打120。", "language": "zh"},
]
REHEARSAL_SCRIPT = [
    {"text": "大家好，我是林晓雯，这是健康直播间的彩排。", "language": "zh"},
    {"text": "今晚七点，我们准时开播，欢迎大家来看。", "language": "zh"},
]


def seed_scheduling(now: dt.datetime | None = None) -> list[str]:
    """The demo's schedules (made once) and the hospital's rehearsal; what was created."""
    now = now or timezone.now()
    created: list[str] = []
    organizations = {o.slug: o for o in Organization.objects.filter(slug__in=(HOSPITAL, BUREAU))}
    hospital, bureau = organizations[HOSPITAL], organizations[BUREAU]
    anchor, room = _active_hire(hospital), _station(hospital, StationKind.LIVE_ROOM)
    desk_agent, desk = _active_hire(bureau), _station(bureau, StationKind.WEB_WIDGET)
    mine = Schedule.objects.for_organization(hospital).filter(station=room)
    if not mine.filter(rrule=WEEKDAYS_AT_SEVEN).exists():
        _create(
            hospital,
            employment=anchor,
            station=room,
            rrule=WEEKDAYS_AT_SEVEN,
            start_time=dt.time(19, 0),
            duration_minutes=60,
            valid_from=_today(hospital),
            segments=EVENING_SCRIPT,
        )
        created.append(f"{HOSPITAL} schedule: the anchor on air Mon-Fri 19:00")
    if not Schedule.objects.for_organization(bureau).filter(station=desk).exists():
        _create(
            bureau, employment=desk_agent, station=desk, always_on=True, valid_from=_today(bureau)
        )
        created.append(f"{BUREAU} schedule: the service desk open 24/7")
    rehearsal = _rehearse(hospital, anchor, room, mine.filter(rrule=ONCE).first(), now)
    if rehearsal:
        created.append(rehearsal)
    return created


def _rehearse(
    hospital: Organization,
    anchor: Employment,
    room: Station,
    schedule: Schedule | None,
    now: dt.datetime,
) -> str | None:
    """A rehearsal a couple of minutes from now, unless one is still to come or under way, or
    the evening's show is on then (the anchor has one seat)."""
    if schedule is not None:
        shifts = Shift.objects.for_organization(hospital).filter(schedule=schedule)
        if shifts.filter(state__in=(ShiftState.PLANNED, *STARTED)).exists():
            return None
    zone = zoneinfo.ZoneInfo(hospital.time_zone)
    starts = (now + REHEARSAL_LEAD).astimezone(zone)
    starts = starts.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    fields: dict[str, Any] = {
        "rrule": ONCE,
        "start_time": starts.time(),
        "duration_minutes": REHEARSAL_MINUTES,
        "valid_from": starts.date(),
        "valid_until": starts.date(),
        "segments": REHEARSAL_SCRIPT,
    }
    try:
        if schedule is None:
            _create(hospital, employment=anchor, station=room, **fields)
        else:
            schedules.update_schedule(_owner(hospital), schedule, **fields)
    except ConflictError:
        return None  # the evening's show is on air then: it is the demo
    playlist = Path(settings.MEDIA_ROOT) / "renders" / f"station-{room.pk}" / "index.m3u8"
    return f"{HOSPITAL} rehearsal on air at {starts:%H:%M} ({hospital.time_zone}), HLS: {playlist}"


def _create(organization: Organization, **fields: Any) -> Schedule:
    return schedules.create_schedule(_owner(organization), organization, **fields)


def _active_hire(organization: Organization) -> Employment:
    return Employment.objects.for_organization(organization).get(status=EmploymentStatus.ACTIVE)


def _station(organization: Organization, kind: str) -> Station:
    return Station.objects.for_organization(organization).filter(kind=kind).earliest("created_at")


def _owner(organization: Organization) -> Actor:
    owner = Membership.objects.for_organization(organization).get(role=Role.OWNER)
    return Actor(user=owner.user, role=Role.OWNER)


def _today(organization: Organization) -> dt.date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(organization.time_zone)).date()
