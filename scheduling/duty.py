"""Putting digital employees on duty: each shift's state machine, the operators' actions on it,
and the tick that advances due shifts exactly once.

A live room's shift asks inference for its `live` workload `SCHEDULING_WARMUP_MINUTES` before it
starts (warming) and is on duty once the worker reports the stream running; a desk station (kiosk,
web widget, hotline) has no stream and opens at the start. A shift ends when its stream ends or
its time is up; it is missed when it is not on duty `SCHEDULING_MISSED_AFTER_MINUTES` after the
start, and failed when its stream failed `MAX_ATTEMPTS` times (or no time is left to try again).

Every move is one row of `TRANSITIONS`, made compare-and-set on (state, attempts) while the row is
locked, with a reason, and audited as `shift.<verb>` (which pushes it to the organization's
console). The tick locks due shifts with SKIP LOCKED, so two ticks at once share the work instead
of doing it twice, and each workload's idempotency key (`shift:<id>:<attempt>`) makes a repeated
request return the first one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus
from inference import capacity
from inference import services as inference
from inference.contracts import PORTRAIT_INPUT, REFERENCE_PORTRAIT
from inference.models import FINAL_STATES, Workload, WorkloadKind, WorkloadState
from inference.pipelines.script import MAX_SHIFT_S, parse_script
from inference.pipelines.types import StageError
from scheduling import materialise, secrets
from scheduling.models import Shift, ShiftState, Station, StationKind
from scheduling.sessions import VIDEO_SIZE, pipeline_language, portrait_of
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.errors import ConflictError

logger = structlog.get_logger(__name__)

S = ShiftState
MAX_ATTEMPTS = 3  # failed streams of one shift before it is given up
BATCH = 200  # due shifts locked and moved per transaction

# (from, to) -> the verb audited as `shift.<verb>`. Anything else is refused and writes nothing.
TRANSITIONS: dict[tuple[str, str], str] = {
    (S.PLANNED, S.WARMING): "warm",
    (S.PLANNED, S.ON_DUTY): "on_duty",  # a desk opens at its start
    (S.PLANNED, S.MISSED): "miss",
    (S.PLANNED, S.FAILED): "fail",  # its stream could not even be requested
    (S.PLANNED, S.CANCELLED): "cancel",
    (S.WARMING, S.ON_DUTY): "on_duty",
    (S.WARMING, S.WARMING): "retry",  # the stream failed: a new attempt
    (S.WARMING, S.TAKEN_OVER): "take_over",
    (S.WARMING, S.ENDED): "end",
    (S.WARMING, S.MISSED): "miss",
    (S.WARMING, S.FAILED): "fail",
    (S.ON_DUTY, S.WARMING): "retry",
    (S.ON_DUTY, S.TAKEN_OVER): "take_over",
    (S.ON_DUTY, S.ENDED): "end",
    (S.ON_DUTY, S.FAILED): "fail",
    (S.TAKEN_OVER, S.WARMING): "hand_back",
    (S.TAKEN_OVER, S.ON_DUTY): "hand_back",  # a desk: open again at once
    (S.TAKEN_OVER, S.ENDED): "end",
}

STARTED = (S.WARMING, S.ON_DUTY, S.TAKEN_OVER)
# Shifts with a stream the machine follows (a taken-over shift's stream was cancelled).
FOLLOWING = (S.WARMING, S.ON_DUTY)
LIVE = StationKind.LIVE_ROOM
# A stream that ended so: the shift asks for another one. Only failures count towards
# MAX_ATTEMPTS; a preempted stream was not at fault (DESIGN: requeued, never dropped).
FAILED_STREAM = (WorkloadState.FAILED,)
ASKED_AGAIN = (WorkloadState.FAILED, WorkloadState.PREEMPTED)
# Stream states a shift follows (on air, or over); the others change nothing for it.
STREAM_MOVES = frozenset({WorkloadState.RUNNING, *FINAL_STATES})


def warmup() -> dt.timedelta:
    return dt.timedelta(minutes=settings.SCHEDULING_WARMUP_MINUTES)


def missed_after() -> dt.timedelta:
    return dt.timedelta(minutes=settings.SCHEDULING_MISSED_AFTER_MINUTES)


def is_live(shift: Shift) -> bool:
    return shift.station.kind == LIVE


def lead_of(shift: Shift) -> dt.timedelta:
    """How long before its start a shift is started: a live room's warm-up, except for 24/7
    days, which join end to end (the day before is on air until this one starts, as in the
    capacity it reserved); a desk opens at its start."""
    return warmup() if is_live(shift) and not shift.schedule.always_on else dt.timedelta()


# --- Moves -------------------------------------------------------------------------------------


def _move(
    actor: Actor,
    shift: Shift,
    to: str,
    reason_code: str,
    reason: str,
    *,
    verb: str | None = None,
    **fields: Any,
) -> bool:
    """Move a shift the caller has locked from its state to `to`, compare-and-set on the state
    and attempt it was read with; audit it. False (nothing written) when someone else got there
    first; an illegal move raises and writes nothing."""
    allowed = TRANSITIONS.get((shift.state, to))
    if allowed is None:
        raise ConflictError("illegal_transition", _illegal(shift.state, to))
    before = {"state": shift.state, "attempts": shift.attempts}
    values: dict[str, Any] = {"state": to, "reason_code": reason_code, "reason": reason[:2000]}
    values.update(fields)
    moved = (
        Shift.objects.for_organization(shift.organization)
        .filter(pk=shift.pk, state=shift.state, attempts=shift.attempts)
        .update(**values, updated_at=timezone.now())
    )
    if not moved:
        return False
    for name, value in values.items():
        setattr(shift, name, value)
    after = {
        "state": to,
        "reason_code": reason_code,
        "reason": values["reason"],
        "attempts": shift.attempts,
        "workload": str(shift.workload_id) if shift.workload_id else None,
    }
    audit.record(
        actor, shift.organization, f"shift.{verb or allowed}", shift, before=before, after=after
    )
    return True


def _illegal(current: str, to: str) -> str:
    following = sorted({str(S(b).label).lower() for a, b in TRANSITIONS if a == current})
    return _("A shift that is %(state)s cannot become %(to)s; it can become: %(next)s.") % {
        "state": str(S(current).label).lower(),
        "to": str(S(to).label).lower(),
        "next": ", ".join(following) if following else _("nothing (it is over)"),
    }


def _release(shift: Shift) -> None:
    capacity.release(shift.organization, materialise.holder_of(shift.pk))


def _cancel_stream(shift: Shift, reason: str) -> None:
    workload = shift.workload
    if workload is not None and workload.state not in FINAL_STATES:
        shift.workload = inference.cancel(workload, reason)


def _finish(
    actor: Actor,
    shift: Shift,
    to: str,
    reason_code: str,
    reason: str,
    *,
    now: dt.datetime,
    verb: str | None = None,
) -> bool:
    """End a shift for good (ended, missed, failed, cancelled): move it, stop its stream and
    give back its capacity."""
    if not _move(actor, shift, to, reason_code, reason, verb=verb, ended_at=now):
        return False
    _cancel_stream(shift, reason)
    _release(shift)
    return True


# --- The stream ----------------------------------------------------------------------------------


def greeting(employment: Employment, station: Station) -> dict[str, str]:
    """What an anchor says when its schedule gives no script: hello, in its language."""
    avatar = employment.avatar
    tag = (employment.voice or {}).get("language") or next(iter(avatar.languages), "zh-CN")
    language = pipeline_language(str(tag)) or "zh"
    if language == "en":
        name = avatar.name_en or avatar.name_zh
        return {"text": f"Hello, I am {name}. Welcome to {station.name}.", "language": "en"}
    if language == "yue":
        return {
            "text": f"大家好，我係{avatar.name_zh}，歡迎嚟到{station.name}。",
            "language": "yue",
        }
    return {"text": f"大家好，我是{avatar.name_zh}，欢迎来到{station.name}。", "language": "zh"}


def live_spec(shift: Shift, now: dt.datetime) -> dict[str, Any]:
    """The `live` workload of a shift: its schedule's script (or a greeting) until the shift's
    end, labelled as AI when the station requires it, to the station's RTMP push (if it has one,
    by reference: `scheduling.secrets.rtmp_reference`) and to HLS in the worker's output folder
    for the console."""
    station, employment = shift.station, shift.employment
    segments = shift.schedule.segments or [greeting(employment, station)]
    outputs: dict[str, Any] = {"hls_dir": f"station-{station.pk}"}
    # The push URL holds the stream key: the spec names it, the worker's assignment resolves it.
    rtmp = secrets.rtmp_reference(station)
    if rtmp:
        outputs["rtmp_url"] = rtmp
    # The stream starts when a worker has it, within the warm-up; it lasts to the shift's end.
    remaining = (shift.ends_at - now).total_seconds()
    spec: dict[str, Any] = {
        "shift": str(shift.pk),
        "station": str(station.pk),
        "employment": str(employment.pk),
        "segments": segments,
        "duration_s": round(min(max(remaining, 1.0), MAX_SHIFT_S), 3),
        "ai_label": station.ai_label_required,
        "outputs": outputs,
        "size": VIDEO_SIZE,
    }
    portrait = portrait_of(employment)
    if portrait:
        spec["inputs"] = {PORTRAIT_INPUT: portrait}
    else:
        spec["portrait"] = REFERENCE_PORTRAIT
    return spec


def _request_stream(shift: Shift, attempt: int, now: dt.datetime) -> Workload:
    """Ask inference for the shift's stream, attempt `attempt`; asking again for the same
    attempt returns the first workload. InferenceError / StageError say why it cannot be."""
    spec = live_spec(shift, now)
    parse_script(1, spec["segments"])  # a script the worker would refuse fails here, with words
    reservation = shift.reservation
    workload, _created = inference.submit(
        shift.organization,
        kind=WorkloadKind.LIVE,
        spec=spec,
        gpu_class=reservation.gpu_class if reservation else None,
        idempotency_key=f"shift:{shift.pk}:{attempt}",
        reservation=reservation,
        platform=True,
    )
    return workload


def _go(
    actor: Actor, shift: Shift, now: dt.datetime, *, verb: str | None = None, note: str = ""
) -> bool:
    """Start a planned or taken-over shift: request its stream (live) or open the desk. `note`
    (an operator's words) goes before the reason."""
    if not is_live(shift):
        opened = _("The desk is open.")
        reason = f"{note} {opened}".strip()
        return _move(actor, shift, S.ON_DUTY, "on_duty", reason, verb=verb, on_duty_at=now)
    attempt = shift.attempts + 1
    try:
        workload = _request_stream(shift, attempt, now)
    except (inference.InferenceError, StageError) as error:
        reason = _("Its stream could not be requested: %(error)s") % {"error": error}
        if actor is SYSTEM and shift.state == S.PLANNED:
            # The tick, at the shift's time: there is no one to answer, so the shift says it.
            return _finish(actor, shift, S.FAILED, "stream_refused", reason, now=now)
        # A person asked: they are told, and the shift is left as it was.
        raise ConflictError("stream_refused", reason) from error
    reason = _("Stream requested (attempt %(n)s); waiting for a worker to put it on air.") % {
        "n": attempt
    }
    reason = f"{note} {reason}".strip()
    return _move(
        actor, shift, S.WARMING, "warming", reason, verb=verb, attempts=attempt, workload=workload
    )


def _follow(shift: Shift, now: dt.datetime) -> bool:
    """Follow the shift's stream: on air → on duty; done → ended; failed → try again or fail."""
    workload = shift.workload
    if workload is None or shift.state not in FOLLOWING:
        return False
    if workload.state == WorkloadState.RUNNING:
        if shift.state != S.WARMING:
            return False
        reason = _("On air.")
        return _move(SYSTEM, shift, S.ON_DUTY, "on_air", reason, on_duty_at=shift.on_duty_at or now)
    if workload.state == WorkloadState.SUCCEEDED:
        return _finish(SYSTEM, shift, S.ENDED, "completed", _("The stream ended."), now=now)
    if workload.state == WorkloadState.CANCELLED:
        reason = _("Its stream was cancelled: %(why)s") % {"why": workload.reason}
        return _finish(SYSTEM, shift, S.ENDED, "stream_cancelled", reason, now=now)
    if workload.state in ASKED_AGAIN:
        return _retry_or_fail(shift, workload, now)
    return False


def _retry_or_fail(shift: Shift, workload: Workload, now: dt.datetime) -> bool:
    failures = (
        Workload.objects.for_organization(shift.organization)
        .filter(idempotency_key__startswith=f"shift:{shift.pk}:", state__in=FAILED_STREAM)
        .count()
    )
    why = workload.reason or workload.get_state_display()
    preempted = workload.state == WorkloadState.PREEMPTED
    if (failures >= MAX_ATTEMPTS and not preempted) or now >= shift.ends_at:
        reason = _("The stream failed %(n)s time(s); the last time: %(why)s") % {
            "n": failures,
            "why": why,
        }
        if now >= shift.ends_at:
            too_late = _("No time was left in the shift to try again.")
            reason = f"{reason} {too_late}"
        return _finish(SYSTEM, shift, S.FAILED, "stream_failed", reason, now=now)
    attempt = shift.attempts + 1
    try:
        retry = _request_stream(shift, attempt, now)
    except (inference.InferenceError, StageError) as error:
        reason = _("The stream failed (%(why)s) and could not be requested again: %(error)s") % {
            "why": why,
            "error": error,
        }
        return _finish(SYSTEM, shift, S.FAILED, "stream_refused", reason, now=now)
    reason = _("The stream failed (%(why)s); trying again, attempt %(n)s of %(max)s.") % {
        "why": why,
        "n": failures + 1,
        "max": MAX_ATTEMPTS,
    }
    if preempted:
        reason = _("The stream was preempted (%(why)s); it is asked for again.") % {"why": why}
    return _move(SYSTEM, shift, S.WARMING, "retrying", reason, attempts=attempt, workload=retry)


def _may_work(shift: Shift) -> tuple[str, str] | None:
    """Why the shift cannot start now (reason code and words), or None when it can."""
    if shift.employment.status != EmploymentStatus.ACTIVE:
        return "employment_not_active", _("The digital employee is %(status)s, not active.") % {
            "status": str(EmploymentStatus(shift.employment.status).label).lower()
        }
    if not shift.station.is_active:
        return "station_inactive", _("The station is switched off.")
    return None


def _advance(shift: Shift, now: dt.datetime) -> str | None:
    """Make a shift's due moves at `now` (its row locked by the caller); the state it moved to,
    or None when nothing was due. Reasons are written in the organization's language."""
    before = (shift.state, shift.attempts)
    with translation.override(shift.organization.locale):
        _step(shift, now)
    return str(shift.state) if (shift.state, shift.attempts) != before else None


def _off_air_reason(shift: Shift) -> tuple[str, str] | None:
    """Why a shift under way must end now (its hire suspended or let go, its station switched
    off), as `stand_down` would have ended it; None when it may go on."""
    status = shift.employment.status
    if status != EmploymentStatus.ACTIVE:
        return f"employment_{status}", _("The digital employee was %(status)s.") % {
            "status": str(EmploymentStatus(status).label).lower()
        }
    if not shift.station.is_active:
        return "station_inactive", _("The station was switched off.")
    return None


def _step(shift: Shift, now: dt.datetime) -> None:
    if shift.state in FOLLOWING:
        _follow(shift, now)
    stopped = _off_air_reason(shift) if shift.state in STARTED else None
    if stopped is not None:  # the signal that stands it down (`stand_down`) was lost
        _finish(SYSTEM, shift, S.ENDED, *stopped, now=now)
        return
    if shift.state in STARTED and shift.ends_at <= now:
        if shift.state == S.WARMING and shift.on_duty_at is None:
            reason = _("The shift's time ran out before its stream came on air.")
            _finish(SYSTEM, shift, S.MISSED, "never_on_air", reason, now=now)
        else:
            _finish(SYSTEM, shift, S.ENDED, "time_up", _("The shift's time is up."), now=now)
        return
    if shift.state == S.PLANNED and shift.ends_at <= now:
        reason = _("The shift's time passed before it could start.")
        _finish(SYSTEM, shift, S.MISSED, "never_started", reason, now=now)
        return
    late = shift.starts_at + missed_after() <= now
    if shift.state in (S.PLANNED, S.WARMING) and is_live(shift) and not shift.on_duty_at and late:
        waiting = shift.workload.reason if shift.workload else ""
        reason = _("Not on duty %(minutes)s minutes after the start.") % {
            "minutes": settings.SCHEDULING_MISSED_AFTER_MINUTES
        }
        _finish(SYSTEM, shift, S.MISSED, "late", f"{reason} {waiting}".strip(), now=now)
        return
    if shift.state == S.PLANNED and shift.starts_at - lead_of(shift) <= now:
        refusal = _may_work(shift)
        if refusal is None:
            _go(SYSTEM, shift, now)
        else:
            code, why = refusal
            called_off = _("The shift is called off.")
            reason = f"{why} {called_off}"
            _finish(SYSTEM, shift, S.CANCELLED, code, reason, now=now)


# --- The tick ------------------------------------------------------------------------------------


def due(now: dt.datetime) -> Q:
    """Shifts with something to do at `now`: to start (a live one within its warm-up), to end,
    missed, whose stream changed unnoticed, or under way for a hire or at a station that has
    stopped (both lost signals)."""
    live = Q(station__kind=LIVE)
    warms_up = live & Q(schedule__always_on=False)
    start = Q(state=S.PLANNED) & (
        (warms_up & Q(starts_at__lte=now + warmup())) | (~warms_up & Q(starts_at__lte=now))
    )
    over = Q(state__in=(S.PLANNED, *STARTED), ends_at__lte=now)
    late = (
        Q(
            state__in=(S.PLANNED, S.WARMING),
            on_duty_at__isnull=True,
            starts_at__lte=now - missed_after(),
        )
        & live
    )
    stream_changed = Q(state__in=FOLLOWING, workload__state__in=FINAL_STATES) | Q(
        state=S.WARMING, workload__state=WorkloadState.RUNNING
    )
    stopped = Q(state__in=STARTED) & (
        ~Q(employment__status=EmploymentStatus.ACTIVE) | Q(station__is_active=False)
    )
    return start | over | late | stream_changed | stopped


def _locked(queryset: QuerySet[Shift], *, skip_locked: bool = False) -> QuerySet[Shift]:
    return queryset.select_for_update(skip_locked=skip_locked, of=("self",)).select_related(
        "organization",
        "station",
        "schedule",
        "employment__avatar",
        "employment__avatar_version",
        "workload",
        "reservation",
    )


@dataclasses.dataclass
class TickResult:
    shifts: int = 0  # due shifts this tick locked and looked at
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)  # state moved to: count


