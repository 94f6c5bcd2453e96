"""Conversations counted as events: each recorded exchange is one `interaction` event (and a
hand-off also a `handoff` event), once, attributed to the session's station and employment.

Real: inference's `record_interaction` and its signal sent after commit, the receiver, the
sweep, event ingestion and the database the suite runs on (partitioned events on PostgreSQL).
Simulated: exchanges the sweep must find are stored directly, as if their signal were lost.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from inference import sessions
from ironbowl.analytics import conversations, partitions
from ironbowl.analytics.models import Event
from tests.analytics import usage_world as world


@pytest.fixture(autouse=True)
def _partitions_forgotten():
    # A test's rollback drops the partitions it made; the process must not believe in them.
    partitions.forget()
    yield
    partitions.forget()


def events(organization) -> dict[str, tuple]:
    return {
        event.client_event_id: (
            event.type,
            event.occurred_at,
            event.employment_id,
            event.station_id,
            event.session,
        )
        for event in Event.objects.for_organization(organization)
    }


def _record(session, *, handed_off: bool = False, question_id: str = "q1"):
    return sessions.record_interaction(
        session,
        question_id=question_id,
        question="Where do I renew my licence?",
        answer={"text": "Window 3.", "language": "en", "handed_off": handed_off},
        asked_at=timezone.now() - dt.timedelta(seconds=5),
        latency_ms=380,
    )


def test_a_recorded_exchange_is_counted_once_it_commits(org_a, django_capture_on_commit_callbacks):
    session = world.attributed_workload(org_a, kind="session")
    employment, station = (uuid.UUID(session.spec[key]) for key in ("employment", "station"))

    with django_capture_on_commit_callbacks(execute=True):
        answered = _record(session, question_id="q1")
        handed_off = _record(session, handed_off=True, question_id="q2")

    assert answered is not None and handed_off is not None
    where = (employment, station, str(session.pk))
    assert events(org_a) == {
        f"interaction:{answered.pk}": ("interaction", answered.asked_at, *where),
        f"interaction:{handed_off.pk}": ("interaction", handed_off.asked_at, *where),
        f"handoff:{handed_off.pk}": ("handoff", handed_off.asked_at, *where),
    }
    stored = Event.objects.for_organization(org_a).get(client_event_id=f"handoff:{handed_off.pk}")
    assert stored.properties == {"outcome": "handed_off", "language": "en", "latency_ms": 380}


def test_counting_again_by_receiver_or_sweep_stores_nothing_more(org_a):
    session = world.attributed_workload(org_a, kind="session")
    exchange = world.interaction(session, handed_off=True)

    first = conversations.count_interaction(org_a.pk, exchange.pk)
    again = conversations.count_interaction(org_a.pk, exchange.pk)
    swept = conversations.count_recent()

    assert (first.accepted, again.accepted, again.duplicates) == (2, 0, 2)
    assert (swept.accepted, swept.duplicates) == (0, 0)  # the sweep saw them and sent nothing
    assert set(events(org_a)) == {f"interaction:{exchange.pk}", f"handoff:{exchange.pk}"}


def test_the_sweep_counts_recent_exchanges_whose_signal_was_lost(org_a, org_b):
    now = timezone.now()
    session_a = world.attributed_workload(org_a, kind="session")
    session_b = world.workload(org_b, kind="session")
    lost_a = world.interaction(session_a, asked_at=now - dt.timedelta(minutes=30))
    lost_b = world.interaction(session_b, handed_off=True, asked_at=now - dt.timedelta(minutes=3))
    in_hand = world.interaction(session_a, asked_at=now - dt.timedelta(seconds=30))
    too_old = world.interaction(session_a, asked_at=now - dt.timedelta(hours=2))

    counted = conversations.count_recent(now)

    assert counted.accepted == 3
    assert set(events(org_a)) == {f"interaction:{lost_a.pk}"}
    assert set(events(org_b)) == {f"interaction:{lost_b.pk}", f"handoff:{lost_b.pk}"}
    # The last minutes are the receiver's; beyond the look-back the sweep does not go.
    missing = {f"interaction:{in_hand.pk}", f"interaction:{too_old.pk}"}
    assert missing.isdisjoint(events(org_a))
    assert conversations.count_recent(now).accepted == 0


@pytest.mark.parametrize(
    "spec",
    [{}, "foreign", {"employment": str(uuid.uuid4()), "station": "lobby"}],
    ids=["names nothing", "names another organization's", "names no such rows"],
)
def test_an_exchange_whose_session_names_nothing_of_the_organization_counts_unattributed(
    org_a, org_b, spec
):
    if spec == "foreign":
        employment_b, station_b = world.hire(org_b)
        spec = {"employment": str(employment_b.pk), "station": str(station_b.pk)}
    exchange = world.interaction(world.workload(org_a, spec, kind="session"))

    counted = conversations.count_interaction(org_a.pk, exchange.pk)

    assert (counted.accepted, counted.refused) == (1, 0)
    event = Event.objects.for_organization(org_a).get()
    assert (event.employment_id, event.station_id) == (None, None)
    assert not Event.objects.for_organization(org_b).exists()


def test_an_interaction_of_another_organization_is_not_counted_by_its_id(org_a, org_b):
    """The receiver is told the organization with the id: the pair must match."""
    exchange = world.interaction(world.workload(org_a, kind="session"))

    counted = conversations.count_interaction(org_b.pk, exchange.pk)

    assert counted.accepted == 0
    assert not Event.objects.for_organization(org_a).exists()
    assert not Event.objects.for_organization(org_b).exists()
