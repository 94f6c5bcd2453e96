"""The duty machine: a shift warms up, goes on duty, ends; or is missed, fails, is retried.

Real: the tick (`duty.tick`) at chosen instants, inference's submit / cancel and its workload
state changes (`lifecycle.transition`, the function the orchestrator and the worker protocol
use), the `workload_changed` signal after commit and the scheduling receiver, the capacity
calendar, the audit log and its push to the organization's channel group (in-memory layer).
Simulated: the worker — its reports are played by moving the workload's state the way the
orchestrator and the protocol do; tests/scheduling/test_duty_end_to_end.py runs a real one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from avatars import employments
from avatars.models import Employment
from inference import contracts, spec_secrets
from inference.lifecycle import transition
from inference.models import Reservation, Workload, WorkloadState
from inference.pipelines import live
from inference.pipelines.script import MAX_WARMUP_S
from ironbowl.config import Config
from ironbowl.realtime import activity_group
from scheduling import duty, materialise, secrets
from scheduling.models import Shift, ShiftState, Station
from tenants.audit import SYSTEM
from tenants.errors import ConflictError
from tenants.models import AuditEntry
from tests.avatars import factories as avatar_factories
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker
from tests.scheduling import duty_world as world
from tests.support import database_rows

S = ShiftState
START = timezone.now().replace(second=0, microsecond=0) + dt.timedelta(hours=2)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def stream(django_capture_on_commit_callbacks):
    """Move a workload as the orchestrator or its worker would; the signal goes out on commit."""

    def move(workload: Workload, state: str, reason: str = "") -> Workload:
        with django_capture_on_commit_callbacks(execute=True):
            workload.refresh_from_db()
            assert transition(workload, state, state, reason)
        return workload

    return move


def _actions(shift: Shift) -> list[str]:
    entries = AuditEntry.objects.for_organization(shift.organization).filter(
        object_type="scheduling.shift", object_id=str(shift.pk)
    )
    return list(entries.order_by("created_at", "id").values_list("action", flat=True))


def _held(shift: Shift) -> bool:
    return (
        Reservation.objects.for_organization(shift.organization)
        .filter(holder=materialise.holder_of(shift.pk))
        .exists()
    )


def test_a_live_shift_warms_up_goes_on_air_and_ends_when_its_stream_ends(org_a, stream):
    shift = world.live_shift(org_a, START, minutes=60)
    reservation = shift.reservation

    # Nothing before its warm-up.
    assert duty.tick(START - duty.warmup() - MINUTE).shifts == 0
    assert world.fresh(shift).state == S.PLANNED

    # The warm-up: the live workload is requested with the shift's reservation.
    warm_at = START - duty.warmup()
    result = duty.tick(warm_at)
    assert result.outcomes == {"warming": 1}
    shift = world.fresh(shift)
    assert (shift.state, shift.attempts, shift.reason_code) == (S.WARMING, 1, "warming")
    workload = shift.workload
    assert workload.kind == "live"
    assert workload.idempotency_key == f"shift:{shift.pk}:1"
    assert workload.reservation_id == reservation.pk
    spec = workload.spec
    assert spec["outputs"] == {"hls_dir": f"station-{shift.station_id}"}
    assert spec["ai_label"] is True
    # The stream lasts until the shift's end (it goes on air within the warm-up).
    assert spec["duration_s"] == (shift.ends_at - warm_at).total_seconds()
    # No script in the schedule: the anchor greets viewers in its language.
    (greeting,) = spec["segments"]
    assert greeting["language"] == "zh" and "欢迎来到" in greeting["text"]

    # A second tick at the same instant changes nothing.
    assert duty.tick(warm_at).shifts == 0

    # The worker reports the stream running: on duty.
    stream(workload, WorkloadState.RUNNING)
    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.ON_DUTY, "on_air")
    assert shift.on_duty_at is not None

    # The stream ends: so does the shift, and its capacity is given back.
    stream(workload, WorkloadState.SUCCEEDED)
    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.ENDED, "completed")
    assert shift.ended_at is not None
    assert not _held(shift)
    assert _actions(shift) == ["shift.warm", "shift.on_duty", "shift.end"]


def test_the_stream_carries_the_schedules_script_and_the_stations_rtmp_push(org_a):
    shift = world.live_shift(
        org_a,
        START,
        push_url="rtmp://live-push.example.com/live",
        stream_key_encrypted=secrets.encrypt("sk-room-7f3a9c21"),
        ai_label_required=False,
    )
    script = [{"text": "今晚八点，医生在线答疑。", "language": "zh"}]
    shift.schedule.segments = script
    shift.schedule.save()

    duty.tick(START - duty.warmup())

    workload = world.fresh(shift).workload
    spec = workload.spec
    assert spec["segments"] == script
    assert spec["ai_label"] is False
    # The stream key is named, not written, in the spec the organization can read; the worker's
    # assignment gets the push URL with the key.
    assert "sk-room" not in json.dumps(spec)
    assert spec_secrets.for_worker(workload)["outputs"]["rtmp_url"] == (
        "rtmp://live-push.example.com/live/sk-room-7f3a9c21"
    )
    entries = AuditEntry.objects.for_organization(org_a).filter(object_type="scheduling.shift")
    assert all("sk-room" not in str(entry.after) for entry in entries)


@pytest.mark.parametrize("whose", ["market", "own"])
def test_the_portrait_reaches_the_worker_as_an_input_of_the_hiring_organization(
    org_a, settings, tmp_path, whose
):
    """The worker shares no disk with the control plane: the spec names the portrait as an
    input, a file of the hiring organization's media (a market avatar's portrait, kept in its
    vendor's, is copied there), which only the worker the stream is placed on may fetch.
    Real: the tick, inference's submit, the worker protocol's input view. Simulated: the
    cluster (FakeBackend) and the worker (the test client asks for the input)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    shift = world.live_shift(org_a, START)
    avatar = shift.employment.avatar
    if whose == "own":
        avatar = avatar_factories.ready_avatar(organization=org_a)
        Employment.objects.for_organization(org_a).filter(pk=shift.employment_id).update(
            avatar=avatar, avatar_version=avatar.current_version
        )
    avatar_factories.with_portrait(avatar)

    duty.tick(START - duty.warmup())

    workload = world.fresh(shift).workload
    assert "portrait_path" not in workload.spec
    assert str(tmp_path) not in json.dumps(workload.spec)
    portrait = workload.spec["inputs"]["portrait"]
    assert portrait["sha256"] == hashlib.sha256(avatar_factories.PORTRAIT_PNG).hexdigest()
    assert portrait["bytes"] == len(avatar_factories.PORTRAIT_PNG)
    assert portrait["media"].split("/")[1] == str(org_a.pk)
    worker, _token = place_on_new_worker(FakeBackend(), workload, "live")
    url = contracts.INPUT_PATH.format(workload=workload.pk, name="portrait")
    fetched = worker.get(f"{url}?attempt=1")
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == avatar_factories.PORTRAIT_PNG


