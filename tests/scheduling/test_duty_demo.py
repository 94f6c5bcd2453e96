"""The demo's rosters: what `make run` puts on duty — the hospital's anchor (Monday to Friday at
19:00, and a rehearsal minutes after seeding) and the bureau's 24/7 desk.

Real: the demo seed (services, materialisation, capacity reservations), the duty tick; in the
slow test also the local backend with a real worker subprocess streaming the rehearsal to HLS,
as `make run` does (tests/platform/test_serve.py runs `make run`'s processes and waits for the
first shifts on duty). The end of the rehearsal is reached by ticking at its end instead of
waiting the minutes for it: the tick is the one beat runs, given the instant.
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


def _rehearsal(hospital: Organization) -> Shift:
    (shift,) = _shifts(hospital, schedule__rrule=ONCE, state__in=(S.PLANNED, *duty.STARTED))
    return shift


def test_the_anchor_is_rostered_on_weekday_evenings_with_a_rehearsal_in_a_few_minutes(seeded):
    seeded_at, organizations = seeded
    hospital = organizations["qinghe-hospital"]
    zone = zoneinfo.ZoneInfo(hospital.time_zone)
    evenings = _shifts(hospital, schedule__rrule=WEEKDAYS_AT_SEVEN)
    assert evenings, "no evening shifts made for the horizon"
    for shift in evenings:
        local = shift.starts_at.astimezone(zone)
        assert (local.weekday() < 5, local.time()) == (True, dt.time(19, 0))
        assert shift.ends_at - shift.starts_at == dt.timedelta(hours=1)
        assert shift.station.kind == StationKind.LIVE_ROOM
        assert shift.schedule.segments  # the evening's script
    rehearsal = _rehearsal(hospital)
    assert seeded_at + dt.timedelta(minutes=2) <= rehearsal.starts_at
    assert rehearsal.starts_at <= seeded_at + dt.timedelta(minutes=4)
    assert rehearsal.ends_at - rehearsal.starts_at == dt.timedelta(minutes=REHEARSAL_MINUTES)
    # Capacity is reserved for each, from the warm-up.
    for shift in [rehearsal, *evenings]:
        reservation = Reservation.objects.for_organization(hospital).get(
            holder=materialise.holder_of(shift.pk)
        )
        assert reservation.starts_at == shift.starts_at - duty.warmup()


def test_the_desk_is_rostered_around_the_clock_and_opens_at_the_first_tick(seeded):
    _seeded_at, organizations = seeded
    bureau = organizations["lanxi-market-bureau"]
    (schedule,) = Schedule.objects.for_organization(bureau)
    assert schedule.always_on and schedule.station.kind == StationKind.WEB_WIDGET
    today = _shifts(bureau, starts_at__lte=timezone.now(), ends_at__gt=timezone.now())
    assert len(today) == 1  # the day under way starts when it was rostered

    result = duty.tick()

    assert result.outcomes["on_duty"] == 1
    assert _shifts(bureau, state=S.ON_DUTY) == today
    # The rehearsal's stream is requested within its warm-up.
    hospital = organizations["qinghe-hospital"]
    assert _rehearsal(hospital).state == S.WARMING


def test_seeding_again_moves_the_rehearsal_once_the_last_one_is_over(seeded):
    _seeded_at, organizations = seeded
    hospital = organizations["qinghe-hospital"]
    first = _rehearsal(hospital)
    before = database_rows()
    assert seed_demo() == []  # one is still to come: nothing changes
    assert database_rows() == before

    # Half an hour later, the rehearsal long over, `make run` seeds again.
    Shift.objects.for_organization(hospital).filter(pk=first.pk).update(state=S.ENDED)
    created = seed_scheduling(now=timezone.now() + dt.timedelta(minutes=30))

    assert any("rehearsal on air at" in item for item in created), created
    second = _rehearsal(hospital)
    assert second.pk != first.pk
    assert second.starts_at >= first.starts_at + dt.timedelta(minutes=30)
    assert Shift.objects.for_organization(hospital).get(pk=first.pk).state == S.ENDED


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
        duty.tick()
        (desk,) = _shifts(bureau, state=S.ON_DUTY)
        rehearsal = _rehearsal(hospital)
        playlist = renders / f"station-{rehearsal.station_id}" / "index.m3u8"

        def on_air() -> bool:
            duty.tick()
            return _rehearsal(hospital).state == S.ON_DUTY and playlist.exists()

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