def tick(now: dt.datetime | None = None, *, batch: int = BATCH) -> TickResult:
    """Advance every due shift once. Each batch is locked with SKIP LOCKED in its own
    transaction: a shift another tick holds is its business, and once moved it is no longer due
    (compare-and-set), so a shift is never started twice. A batch that fails is retried shift by
    shift, so one bad row does not hold up the others."""
    now = now or timezone.now()
    result = TickResult()
    after: uuid.UUID | None = None
    while True:
        try:
            with transaction.atomic():
                shifts = list(_locked(_due(now, after), skip_locked=True)[:batch])
                for shift in shifts:
                    _count(result, _advance(shift, now))
            ids = [shift.pk for shift in shifts]
        except Exception:
            logger.exception("shift_batch_failed")
            ids = list(_due(now, after).values_list("pk", flat=True)[:batch])
            for pk in ids:
                _advance_alone(pk, now, result)
        if len(ids) < batch:
            return result
        after = ids[-1]


def _due(now: dt.datetime, after: uuid.UUID | None) -> QuerySet[Shift]:
    shifts = Shift.objects.unscoped_dangerously().filter(due(now))
    return (shifts.filter(pk__gt=after) if after else shifts).order_by("pk")


def _advance_alone(pk: uuid.UUID, now: dt.datetime, result: TickResult) -> None:
    try:
        with transaction.atomic():
            shift = _locked(_due(now, None).filter(pk=pk), skip_locked=True).first()
            if shift is not None:
                _count(result, _advance(shift, now))
    except Exception:
        logger.exception("shift_advance_failed", shift=str(pk))