def test_the_end_of_the_shift_stops_a_stream_still_on_air(org_a, stream):
    shift = world.live_shift(org_a, START, minutes=30)
    duty.tick(START - duty.warmup())
    stream(world.fresh(shift).workload, WorkloadState.RUNNING)

    assert duty.tick(shift.ends_at - MINUTE).shifts == 0
    assert duty.tick(shift.ends_at).outcomes == {"ended": 1}

    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.ENDED, "time_up")
    assert shift.workload.state == WorkloadState.CANCELLED
    assert not _held(shift)


def test_a_stream_not_on_air_in_time_is_missed_with_the_reason_it_waited(org_a):
    shift = world.live_shift(org_a, START)
    duty.tick(START - duty.warmup())
    workload = world.fresh(shift).workload
    Workload.objects.for_organization(org_a).filter(pk=workload.pk).update(
        reason="Waiting: the plan's 8 cpu slots are in use."
    )

    assert duty.tick(START + duty.missed_after() - MINUTE).shifts == 0
    assert duty.tick(START + duty.missed_after()).outcomes == {"missed": 1}

    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.MISSED, "late")
    assert "10 minutes after the start" in shift.reason
    assert "8 cpu slots are in use" in shift.reason
    assert shift.workload.state == WorkloadState.CANCELLED
    assert not _held(shift)
    assert _actions(shift) == ["shift.warm", "shift.miss"]


def test_a_shift_whose_whole_window_passed_unstarted_is_missed(org_a):
    """The platform was down for the whole shift: the next tick says so, it starts nothing."""
    shift = world.live_shift(org_a, START, minutes=30)
    assert duty.tick(shift.ends_at + MINUTE).outcomes == {"missed": 1}
    shift = world.fresh(shift)
    assert (shift.state, shift.workload) == (S.MISSED, None)
    assert not Workload.objects.for_organization(org_a).exists()


