"""An organization's capacity through the API: figures now, the calendar ahead, reservations.

Real: the views, inference.capacity (quota from the plan, the platform's capacity from the pools),
the database, the audit log. Simulated: workload states and usage reports are written directly,
as the orchestrator and the worker protocol would leave them.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from inference import capacity, services
from inference.models import Reservation, UsageReport, Workload
from tenants.models import AuditEntry
from tests.support import database_rows


def _url(org, rest: str) -> str:
    return f"/api/v1/orgs/{org.slug}/{rest}"


def _reserve(org, slots: int, starts_at: dt.datetime, hours: int = 2) -> Reservation:
    reservation, answer = capacity.reserve(
        org,
        gpu_class="h100",
        slots=slots,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=hours),
        holder=f"shift:{uuid.uuid4()}",
    )
    assert answer.ok and reservation is not None, answer
    return reservation


def test_capacity_shows_quota_use_reservations_and_gpu_hours(org_a, api_a, pool):
    running, _ = services.submit(org_a, kind="live", spec={}, slots=2)
    services.submit(org_a, kind="live", spec={}, slots=3)  # queued: not in use
    Workload.objects.for_organization(org_a).filter(id=running.id).update(state="running")
    now = timezone.now()
    _reserve(org_a, 1, now - dt.timedelta(hours=1))  # holds now
    _reserve(org_a, 1, now + dt.timedelta(days=1))  # later: not now
    UsageReport.objects.create(
        organization=org_a, report_id="r1", workload=running, gpu_class="h100", gpu_seconds=5400
    )

    body = api_a.get(_url(org_a, "capacity/")).json()

    classes = {row["gpu_class"]: row for row in body["classes"]}
    assert classes["h100"] == {"gpu_class": "h100", "quota": 2, "in_use": 2, "reserved_now": 1}
    assert classes["cpu"] == {"gpu_class": "cpu", "quota": 8, "in_use": 0, "reserved_now": 0}
    assert body["gpu_hours_used"] == pytest.approx(1.5)
    assert body["gpu_hours_limit"] == 50


def test_the_calendar_shows_peaks_per_step_in_the_organizations_zone(org_a, api_a, pool):
    org_a.time_zone = "Asia/Shanghai"
    org_a.save()
    ten = dt.datetime(2030, 5, 6, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    _reserve(org_a, 2, ten)  # 10:00-12:00 local

    response = api_a.get(
        _url(org_a, "capacity/calendar/"),
        {"gpu_class": "h100", "start": "2030-05-06T09:00", "end": "2030-05-06T13:00"},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["start"] == "2030-05-06T09:00:00+08:00"
    assert body["step"] == 3600
    (h100,) = body["classes"]
    assert h100["limit"] == 2
    assert [(s["starts_at"][11:16], s["reserved"], s["available"]) for s in h100["steps"]] == [
        ("09:00", 0, 2),
        ("10:00", 2, 0),
        ("11:00", 2, 0),
        ("12:00", 0, 2),
    ]
    assert h100["steps"][0]["starts_at"].endswith("+08:00")


def test_the_calendar_without_a_class_covers_the_plans_classes(org_a, api_a, pool):
    body = api_a.get(_url(org_a, "capacity/calendar/")).json()

    assert [c["gpu_class"] for c in body["classes"]] == ["h100", "l4", "cpu"]
    assert all(len(c["steps"]) == 24 for c in body["classes"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"gpu_class": "tpu"}, "gpu_class"),
        ({"start": "2030-05-06T10:00Z", "end": "2030-05-06T09:00Z"}, "end"),
        ({"step": "0"}, "step"),
        ({"step": "-60"}, "step"),
        ({"start": "2030-05-01T00:00Z", "end": "2030-06-02T00:00Z"}, "end"),
        ({"start": "2030-05-01T00:00Z", "end": "2030-05-03T00:00Z", "step": "60"}, "step"),
        ({"start": "yesterday"}, "start"),
        ({"start": "0001-01-01T00:00:00+05:00"}, "start"),
    ],
)
def test_a_bad_calendar_query_says_what_is_wrong(org_a, api_a, query, field):
    response = api_a.get(_url(org_a, "capacity/calendar/"), query)

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    assert response.json()["fields"][field][0]["message"]


def test_reserving_and_releasing_a_window(org_a, api_a, pool):
    response = api_a.post(
        _url(org_a, "reservations/"),
        {
            "gpu_class": "h100",
            "slots": 2,
            "starts_at": "2030-05-06T09:00:00Z",
            "ends_at": "2030-05-06T17:00:00Z",
            "purpose": "Open day",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["holder"].startswith("api:")
    assert (body["slots"], body["purpose"]) == (2, "Open day")
    listed = api_a.get(_url(org_a, "reservations/"), {"gpu_class": "h100"}).json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]

    deleted = api_a.delete(_url(org_a, f"reservations/{body['id']}/"))

    assert deleted.status_code == 204
    assert not Reservation.objects.for_organization(org_a).exists()
    actions = AuditEntry.objects.for_organization(org_a).values_list("action", flat=True)
    assert sorted(actions) == ["reservation.create", "reservation.release"]


def test_a_reservation_over_quota_answers_409_with_the_reason(org_a, api_a, pool):
    _reserve(org_a, 1, dt.datetime(2030, 5, 6, 12, tzinfo=dt.UTC))
    before = database_rows()

    response = api_a.post(
        _url(org_a, "reservations/"),
        {
            "gpu_class": "h100",
            "slots": 2,
            "starts_at": "2030-05-06T09:00:00Z",
            "ends_at": "2030-05-06T17:00:00Z",
        },
        format="json",
    )

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "quota"
    assert "2" in response.json()["detail"] and "1" in response.json()["detail"]
    assert database_rows() == before


def test_a_reservation_beyond_the_platforms_capacity_answers_409(org_a, api_a, pool):
    org_a.plan = "standard"  # 16 h100 slots; the platform has 3 workers x 4
    org_a.save()
    before = database_rows()

    response = api_a.post(
        _url(org_a, "reservations/"),
        {
            "gpu_class": "h100",
            "slots": 13,
            "starts_at": "2030-05-06T09:00:00Z",
            "ends_at": "2030-05-06T17:00:00Z",
        },
        format="json",
    )

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "capacity"
    # It says the window is full, and nothing of other organizations' reservations.
    assert "cannot offer" in response.json()["detail"]
    assert "12" not in response.json()["detail"]
    assert database_rows() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"starts_at": "2030-05-06T17:00:00Z", "ends_at": "2030-05-06T09:00:00Z"}, "ends_at"),
        ({"slots": 0}, "slots"),
        ({"gpu_class": "tpu"}, "gpu_class"),
        ({"holder": "shift:1"}, "holder"),
    ],
)
def test_a_bad_reservation_is_refused_and_writes_nothing(org_a, api_a, pool, body, field):
    valid = {
        "gpu_class": "h100",
        "slots": 1,
        "starts_at": "2030-05-06T09:00:00Z",
        "ends_at": "2030-05-06T17:00:00Z",
    }
    before = database_rows()

    response = api_a.post(_url(org_a, "reservations/"), {**valid, **body}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert database_rows() == before