def _count(result: TickResult, outcome: str | None) -> None:
    result.shifts += 1
    if outcome:
        result.outcomes[outcome] += 1


# --- Reacting to other packages ------------------------------------------------------------------


def follow_workload(organization_id: uuid.UUID, workload_id: uuid.UUID) -> bool:
    """A live workload changed: move the shift it streams, if it still streams it."""
    with transaction.atomic():
        shift = (
            _locked(Shift.objects.unscoped_dangerously())
            .filter(organization_id=organization_id, workload_id=workload_id, state__in=FOLLOWING)
            .first()
        )
        if shift is None:
            return False
        return _advance(shift, timezone.now()) is not None


def stand_down(organization_id: uuid.UUID, employment_id: uuid.UUID, to_status: str) -> int:
    """A hire was suspended or let go: its planned shifts are cancelled and the ones under way
    end now (a suspended avatar, e.g. one whose consent lapsed, must not stay on air)."""
    code = f"employment_{to_status}"
    now = timezone.now()
    with transaction.atomic():
        shifts = _locked(Shift.objects.unscoped_dangerously()).filter(
            organization_id=organization_id,
            employment_id=employment_id,
            state__in=(S.PLANNED, *STARTED),
        )
        changed = 0
        for shift in shifts.order_by("starts_at"):
            to = S.CANCELLED if shift.state == S.PLANNED else S.ENDED
            with translation.override(shift.organization.locale):
                reason = _("The digital employee was %(status)s.") % {
                    "status": str(EmploymentStatus(to_status).label).lower()
                }
                changed += _finish(SYSTEM, shift, to, code, reason, now=now)
    return changed