def test_a_failed_stream_is_retried_with_a_new_attempt_then_the_shift_fails(org_a, stream):
    shift = world.live_shift(org_a, START)
    duty.tick(START - duty.warmup())
    first = world.fresh(shift).workload
    stream(first, WorkloadState.RUNNING)

    stream(first, WorkloadState.FAILED, "The renderer ran out of memory.")
    shift = world.fresh(shift)
    assert (shift.state, shift.attempts, shift.reason_code) == (S.WARMING, 2, "retrying")
    assert "ran out of memory" in shift.reason and "attempt 2 of 3" in shift.reason
    second = shift.workload
    assert second.pk != first.pk and second.idempotency_key == f"shift:{shift.pk}:2"
    # It had been on duty: a slow retry is not a missed shift.
    assert duty.tick(START + duty.missed_after()).shifts == 0

    stream(second, WorkloadState.FAILED, "Lost the worker.")
    shift = world.fresh(shift)
    assert (shift.state, shift.attempts) == (S.WARMING, 3)
    assert "attempt 3 of 3" in shift.reason

    stream(shift.workload, WorkloadState.FAILED, "Lost the worker again.")
    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.FAILED, "stream_failed")
    assert "failed 3 time(s)" in shift.reason and "Lost the worker again." in shift.reason
    assert not _held(shift)
    assert Workload.objects.for_organization(org_a).count() == 3
    assert _actions(shift) == [
        "shift.warm",
        "shift.on_duty",
        "shift.retry",
        "shift.retry",
        "shift.fail",
    ]


def test_a_preempted_stream_is_asked_for_again_without_counting_as_a_failure(org_a, stream):
    """Preempted for higher-priority work is not the stream's fault (DESIGN: requeued, never
    dropped): more preemptions than `MAX_ATTEMPTS`, then a failure, and the shift still goes on."""
    shift = world.live_shift(org_a, START)
    duty.tick(START - duty.warmup())
    for attempt in range(2, duty.MAX_ATTEMPTS + 3):
        stream(world.fresh(shift).workload, WorkloadState.PREEMPTED, "A 24/7 desk needed the slot.")
        moved = world.fresh(shift)
        assert (moved.state, moved.attempts, moved.reason_code) == (S.WARMING, attempt, "retrying")
        assert "preempted" in moved.reason and "A 24/7 desk needed the slot." in moved.reason

    stream(world.fresh(shift).workload, WorkloadState.FAILED, "Lost the worker.")

    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.WARMING, "retrying")
    assert "attempt 2 of 3" in shift.reason
    assert _held(shift)


def test_a_stream_that_fails_when_no_time_is_left_fails_the_shift_without_a_retry(org_a, stream):
    shift = world.live_shift(org_a, START, minutes=30)
    duty.tick(START - duty.warmup())
    workload = world.fresh(shift).workload
    stream(workload, WorkloadState.RUNNING)
    # The failure reaches the tick after the shift's end (its signal was lost).
    workload.refresh_from_db()
    transition(workload, WorkloadState.FAILED, "failed", "Encoder crashed.")

    duty.tick(shift.ends_at + MINUTE)

    shift = world.fresh(shift)
    assert (shift.state, shift.attempts) == (S.FAILED, 1)
    assert "No time was left" in shift.reason


def test_a_desk_opens_at_its_start_and_closes_at_its_end(org_a):
    shift = world.desk_shift(org_a, START)
    # A desk has no stream to warm up.
    assert duty.tick(START - MINUTE).shifts == 0
    assert duty.tick(START).outcomes == {"on_duty": 1}
    shift = world.fresh(shift)
    assert (shift.state, shift.workload, shift.attempts) == (S.ON_DUTY, None, 0)
    assert shift.on_duty_at == START

    assert duty.tick(shift.ends_at).outcomes == {"ended": 1}
    assert world.fresh(shift).state == S.ENDED
    assert not Workload.objects.for_organization(org_a).exists()


def test_a_desk_opened_late_still_opens_while_its_day_lasts(org_a):
    """A 24/7 desk is not missed because the platform came back 20 minutes after midnight."""
    world.desk_shift(org_a, START)
    assert duty.tick(START + 2 * duty.missed_after()).outcomes == {"on_duty": 1}


