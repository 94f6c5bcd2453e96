"""Operators on air: start a shift early, stop it, take over from the avatar and hand back.

Real: the HTTP API as the console calls it (session auth), the duty machine, inference's submit
and cancel, the capacity calendar and the audit log. Workload state changes are played with
inference's own `lifecycle.transition` (no worker runs here).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from inference.lifecycle import transition
from inference.models import Reservation, Workload, WorkloadState
from scheduling import duty, materialise
from scheduling import services as scheduling_services
from scheduling.models import Shift, ShiftState
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.scheduling import duty_world as world
from tests.support import database_rows

S = ShiftState
SOON = timezone.now().replace(microsecond=0) + dt.timedelta(hours=3)


def _url(shift, action: str = "") -> str:
    slug = shift.organization.slug
    return f"/api/v1/orgs/{slug}/shifts/{shift.pk}/" + (f"{action}/" if action else "")


@pytest.fixture
def operator(org_a, member_factory):
    return member_factory(org_a, Role.OPERATOR)


@pytest.fixture
def operator_client(operator, client_for):
    """The operator's client, once granted the stations passed to it."""

    def granted(*stations):
        for station in stations:
            scheduling_services.grant_station_operator(SYSTEM, station, operator)
        return client_for(operator)

    return granted


def _on_air(organization) -> Shift:
    shift = world.live_shift(organization, timezone.now() - dt.timedelta(minutes=1))
    duty.tick()
    workload = world.fresh(shift).workload
    transition(workload, WorkloadState.RUNNING, "running")
    duty.tick()
    shift = world.fresh(shift)
    assert shift.state == S.ON_DUTY
    return shift