# --- Operators' actions --------------------------------------------------------------------------


def _lock(shift: Shift) -> Shift:
    return _locked(Shift.objects.for_organization(shift.organization)).get(pk=shift.pk)


def _reason(given: str, default: str) -> str:
    return (given or "").strip()[:500] or default


def _refuse_over(shift: Shift, now: dt.datetime) -> None:
    if shift.state in (S.ENDED, S.MISSED, S.FAILED, S.CANCELLED):
        raise ConflictError(
            "shift_over",
            _("This shift is over (%(state)s); nothing can start or stop it now.")
            % {"state": str(S(shift.state).label).lower()},
        )
    if shift.ends_at <= now:
        raise ConflictError(
            "shift_time_up", _("This shift's time is up; it ends at the next tick.")
        )


def _refuse_unable(shift: Shift) -> None:
    refusal = _may_work(shift)
    if refusal is not None:
        raise ConflictError(*refusal)


@transaction.atomic
def start_early(actor: Actor, shift: Shift, reason: str = "") -> Shift:
    """Start a planned shift now: request its stream (a live room) or open the desk."""
    shift, now = _lock(shift), timezone.now()
    _refuse_over(shift, now)
    if shift.state != S.PLANNED:
        raise ConflictError("illegal_transition", _("Only a planned shift can be started early."))
    _refuse_unable(shift)
    _go(actor, shift, now, verb="start_early", note=_reason(reason, ""))
    return shift