def test_the_tick_catches_up_with_stream_changes_whose_signal_was_lost(org_a):
    shift = world.live_shift(org_a, START)
    duty.tick(START - duty.warmup())
    workload = world.fresh(shift).workload
    # Moved without running the commit hooks: the receiver never hears of it.
    transition(workload, WorkloadState.RUNNING, "running")
    assert world.fresh(shift).state == S.WARMING

    assert duty.tick(START).outcomes == {"on_duty": 1}
    transition(workload, WorkloadState.SUCCEEDED, "succeeded")
    assert duty.tick(START + MINUTE).outcomes == {"ended": 1}
    assert world.fresh(shift).reason_code == "completed"


def test_a_shift_of_a_hire_no_longer_active_is_called_off_at_its_start(org_a):
    shift = world.live_shift(org_a, START)
    employment = shift.employment
    employment.status = "suspended"  # changed behind the signal's back
    employment.save()

    assert duty.tick(START - duty.warmup()).outcomes == {"cancelled": 1}
    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.CANCELLED, "employment_not_active")
    assert "suspended" in shift.reason
    assert not Workload.objects.for_organization(org_a).exists()
    assert not _held(shift)


def test_a_stream_that_cannot_be_requested_fails_the_shift_with_the_reason(org_a):
    shift = world.live_shift(org_a, START)
    world.live_pool().delete()

    duty.tick(START - duty.warmup())

    shift = world.fresh(shift)
    assert (shift.state, shift.reason_code) == (S.FAILED, "stream_refused")
    assert "No active pool runs live workloads" in shift.reason


