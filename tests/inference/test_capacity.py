"""The capacity calendar: exact peaks, quotas, platform capacity and idempotent reservations.

Real: the database and the sweep. Nothing simulated.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import capacity
from inference.models import Reservation
from tests.factories import OrganizationFactory

T0 = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)


def _at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 120), st.integers(1, 5)), max_size=25),
    st.integers(0, 250),
    st.integers(1, 120),
)
@settings(max_examples=200, deadline=None)
def test_peak_equals_a_minute_by_minute_count(intervals, start, length):
    rows = [(_at(s), _at(s + d), n) for s, d, n in intervals]
    window = (_at(start), _at(start + length))
    brute = max(
        (sum(n for s, e, n in rows if s <= _at(m) < e) for m in range(start, start + length)),
        default=0,
    )
    assert capacity.peak(rows, *window) == brute


def test_back_to_back_windows_do_not_overlap():
    rows = [(_at(0), _at(60), 2), (_at(60), _at(120), 2)]
    assert capacity.peak(rows, _at(0), _at(120)) == 2


@pytest.fixture
def org(db):
    return OrganizationFactory(plan="trial")  # 2 h100 slots


def test_reserve_within_quota_then_refuse_with_the_reason(org, pool):
    first, answer = capacity.reserve(
        org, gpu_class="h100", slots=2, starts_at=_at(0), ends_at=_at(60), holder="shift:a"
    )
    assert answer.ok and first is not None
    second, answer = capacity.reserve(
        org, gpu_class="h100", slots=1, starts_at=_at(30), ends_at=_at(90), holder="shift:b"
    )
    assert second is None
    assert (answer.ok, answer.reason_code, answer.organization_peak) == (False, "quota", 2)
    assert "allows 2 h100 slots" in answer.reason
    # After the first ends there is room again.
    _later, answer = capacity.reserve(
        org, gpu_class="h100", slots=2, starts_at=_at(60), ends_at=_at(90), holder="shift:c"
    )
    assert answer.ok


def test_platform_capacity_binds_across_organizations(pool, db):
    pool.maximum = 1  # 4 h100 slots on the whole platform
    pool.save()
    big = [OrganizationFactory(plan="enterprise") for _ in range(2)]
    _r, answer = capacity.reserve(
        big[0], gpu_class="h100", slots=3, starts_at=_at(0), ends_at=_at(60), holder="s1"
    )
    assert answer.ok
    _r, answer = capacity.reserve(
        big[1], gpu_class="h100", slots=2, starts_at=_at(0), ends_at=_at(60), holder="s2"
    )
    assert (answer.ok, answer.reason_code, answer.class_capacity) == (False, "capacity", 4)


def test_reserving_again_is_idempotent_and_moving_rechecks(org, pool):
    capacity.reserve(
        org, gpu_class="h100", slots=2, starts_at=_at(0), ends_at=_at(60), holder="shift:x"
    )
    capacity.reserve(
        org, gpu_class="h100", slots=2, starts_at=_at(0), ends_at=_at(60), holder="shift:x"
    )
    assert Reservation.objects.for_organization(org).count() == 1
    # Moving its own window does not collide with itself.
    moved, answer = capacity.reserve(
        org, gpu_class="h100", slots=2, starts_at=_at(30), ends_at=_at(90), holder="shift:x"
    )
    assert answer.ok and moved is not None
    assert (moved.starts_at, moved.ends_at) == (_at(30), _at(90))
    assert capacity.release(org, "shift:x") is True
    assert capacity.release(org, "shift:x") is False


def test_bad_windows_are_refused_and_nothing_is_written(org, pool):
    for kwargs in (
        {"gpu_class": "h100", "slots": 1, "starts_at": _at(60), "ends_at": _at(0)},
        {"gpu_class": "tpu", "slots": 1, "starts_at": _at(0), "ends_at": _at(60)},
        {"gpu_class": "h100", "slots": 0, "starts_at": _at(0), "ends_at": _at(60)},
    ):
        reservation, answer = capacity.reserve(org, holder="bad", **kwargs)
        assert reservation is None and answer.reason_code == "invalid"
    assert not Reservation.objects.for_organization(org).exists()


def test_calendar_shows_peaks_per_step_for_an_organization_and_the_platform(org, pool):
    other = OrganizationFactory(plan="standard")
    capacity.reserve(org, gpu_class="h100", slots=1, starts_at=_at(0), ends_at=_at(90), holder="a")
    capacity.reserve(
        other, gpu_class="h100", slots=3, starts_at=_at(60), ends_at=_at(120), holder="b"
    )
    mine = capacity.calendar("h100", _at(0), _at(180), dt.timedelta(hours=1), org)
    assert [(s.reserved, s.available) for s in mine] == [(1, 1), (1, 1), (0, 2)]
    platform = capacity.calendar("h100", _at(0), _at(180), dt.timedelta(hours=1))
    assert [s.reserved for s in platform] == [1, 4, 0]
    assert platform[1].available == pool.capacity_slots - 4
