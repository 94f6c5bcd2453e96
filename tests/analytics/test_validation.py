"""Event validation alone (no database): the shapes a client may get wrong.

Real: `validation.clean` as ingestion calls it. Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from ironbowl.analytics.validation import Invalid, clean

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _visit(**fields) -> dict:
    return {"id": "e1", "type": "visit", "occurred_at": "2026-11-26T19:00:00+08:00", **fields}


@pytest.mark.parametrize("kind", [[], {}, ["visit"], 7, None])
def test_a_type_that_is_not_text_is_refused_by_field(kind):
    """A JSON list or object as the type is refused like any unknown type (it was a server
    error for the whole batch: a list cannot be looked up among the types)."""
    with pytest.raises(Invalid) as refused:
        clean(0, _visit(type=kind), NOW, 90)
    assert (refused.value.code, refused.value.field) == ("unknown_type", "type")


@pytest.mark.parametrize("station", [["x"], {"a": 1}, "not-an-id", 12])
def test_an_id_of_the_wrong_shape_is_refused(station):
    with pytest.raises(Invalid) as refused:
        clean(0, _visit(station=station), NOW, 90)
    assert (refused.value.code, refused.value.field) == ("invalid_id", "station")


def test_ids_are_parsed_the_same_however_often_they_repeat():
    """Parsed ids are remembered across events: a good id stays good, a bad one stays bad."""
    station = uuid.uuid4()
    for _ in range(3):
        assert clean(0, _visit(station=str(station)), NOW, 90).station_id == station
        with pytest.raises(Invalid):
            clean(0, _visit(station=str(station)[:-1]), NOW, 90)


@pytest.mark.parametrize(
    ("occurred_at", "code"),
    [
        ("2026-11-26T12:11:00+00:00", "in_future"),  # beyond the 10 minutes clocks may run ahead
        ("2026-08-27T11:59:00+00:00", "too_old"),  # 91 days back on a 90-day plan
        # 90 days back, 12:00, plus the hour kept for the rollups: 13:00 is the first hour
        # wholly kept when a rollup runs; a moment before it is refused.
        ("2026-08-28T12:59:59+00:00", "too_old"),
    ],
)
def test_times_outside_the_window_are_refused(occurred_at, code):
    with pytest.raises(Invalid) as refused:
        clean(0, _visit(occurred_at=occurred_at), NOW, 90)
    assert refused.value.code == code


def test_times_at_the_window_edges_are_kept():
    """The future edge is ten minutes ahead; the past edge is the first whole hour that starts
    an hour inside the 90 days (a rollup then counts a late event before its hour expires)."""
    for occurred_at in ("2026-11-26T12:10:00+00:00", "2026-08-28T13:00:00+00:00"):
        assert clean(0, _visit(occurred_at=occurred_at), NOW, 90).occurred_at.tzinfo is dt.UTC
