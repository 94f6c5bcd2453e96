"""When shifts fall: RRULEs in a time zone with daylight-saving changes, 24/7 days, holidays,
make-up working days and exception dates, and the rules a schedule refuses. Pure functions of
plain values (scheduling.recurrence): nothing is simulated."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import zoneinfo

import pytest
from dateutil.rrule import rrulestr

from scheduling import recurrence
from scheduling.recurrence import Timing
from tenants.errors import DomainError

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def weekly(rule: str = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", **fields) -> Timing:
    values = {
        "rrule": rule,
        "start_time": dt.time(19, 0),
        "duration_minutes": 120,
        "always_on": False,
        "valid_from": dt.date(2026, 1, 1),
        **fields,
    }
    return Timing(**values)


def around_the_clock(**fields) -> Timing:
    values = {
        "rrule": "",
        "start_time": None,
        "duration_minutes": None,
        "always_on": True,
        "valid_from": dt.date(2026, 1, 1),
        **fields,
    }
    return Timing(**values)


def test_a_1900_shift_stays_1900_local_across_the_spring_change_in_new_york():
    # The clocks go forward on Sunday 8 March 2026 in New York.
    found = recurrence.occurrences(
        weekly("FREQ=DAILY"), NEW_YORK, _utc(2026, 3, 6), _utc(2026, 3, 11)
    )
    local = [o.starts_at.astimezone(NEW_YORK) for o in found]
    assert [t.hour for t in local] == [19] * len(local)
    assert [t.date() for t in local][:5] == [dt.date(2026, 3, d) for d in range(5, 10)]
    assert found[2].starts_at == _utc(2026, 3, 8, 0)  # 19:00 EST on the 7th
    assert found[3].starts_at == _utc(2026, 3, 8, 23)  # 19:00 EDT on the 8th
    assert {o.ends_at - o.starts_at for o in found} == {dt.timedelta(hours=2)}


def test_a_24_7_day_lasts_23_hours_in_spring_and_25_in_autumn_in_berlin():
    spring = recurrence.occurrences(
        around_the_clock(), BERLIN, _utc(2026, 3, 28, 12), _utc(2026, 3, 30, 12)
    )
    autumn = recurrence.occurrences(
        around_the_clock(), BERLIN, _utc(2026, 10, 24, 12), _utc(2026, 10, 26, 12)
    )
    assert [o.ends_at - o.starts_at for o in spring] == [
        dt.timedelta(hours=24),
        dt.timedelta(hours=23),
        dt.timedelta(hours=24),
    ]
    assert [o.ends_at - o.starts_at for o in autumn] == [
        dt.timedelta(hours=24),
        dt.timedelta(hours=25),
        dt.timedelta(hours=24),
    ]
    for days in (spring, autumn):
        assert all(a.ends_at == b.starts_at for a, b in itertools.pairwise(days))
        assert {o.starts_at.astimezone(BERLIN).time() for o in days} == {dt.time(0, 0)}


def test_a_start_in_the_spring_gap_moves_forward_and_one_in_the_repeated_hour_takes_the_first():
    gap = recurrence.occurrences(
        weekly("FREQ=DAILY", start_time=dt.time(2, 30), duration_minutes=60),
        BERLIN,
        _utc(2026, 3, 29, 0),
        _utc(2026, 3, 29, 3),
    )
    assert [o.starts_at.astimezone(BERLIN).time() for o in gap] == [dt.time(3, 30)]
    repeated = recurrence.occurrences(
        weekly("FREQ=DAILY", start_time=dt.time(2, 30), duration_minutes=60),
        BERLIN,
        _utc(2026, 10, 25, 0),
        _utc(2026, 10, 25, 3),
    )
    assert [o.starts_at for o in repeated] == [_utc(2026, 10, 25, 0, 30)]  # CEST, the first 2:30


CHINA_FEBRUARY = {
    dt.date(2026, 2, 14): "workday",  # a Saturday worked for the Spring Festival
    **{dt.date(2026, 2, day): "holiday" for day in range(15, 24)},
}


def _local_days(timing: Timing, days=CHINA_FEBRUARY) -> list[dt.date]:
    found = recurrence.occurrences(timing, SHANGHAI, _utc(2026, 2, 11), _utc(2026, 2, 26), days)
    return [o.starts_at.astimezone(SHANGHAI).date() for o in found]


def test_holidays_are_skipped_and_a_make_up_saturday_adds_a_weekday_shift():
    days = _local_days(weekly())
    assert dt.date(2026, 2, 14) in days  # the make-up Saturday
    assert not any(dt.date(2026, 2, 15) <= day <= dt.date(2026, 2, 23) for day in days)
    assert days == [
        dt.date(2026, 2, 11),
        dt.date(2026, 2, 12),
        dt.date(2026, 2, 13),
        dt.date(2026, 2, 14),
        dt.date(2026, 2, 24),
        dt.date(2026, 2, 25),
    ]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;BYDAY=MO,WE,FR",  # some weekdays: which one the Saturday replaces is unknown
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TU,WE,TH,FR",
        "FREQ=DAILY",  # already every day
    ],
)
def test_a_make_up_day_adds_nothing_to_rules_that_do_not_run_on_exactly_every_weekday(rule):
    without = _local_days(weekly(rule), {})
    with_days = _local_days(weekly(rule))
    holidays = {day for day, kind in CHINA_FEBRUARY.items() if kind == "holiday"}
    assert with_days == [day for day in without if day not in holidays]


def test_an_exception_date_drops_a_shift_even_a_make_up_one():
    days = _local_days(weekly(exdates=frozenset({dt.date(2026, 2, 14), dt.date(2026, 2, 12)})))
    assert dt.date(2026, 2, 14) not in days
    assert dt.date(2026, 2, 12) not in days
    assert dt.date(2026, 2, 13) in days


def test_the_validity_range_is_inclusive_and_count_is_respected():
    bounded = weekly("FREQ=DAILY", valid_until=dt.date(2026, 1, 3))
    found = recurrence.occurrences(bounded, SHANGHAI, _utc(2025, 12, 30), _utc(2026, 1, 10))
    assert [o.starts_at.astimezone(SHANGHAI).date() for o in found] == [
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 2),
        dt.date(2026, 1, 3),
    ]
    counted = weekly("FREQ=DAILY;COUNT=2")
    assert len(recurrence.occurrences(counted, SHANGHAI, _utc(2026, 1, 5), _utc(2026, 1, 9))) == 0
    assert len(recurrence.occurrences(counted, SHANGHAI, _utc(2025, 12, 1), _utc(2026, 1, 9))) == 2


def test_an_old_schedule_expands_in_the_same_phase_as_from_its_first_day():
    # Every other week: starting the expansion near the window must not shift the weeks.
    rule = weekly("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", valid_from=dt.date(2020, 1, 7))
    found = recurrence.occurrences(rule, SHANGHAI, _utc(2026, 3, 1), _utc(2026, 4, 1))
    wall = dt.datetime(2020, 1, 7, 19, 0)  # noqa: DTZ001  # rules run on local wall-clock time
    reference = rrulestr("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", dtstart=wall).between(
        wall.replace(year=2026, month=3, day=1), wall.replace(year=2026, month=4, day=1)
    )
    assert [o.starts_at.astimezone(SHANGHAI).replace(tzinfo=None) for o in found] == reference


@pytest.mark.parametrize(
    ("rule", "code", "words"),
    [
        ("FREQ=MINUTELY", "rrule_too_frequent", "at most hourly"),
        ("FREQ=SECONDLY;INTERVAL=30", "rrule_too_frequent", "at most hourly"),
        ("FREQ=DAILY;COUNT=100000", "rrule_out_of_bounds", "COUNT"),
        ("FREQ=DAILY;COUNT=0", "rrule_out_of_bounds", "COUNT"),
        ("FREQ=DAILY;INTERVAL=-1", "rrule_out_of_bounds", "INTERVAL"),
        ("FREQ=DAILY;UNTIL=20270101T000000Z", "invalid_rrule", "valid_until"),
        ("DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", "invalid_rrule", "valid_from"),
        ("FREQ=DAILY;BYHOUR=9,14", "invalid_rrule", "start_time"),
        ("FREQ=DAILY;BYDAY=XX", "invalid_rrule", "RFC 5545"),
        ("FREQ=FORTNIGHTLY", "invalid_rrule", "FREQ must be"),
        ("BYDAY=MO", "invalid_rrule", "needs FREQ"),
        ("FREQ=DAILY;FREQ=WEEKLY", "invalid_rrule", "twice"),
        ("FREQ=DAILY;X-NAME=1", "invalid_rrule", "not a recurrence rule part"),
        ("every day at seven", "invalid_rrule", "NAME=VALUE"),
        ("", "invalid_rrule", "required"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "invalid_rrule", "never occurs"),
        ("FREQ=YEARLY;BYMONTH=6;BYDAY=6MO", "rrule_never", "no occurrence"),
        ("FREQ=HOURLY;BYDAY=MO;BYSETPOS=2", "invalid_rrule", "monthly and yearly"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=40", "rrule_out_of_bounds", "BYSETPOS"),
    ],
)
def test_a_bad_rule_is_refused_with_a_reason(rule, code, words):
    with pytest.raises(DomainError) as refused:
        recurrence.validate(weekly(rule), SHANGHAI)
    assert refused.value.code == code
    assert refused.value.field == "rrule"
    assert words in str(refused.value.detail)


def test_the_rule_must_occur_within_the_validity_range():
    # 1 February 2026 is a Sunday: no Monday in a one-day range.
    single_day = weekly("FREQ=WEEKLY;BYDAY=MO", valid_until=dt.date(2026, 2, 1))
    with pytest.raises(DomainError) as refused:
        recurrence.validate(
            dataclasses.replace(single_day, valid_from=dt.date(2026, 2, 1)), SHANGHAI
        )
    assert refused.value.code == "rrule_never"


@pytest.mark.parametrize(
    ("timing", "field", "code"),
    [
        (weekly(valid_until=dt.date(2025, 12, 31)), "valid_until", "ends_before_start"),
        (weekly(start_time=None), "start_time", "required"),
        (weekly(duration_minutes=None), "duration_minutes", "invalid_duration"),
        (weekly(duration_minutes=24 * 60 + 1), "duration_minutes", "invalid_duration"),
        (around_the_clock(rrule="FREQ=DAILY"), "rrule", "always_on_fields"),
        (
            Timing("", dt.time(9), None, True, dt.date(2026, 1, 1)),
            "start_time",
            "always_on_fields",
        ),
    ],
    ids=["end-before-start", "no-start", "no-length", "too-long", "24-7-rule", "24-7-time"],
)
def test_fields_that_cannot_make_shifts_are_refused(timing, field, code):
    with pytest.raises(DomainError) as refused:
        recurrence.validate(timing, SHANGHAI)
    assert (refused.value.field, refused.value.code) == (field, code)


def test_an_unknown_time_zone_is_a_clear_error():
    with pytest.raises(DomainError) as refused:
        recurrence.zone_of("Mars/Olympus_Mons")
    assert refused.value.code == "unknown_time_zone"
    assert "Mars/Olympus_Mons" in str(refused.value.detail)