@transaction.atomic
def stop(actor: Actor, shift: Shift, reason: str = "") -> Shift:
    """End a shift now (a planned one is called off): its stream stops, its capacity is freed."""
    shift, now = _lock(shift), timezone.now()
    _refuse_over(shift, now)
    words = _reason(reason, _("Stopped by %(who)s.") % {"who": actor.label})
    to = S.CANCELLED if shift.state == S.PLANNED else S.ENDED
    _finish(actor, shift, to, "stopped", words, now=now, verb="stop")
    return shift


@transaction.atomic
def take_over(actor: Actor, shift: Shift, reason: str = "") -> Shift:
    """A person takes over: the avatar's stream stops (a desk stops taking visitors) while the
    shift goes on; `hand_back` gives it back to the avatar."""
    shift, now = _lock(shift), timezone.now()
    _refuse_over(shift, now)
    if shift.state not in FOLLOWING:
        raise ConflictError(
            "illegal_transition", _("Only a shift that is warming up or on duty can be taken over.")
        )
    words = _reason(reason, _("Taken over by %(who)s.") % {"who": actor.label})
    # A person on duty counts as on duty: the shift is not missed while they cover it.
    _move(actor, shift, S.TAKEN_OVER, "taken_over", words, on_duty_at=shift.on_duty_at or now)
    _cancel_stream(shift, words)
    return shift


@transaction.atomic
def hand_back(actor: Actor, shift: Shift, reason: str = "") -> Shift:
    """Give a taken-over shift back to the avatar: a new stream is requested (a desk reopens)."""
    shift, now = _lock(shift), timezone.now()
    _refuse_over(shift, now)
    if shift.state != S.TAKEN_OVER:
        raise ConflictError(
            "illegal_transition", _("Only a shift that a person took over can be handed back.")
        )
    _refuse_unable(shift)
    words = _reason(reason, _("Handed back by %(who)s.") % {"who": actor.label})
    _go(actor, shift, now, note=words)
    return shift