def test_suspending_or_terminating_a_hire_cancels_its_planned_shifts_and_ends_the_one_on_air(
    org_a, stream, django_capture_on_commit_callbacks
):
    on_air = world.live_shift(org_a, START)
    later = world.shift(on_air.schedule, START + dt.timedelta(days=1))
    world.reserve(later)
    other = world.live_shift(org_a, START)  # another hire: untouched
    duty.tick(START - duty.warmup())
    stream(world.fresh(on_air).workload, WorkloadState.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        assert employments.suspend_employment(SYSTEM, on_air.employment, "Consent expired.")

    on_air, later = world.fresh(on_air), world.fresh(later)
    assert (on_air.state, on_air.reason_code) == (S.ENDED, "employment_suspended")
    assert on_air.workload.state == WorkloadState.CANCELLED
    assert (later.state, later.reason_code) == (S.CANCELLED, "employment_suspended")
    assert "suspended" in later.reason
    assert not _held(later) and not _held(on_air)
    assert world.fresh(other).state == S.WARMING

    # Terminating the other hire cancels what it had.
    with django_capture_on_commit_callbacks(execute=True):
        employments.transition_employment(SYSTEM, other.employment, "terminated", "Contract over.")
    other = world.fresh(other)
    assert (other.state, other.reason_code) == (S.ENDED, "employment_terminated")


@pytest.mark.parametrize("change", ["suspended", "terminated", "station_off"])
def test_the_tick_takes_off_air_a_shift_whose_hire_or_station_stopped_with_no_signal(
    org_a, stream, change
):
    """The after-commit signal that stands shifts down was lost (here: the status is changed by
    a queryset update, which sends none); the next tick ends the shift all the same."""
    on_air = world.live_shift(org_a, START)
    taken = world.live_shift(org_a, START)
    other = world.live_shift(org_a, START)  # another hire at another station: untouched
    duty.tick(START - duty.warmup())
    stream(world.fresh(on_air).workload, WorkloadState.RUNNING)
    duty.take_over(SYSTEM, world.fresh(taken))
    for shift in (on_air, taken):
        if change == "station_off":
            Station.objects.for_organization(org_a).filter(pk=shift.station_id).update(
                is_active=False
            )
        else:
            Employment.objects.for_organization(org_a).filter(pk=shift.employment_id).update(
                status=change
            )

    assert duty.tick(START + MINUTE).outcomes == {"ended": 2}

    code = "station_inactive" if change == "station_off" else f"employment_{change}"
    for shift in (world.fresh(on_air), world.fresh(taken)):
        assert (shift.state, shift.reason_code) == (S.ENDED, code)
        assert shift.workload.state == WorkloadState.CANCELLED
        assert not _held(shift)
    assert world.fresh(other).state == S.WARMING
    assert duty.tick(START + 2 * MINUTE).shifts == 0


def test_a_24_7_day_on_a_daylight_saving_fall_back_date_streams_all_its_25_hours(org_a):
    """Berlin's clocks go back on 25 October 2026: that day of a 24/7 live room lasts 25 hours,
    and its stream (requested at the day's start) is asked for all of them."""
    org_a.time_zone = "Europe/Berlin"
    org_a.save()
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    starts_at = dt.datetime(2026, 10, 25, tzinfo=berlin).astimezone(dt.UTC)
    ends_at = dt.datetime(2026, 10, 26, tzinfo=berlin).astimezone(dt.UTC)
    assert ends_at - starts_at == dt.timedelta(hours=25)
    shift = world.live_shift(org_a, starts_at, minutes=25 * 60)
    assert shift.ends_at == ends_at
    shift.schedule.always_on = True
    shift.schedule.save()

    spec = duty.live_spec(world.fresh(shift), starts_at)

    assert spec["duration_s"] == 25 * 3600
    assert live.parse_spec(spec).duration_s == 25 * 3600


def test_a_whole_day_shift_streams_through_the_longest_warm_up(org_a, settings):
    """A 24-hour shift's stream, requested the longest warm-up the configuration allows before
    it starts, lasts from then to the shift's end."""
    rules = Config.model_fields["SCHEDULING_WARMUP_MINUTES"].metadata
    longest = next(rule.le for rule in rules if hasattr(rule, "le"))
    assert longest * 60 <= MAX_WARMUP_S
    settings.SCHEDULING_WARMUP_MINUTES = longest
    shift = world.live_shift(org_a, START, minutes=24 * 60)

    duty.tick(START - duty.warmup())

    spec = world.fresh(shift).workload.spec
    assert spec["duration_s"] == (shift.ends_at - START + duty.warmup()).total_seconds()
    assert live.parse_spec(spec).duration_s == spec["duration_s"]


def test_an_illegal_move_is_refused_and_writes_nothing(org_a):
    planned = world.live_shift(org_a, START)
    ended = world.live_shift(org_a, START)
    Shift.objects.for_organization(org_a).filter(pk=ended.pk).update(state=S.ENDED)
    ended = world.fresh(ended)
    before = database_rows()

    with pytest.raises(ConflictError) as refused:
        duty._move(SYSTEM, planned, S.TAKEN_OVER, "taken_over", "A person took over.")
    assert refused.value.code == "illegal_transition"
    assert "planned cannot become taken over by a person" in str(refused.value.detail)
    with pytest.raises(ConflictError) as refused:
        duty._move(SYSTEM, ended, S.WARMING, "warming", "Again.")
    assert "it can become: nothing" in str(refused.value.detail)
    assert database_rows() == before


def test_every_transition_is_pushed_to_the_organizations_console_group(
    org_a, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(activity_group(org_a.pk), channel)
    shift = world.desk_shift(org_a, START)

    with django_capture_on_commit_callbacks(execute=True):
        duty.tick(START)

    message = async_to_sync(layer.receive)(channel)
    assert message["payload"]["action"] == "shift.on_duty"
    assert message["payload"]["object_id"] == str(shift.pk)


def test_a_24_7_live_rooms_next_day_is_requested_at_its_start_not_in_the_day_before(org_a):
    """Days of a 24/7 live room join end to end: the day before is on air until midnight, so the
    next day's stream is requested at its start (as its capacity was reserved), not 5 minutes
    earlier into the same room."""
    shift = world.live_shift(org_a, START, minutes=24 * 60)
    shift.schedule.always_on = True
    shift.schedule.save()

    assert duty.tick(START - duty.warmup()).shifts == 0
    assert duty.tick(START).outcomes == {"warming": 1}


def test_a_signal_about_an_earlier_attempts_stream_changes_nothing(org_a, stream):
    shift = world.live_shift(org_a, START)
    duty.tick(START - duty.warmup())
    first = world.fresh(shift).workload
    stream(first, WorkloadState.FAILED, "Encoder crashed.")
    retried = world.fresh(shift)
    assert (retried.state, retried.attempts) == (S.WARMING, 2)
    before = database_rows()

    # A late or repeated signal about the first stream: the shift follows its second one now.
    assert duty.follow_workload(org_a.pk, first.pk) is False
    assert database_rows() == before
