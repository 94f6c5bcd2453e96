"""The demo's rosters: what `make run` puts on duty — the hospital's anchor (Monday to Friday at
19:00, and a rehearsal minutes after seeding) and the bureau's 24/7 desk.

Real: the demo seed (services, materialisation, capacity reservations), the duty tick; in the
slow test also the local backend with a real worker subprocess streaming the rehearsal to HLS,
as `make run` does (tests/platform/test_serve.py runs `make run`'s processes and waits for the
first shifts on duty). The end of the rehearsal is reached by ticking at its end instead of
waiting the minutes for it: the tick is the one beat runs, given the instant.

The seed runs on the wall clock, so the tests hold at any hour: seeded during the evening's
show (a weekday from about 18:56 to 20:00 in Shanghai) there is no rehearsal, since the anchor
has one seat, and tonight's show starts when it was rostered and is what goes on duty; seeded
in a day's last minute, the desk's first day is the next. The rehearsal's own timing is checked
at chosen instants through `seed_scheduling(now=...)`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from inference.backends.local import LocalBackend
from inference.models import Reservation, Worker, Workload, WorkloadState
from inference.pipelines import render
from inference.pipelines.encode import probe
from inference.reconcile import Reconciler
from ironbowl.demo import seed_demo
from ironbowl.demo_scheduling import ONCE, REHEARSAL_MINUTES, WEEKDAYS_AT_SEVEN, seed_scheduling
from scheduling import duty, materialise
from scheduling.models import Schedule, Shift, ShiftState, StationKind
from tenants.audit import SYSTEM
from tenants.models import Organization
from tests.inference.test_end_to_end import _drive
from tests.support import database_rows, require_tool

S = ShiftState


@pytest.fixture
def seeded(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    before = timezone.now()
    seed_demo()
    return before, {org.slug: org for org in Organization.objects.all()}


def _shifts(organization: Organization, **filters) -> list[Shift]:
    shifts = Shift.objects.for_organization(organization).select_related("station", "schedule")
    return list(shifts.filter(**filters).order_by("starts_at"))


def _rehearsals(hospital: Organization) -> list[Shift]:
    return _shifts(hospital, schedule__rrule=ONCE, state__in=(S.PLANNED, *duty.STARTED))


def _rehearsal(hospital: Organization) -> Shift:
    (shift,) = _rehearsals(hospital)
    return shift


def _first_on_air(hospital: Organization) -> Shift:
    """The hospital's next shift on air: the rehearsal, or the evening's show when the demo was
    seeded while it was on (or minutes before it), which leaves no seat for a rehearsal."""
    return _shifts(hospital, state__in=(S.PLANNED, *duty.STARTED))[0]


def _local_at(zone: zoneinfo.ZoneInfo, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), zone)


def _next_weekday(zone: zoneinfo.ZoneInfo) -> dt.date:
    """The first Monday-to-Friday after today (local): the whole of its evening is ahead."""
    day = timezone.now().astimezone(zone).date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def test_the_anchor_is_rostered_on_weekday_evenings_with_a_rehearsal_in_a_few_minutes(seeded):
    seeded_at, organizations = seeded
    done = timezone.now()
    hospital = organizations["qinghe-hospital"]
    zone = zoneinfo.ZoneInfo(hospital.time_zone)
    evenings = _shifts(hospital, schedule__rrule=WEEKDAYS_AT_SEVEN)
    assert evenings, "no evening shifts made for the horizon"
    for shift in evenings:
        local = shift.starts_at.astimezone(zone)
        seven = _local_at(zone, local.date(), 19)
        assert local.weekday() < 5
        assert shift.ends_at == seven + dt.timedelta(hours=1)
        if shift.starts_at != seven:
            # Seeded during the show: tonight's is under way and starts when it was rostered.
            assert shift == evenings[0]
            assert seven < shift.starts_at
            assert seeded_at.replace(microsecond=0) <= shift.starts_at <= done
        assert shift.station.kind == StationKind.LIVE_ROOM
        assert shift.schedule.segments  # the evening's script
    rehearsals = _rehearsals(hospital)
    # The rehearsal's minutes, a couple after seeding; the anchor has one seat, so while the
    # evening's show is on then there is no rehearsal: the show is what goes on duty.
    earliest, latest = seeded_at + dt.timedelta(minutes=2), done + dt.timedelta(minutes=3)
    rehearsing = (earliest, latest + dt.timedelta(minutes=REHEARSAL_MINUTES))
    show_on = [s for s in evenings if s.starts_at < rehearsing[1] and s.ends_at > rehearsing[0]]
    if not rehearsals:
        assert show_on, "no rehearsal, and no evening show to leave it out for"
    for rehearsal in rehearsals:
        assert earliest <= rehearsal.starts_at <= latest
        assert rehearsal.ends_at - rehearsal.starts_at == dt.timedelta(minutes=REHEARSAL_MINUTES)
        assert not [
            s
            for s in evenings
            if s.starts_at < rehearsal.ends_at and s.ends_at > rehearsal.starts_at
        ]
    # Capacity is reserved for each, from the warm-up.
    for shift in [*rehearsals, *evenings]:
        reservation = Reservation.objects.for_organization(hospital).get(
            holder=materialise.holder_of(shift.pk)
        )
        assert reservation.starts_at == shift.starts_at - duty.warmup()


def test_the_desk_is_rostered_around_the_clock_and_opens_at_the_first_tick(seeded):
    seeded_at, organizations = seeded
    done = timezone.now()
    bureau = organizations["lanxi-market-bureau"]
    zone = zoneinfo.ZoneInfo(bureau.time_zone)
    (schedule,) = Schedule.objects.for_organization(bureau)
    assert schedule.always_on and schedule.station.kind == StationKind.WEB_WIDGET
    first = _shifts(bureau)[0]
    midnight = _local_at(zone, first.starts_at.astimezone(zone).date() + dt.timedelta(days=1), 0)
    assert first.ends_at == midnight
    # The day under way starts when it was rostered; with under a minute of it left, the first
    # shift is the next day's, from midnight.
    assert seeded_at.replace(microsecond=0) <= first.starts_at <= done or (
        first.starts_at.astimezone(zone).time() == dt.time(0)
        and first.starts_at - seeded_at <= dt.timedelta(minutes=1)
    )

    at = max(done, first.starts_at)
    result = duty.tick(at)

    assert result.outcomes["on_duty"] == 1
    assert _shifts(bureau, state=S.ON_DUTY) == [first]
    # The hospital's stream is requested within its warm-up: the rehearsal's, or the evening
    # show's when the demo was seeded during it.
    hospital = organizations["qinghe-hospital"]
    assert _first_on_air(hospital).state == S.WARMING
    for rehearsal in _rehearsals(hospital):
        assert rehearsal.state == S.WARMING


def test_seeding_again_moves_the_rehearsal_once_the_last_one_is_over(seeded):
    _seeded_at, organizations = seeded
    hospital = organizations["qinghe-hospital"]
    zone = zoneinfo.ZoneInfo(hospital.time_zone)
    if not _rehearsals(hospital):
        # Seeded during the evening's show (test above): rehearse once it is over instead.
        evening = _shifts(hospital, schedule__rrule=WEEKDAYS_AT_SEVEN)[0]
        assert seed_scheduling(now=evening.ends_at)
    first = _rehearsal(hospital)
    before = database_rows()
    # One is still to come: nothing changes. (The scheduling part of the seed: the analytics'
    # adds the day that enters its window when the local date changed since the first seed.)
    assert seed_scheduling() == []
    assert database_rows() == before

    # Later, the rehearsal long over, `make run` seeds again: at 21:00, clear of any show.
    Shift.objects.for_organization(hospital).filter(pk=first.pk).update(state=S.ENDED)
    later = _local_at(zone, first.ends_at.astimezone(zone).date(), 21)
    if later < first.ends_at + dt.timedelta(minutes=30):
        later += dt.timedelta(days=1)
    created = seed_scheduling(now=later)

    assert any("rehearsal on air at" in item for item in created), created
    second = _rehearsal(hospital)
    assert second.pk != first.pk
    assert later + dt.timedelta(minutes=2) <= second.starts_at <= later + dt.timedelta(minutes=3)
    assert Shift.objects.for_organization(hospital).get(pk=first.pk).state == S.ENDED


def test_no_rehearsal_is_made_while_the_evening_show_is_on_and_one_follows_it(seeded):
    _seeded_at, organizations = seeded
    hospital = organizations["qinghe-hospital"]
    zone = zoneinfo.ZoneInfo(hospital.time_zone)
    Shift.objects.for_organization(hospital).filter(schedule__rrule=ONCE).update(state=S.ENDED)
    day = _next_weekday(zone)

    # Seeded at 19:20 or minutes before 19:00: its minutes are the show's, and the anchor has
    # one seat.
    for hour, minute in ((19, 20), (18, 56)):
        before = database_rows()
        assert seed_scheduling(now=_local_at(zone, day, hour, minute)) == []
        assert database_rows() == before
        assert not _rehearsals(hospital)

    # Seeded in the show's last minutes, the rehearsal follows it: 20:01 to 20:03.
    created = seed_scheduling(now=_local_at(zone, day, 19, 58))

    assert any("rehearsal on air at 20:01" in item for item in created), created
    rehearsal = _rehearsal(hospital)
    assert rehearsal.starts_at == _local_at(zone, day, 20, 1)
    assert rehearsal.ends_at == _local_at(zone, day, 20, 1 + REHEARSAL_MINUTES)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_goes_on_duty_streams_and_ends_on_the_local_backend(
    live_server, settings, tmp_path
):
    require_tool("ffprobe", "ffmpeg")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.INFERENCE_CONTROL_URL = live_server.url
    settings.INFERENCE_HEARTBEAT_INTERVAL_S = 0.5
    seed_demo()
    hospital = Organization.objects.get(slug="qinghe-hospital")
    bureau = Organization.objects.get(slug="lanxi-market-bureau")
    renders = tmp_path / "renders"
    backend = LocalBackend(
        tmp_path / "workers",
        grace_s=5.0,
        extra_env={render.ENV_OUTPUT_DIR: str(renders), render.ENV_TORCH_THREADS: "1"},
    )
    reconciler = Reconciler(backend)
    try:
        # The desk's first day starts at the next midnight when the seeding came in its last
        # minute; the hospital's first shift on air is the rehearsal, or the evening's show
        # when the demo was seeded during it (test_the_anchor_is_rostered_...).
        duty.tick(max(timezone.now(), _shifts(bureau)[0].starts_at))
        (desk,) = _shifts(bureau, state=S.ON_DUTY)
        rehearsal = _first_on_air(hospital)
        assert rehearsal.state == S.WARMING
        # One stream is followed: a show or rehearsal back to back with it (seeded minutes
        # before one of them) is called off, so that no other stream starts meanwhile.
        soon = rehearsal.ends_at + duty.warmup() + dt.timedelta(minutes=15)
        others = _shifts(hospital, state__in=(S.PLANNED, *duty.STARTED), starts_at__lt=soon)
        for other in others:
            if other.pk != rehearsal.pk:
                duty.stop(SYSTEM, other)
        playlist = renders / f"station-{rehearsal.station_id}" / "index.m3u8"

        def on_air() -> bool:
            duty.tick()
            shift = Shift.objects.for_organization(hospital).get(pk=rehearsal.pk)
            return shift.state == S.ON_DUTY and playlist.exists()

        _drive(reconciler, on_air, timeout=240)
        _drive(reconciler, lambda: "segment_" in playlist.read_text(), timeout=120)

        # The rehearsal's end: the tick ends it and stops its stream; the desk stays open.
        result = duty.tick(rehearsal.ends_at)
        assert result.outcomes["ended"] == 1
        rehearsal = Shift.objects.for_organization(hospital).get(pk=rehearsal.pk)
        assert (rehearsal.state, rehearsal.reason_code) == (S.ENDED, "time_up")
        assert Shift.objects.for_organization(bureau).get(pk=desk.pk).state == S.ON_DUTY
        live = Workload.objects.for_organization(hospital).get(pk=rehearsal.workload_id)
        assert live.state == WorkloadState.CANCELLED

        def stream_gone() -> bool:
            workers = Worker.objects.for_organization(hospital).filter(pool__pipeline="live")
            return all(worker.state == "gone" for worker in workers)

        _drive(reconciler, stream_gone, timeout=120)
        text = playlist.read_text()
        assert "#EXT-X-ENDLIST" in text
        video = next(s for s in probe(playlist)["streams"] if s["type"] == "video")
        assert video["codec"] == "h264" and video["frames"] > 0
    finally:
        backend.stop_all()