def test_an_operator_starts_a_live_shift_early_and_its_stream_is_requested(
    org_a, operator, operator_client
):
    shift = world.live_shift(org_a, SOON)
    client = operator_client(shift.station)

    response = client.post(_url(shift, "start-early"), {"reason": "Rehearsal."}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["attempts"]) == ("warming", 1)
    assert body["reason"].startswith("Rehearsal. Stream requested")
    workload = Workload.objects.for_organization(org_a).get(pk=body["workload"])
    assert workload.idempotency_key == f"shift:{shift.pk}:1"
    # Times are shown in the organization's zone.
    zone = zoneinfo.ZoneInfo(org_a.time_zone)
    assert body["starts_at"] == SOON.astimezone(zone).isoformat()
    entry = AuditEntry.objects.for_organization(org_a).get(action="shift.start_early")
    assert entry.after["state"] == "warming"
    assert entry.actor_label == operator.user.email

    # Again: it is not planned any more.
    again = client.post(_url(shift, "start-early"), {}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "illegal_transition"


def test_a_desk_started_early_opens_at_once(org_a, api_a):
    shift = world.desk_shift(org_a, SOON)
    response = api_a.post(_url(shift, "start-early"), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "on_duty"
    assert response.json()["workload"] is None


def test_stopping_a_shift_on_air_cancels_its_stream_and_frees_its_capacity(org_a, api_a):
    shift = _on_air(org_a)

    response = api_a.post(
        _url(shift, "stop"), {"reason": "Power cut at the studio."}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["reason_code"]) == ("ended", "stopped")
    shift = world.fresh(shift)
    assert shift.reason == "Power cut at the studio."
    assert shift.workload.state == WorkloadState.CANCELLED
    assert not Reservation.objects.for_organization(org_a).filter(
        holder=materialise.holder_of(shift.pk)
    )
    # An ended shift stays ended.
    again = api_a.post(_url(shift, "stop"), {}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "shift_over")


def test_stopping_a_planned_shift_calls_it_off(org_a, api_a):
    shift = world.live_shift(org_a, SOON)
    response = api_a.post(_url(shift, "stop"), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert "Stopped by" in response.json()["reason"]
    assert not Workload.objects.for_organization(org_a).exists()
    # The tick leaves it alone.
    assert duty.tick(SOON).shifts == 0


def test_a_person_takes_over_and_hands_back_to_the_avatar(org_a, operator_client):
    shift = _on_air(org_a)
    client = operator_client(shift.station)
    first = shift.workload

    taken = client.post(
        _url(shift, "take-over"), {"reason": "A viewer needs a doctor."}, format="json"
    )
    assert taken.status_code == 200, taken.content
    assert (taken.json()["state"], taken.json()["reason"]) == (
        "taken_over",
        "A viewer needs a doctor.",
    )
    first.refresh_from_db()
    assert first.state == WorkloadState.CANCELLED  # the avatar stops speaking
    # The workload's cancellation does not end the shift: the person is on it.
    duty.tick()
    assert world.fresh(shift).state == S.TAKEN_OVER

    back = client.post(_url(shift, "hand-back"), {}, format="json")
    assert back.status_code == 200, back.content
    body = back.json()
    assert (body["state"], body["attempts"]) == ("warming", 2)
    assert body["workload"] != str(first.pk)
    assert "Handed back by" in body["reason"]
    actions = AuditEntry.objects.for_organization(org_a).filter(object_id=str(shift.pk))
    assert [a for a in actions.order_by("created_at", "id").values_list("action", flat=True)] == [
        "shift.warm",
        "shift.on_duty",
        "shift.take_over",
        "shift.hand_back",
    ]


def test_a_desk_taken_over_reopens_when_handed_back(org_a, api_a):
    shift = world.desk_shift(org_a, timezone.now() - dt.timedelta(hours=1))
    duty.tick()
    assert api_a.post(_url(shift, "take-over"), {}, format="json").json()["state"] == "taken_over"
    assert api_a.post(_url(shift, "hand-back"), {}, format="json").json()["state"] == "on_duty"


@pytest.mark.parametrize("action", ["take-over", "hand-back"])
def test_actions_from_the_wrong_state_are_refused_and_change_nothing(org_a, api_a, action):
    shift = world.live_shift(org_a, SOON)
    before = database_rows()
    response = api_a.post(_url(shift, action), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    assert database_rows() == before


def test_a_shift_of_a_suspended_hire_cannot_be_started(org_a, api_a):
    shift = world.live_shift(org_a, SOON)
    shift.employment.status = "suspended"
    shift.employment.save()
    before = database_rows()
    response = api_a.post(_url(shift, "start-early"), {}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "employment_not_active")
    assert database_rows() == before


def test_a_start_whose_stream_is_refused_is_answered_409_and_changes_nothing(org_a, api_a):
    """The person is told why (no live pool here); the shift stays planned, for the tick or a
    later try, instead of being failed for good."""
    shift = world.live_shift(org_a, SOON)
    world.live_pool().delete()
    before = database_rows()

    response = api_a.post(_url(shift, "start-early"), {}, format="json")

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "stream_refused"
    assert "No active pool runs live workloads" in response.json()["detail"]
    assert database_rows() == before
    assert world.fresh(shift).state == S.PLANNED


def test_bad_input_is_refused_with_the_field_and_changes_nothing(org_a, api_a):
    shift = world.live_shift(org_a, SOON)
    before = database_rows()
    unknown = api_a.post(_url(shift, "stop"), {"why": "typo"}, format="json")
    assert unknown.status_code == 400
    assert "why" in unknown.json()["fields"]
    too_long = api_a.post(_url(shift, "stop"), {"reason": "x" * 501}, format="json")
    assert too_long.status_code == 400
    assert "reason" in too_long.json()["fields"]
    assert database_rows() == before


def test_an_operator_acts_only_on_shifts_at_stations_granted_to_them(
    org_a, operator_client, client_for, member_factory
):
    mine = world.live_shift(org_a, SOON)
    theirs = world.live_shift(org_a, SOON)
    client = operator_client(mine.station)

    before = database_rows()
    refused = client.post(_url(theirs, "start-early"), {}, format="json")
    assert refused.status_code == 403
    assert "You do not operate this shift's station" in refused.json()["detail"]
    assert database_rows() == before
    # Reading is for every viewer.
    assert client.get(_url(theirs)).status_code == 200

    analyst = client_for(member_factory(org_a, Role.ANALYST))
    denied = analyst.post(_url(mine, "stop"), {}, format="json")
    assert denied.status_code == 403
    assert "Your role (Analyst) does not allow this" in denied.json()["detail"]

    assert client.post(_url(mine, "start-early"), {}, format="json").status_code == 200


def test_another_organizations_shift_is_not_found(org_a, org_b, api_b):
    shift = world.live_shift(org_a, SOON)
    before = database_rows()
    for action in ("", "start-early", "stop", "take-over", "hand-back"):
        path = f"/api/v1/orgs/{org_b.slug}/shifts/{shift.pk}/" + (f"{action}/" if action else "")
        response = api_b.post(path, {}, format="json") if action else api_b.get(path)
        assert response.status_code == 404, action
    assert database_rows() == before
