"""Station kinds through the API: live rooms (platform, push URL, a write-only stream key), web
widgets (a public key, rotatable), the AI label and how many employees a station holds on air.

Real: Django, DRF, the database, Fernet encryption, the audit log and the configured log
handler (its stream swapped for a buffer, so what is checked is what the process writes).
Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import cast

import pytest
from django.utils import timezone

from avatars.models import Employment
from scheduling import secrets, services
from scheduling.models import Schedule, Station
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars.factories import EmploymentFactory
from tests.support import database_rows

STREAM_KEY = "stream-8841?expire=1767225600&sign=c0ffee5ecret9f1a"
ROOM = {
    "name": "Health live room",
    "kind": "live_room",
    "platform": "douyin",
    "push_url": "rtmp://push-rtmp-l1.douyincdn.com/third/",
    "stream_key": STREAM_KEY,
}


def _stations_url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/stations", *map(str, parts), ""])


@pytest.fixture
def admin(org_a, owner_a, member_factory, client_for):
    return client_for(member_factory(org_a, Role.ADMIN))


@pytest.fixture
def log_text():
    """Everything the configured console handler writes during the test."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer.getvalue
    finally:
        if previous is not None:
            handler.setStream(previous)


def _audit_text(organization) -> str:
    entries = AuditEntry.objects.for_organization(organization).order_by("id")
    return repr(list(entries.values("action", "before", "after", "object_repr")))


def test_a_stream_key_is_accepted_stored_encrypted_and_never_shown_again(admin, org_a, log_text):
    created = admin.post(_stations_url(org_a), ROOM, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert "stream_key" not in body
    assert (body["stream_key_set"], body["stream_key_hint"]) == (True, "9f1a")
    # The push URL is kept without its trailing slash: the worker appends "/<stream key>".
    assert body["push_url"] == "rtmp://push-rtmp-l1.douyincdn.com/third"
    assert (body["platform"], body["ai_label_required"], body["max_on_air"]) == ("douyin", True, 1)
    assert body["widget_key"] == ""

    station = Station.objects.for_organization(org_a).get(pk=body["id"])
    assert STREAM_KEY not in station.stream_key_encrypted
    assert secrets.decrypt(station.stream_key_encrypted) == STREAM_KEY
    assert secrets.rtmp_url_of(station) == f"rtmp://push-rtmp-l1.douyincdn.com/third/{STREAM_KEY}"

    renamed = admin.patch(_stations_url(org_a, station.pk), {"name": "Room 2"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["stream_key_set"] is True
    responses = [
        created,
        renamed,
        admin.get(_stations_url(org_a, station.pk)),
        admin.get(_stations_url(org_a)),
        admin.get(f"/api/v1/orgs/{org_a.slug}/audit/"),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert STREAM_KEY not in response.content.decode()
        assert "c0ffee5ecret" not in response.content.decode()
        assert station.stream_key_encrypted not in response.content.decode()
    assert STREAM_KEY not in _audit_text(org_a)
    assert station.stream_key_encrypted not in _audit_text(org_a)
    assert "request_finished" in log_text()  # the handler did write this test's requests
    assert "c0ffee5ecret" not in log_text()
    # Nowhere in the database either: only the ciphertext is stored.
    assert "c0ffee5ecret" not in repr(database_rows())


def test_replacing_and_removing_the_stream_key_is_audited_without_the_key(admin, org_a):
    station_id = admin.post(_stations_url(org_a), ROOM, format="json").json()["id"]
    new_key = "stream-9000?sign=abcdef0123456789f1a"  # the same hint as before: still audited
    replaced = admin.patch(_stations_url(org_a, station_id), {"stream_key": new_key}, format="json")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["stream_key_hint"] == "9f1a"
    station = Station.objects.for_organization(org_a).get(pk=station_id)
    assert secrets.decrypt(station.stream_key_encrypted) == new_key

    removed = admin.patch(_stations_url(org_a, station_id), {"stream_key": ""}, format="json")
    assert removed.status_code == 200
    assert (removed.json()["stream_key_set"], removed.json()["stream_key_hint"]) == (False, "")

    updates = AuditEntry.objects.for_organization(org_a).filter(action="station.update")
    (replaced_before, replaced_after), (removed_before, removed_after) = [
        (entry.before or {}, entry.after or {}) for entry in updates.order_by("id")
    ]
    assert replaced_after["stream_key_replaced"] is True
    assert replaced_after["stream_key_set"] is True
    assert removed_before["stream_key_set"] is True
    assert removed_after["stream_key_set"] is False
    for snapshot in (replaced_before, replaced_after, removed_before, removed_after):
        assert "stream_key_encrypted" not in snapshot
    assert new_key not in _audit_text(org_a) and STREAM_KEY not in _audit_text(org_a)


def test_a_short_stream_key_shows_no_hint(admin, org_a):
    created = admin.post(_stations_url(org_a), {**ROOM, "stream_key": "abc12345"}, format="json")
    assert created.status_code == 201
    assert (created.json()["stream_key_set"], created.json()["stream_key_hint"]) == (True, "")


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"push_url": "http://push.example.com/live"}, "push_url", "invalid_push_url"),
        ({"push_url": "rtmp:///live"}, "push_url", "invalid_push_url"),
        ({"push_url": "rtmp://user:pw@push.example.com/live"}, "push_url", "invalid_push_url"),
        ({"push_url": "rtmp://push.example.com/live?sign=1"}, "push_url", "invalid_push_url"),
        ({"push_url": "rtmp://push.example.com:99999/live"}, "push_url", "invalid_push_url"),
        ({"push_url": "rtmp://push example.com/live"}, "push_url", "invalid_push_url"),
        ({"stream_key": "two words"}, "stream_key", "invalid_stream_key"),
        ({"stream_key": "k" * 501}, "stream_key", "max_length"),
        ({"platform": "myspace"}, "platform", "invalid_choice"),
        ({"max_on_air": 0}, "max_on_air", "min_value"),
        ({"max_on_air": 40000}, "max_on_air", "max_value"),
        ({"kind": "kiosk"}, "platform", "live_room_only"),
    ],
)
def test_bad_live_room_input_is_a_clear_field_error_and_changes_nothing(
    admin, org_a, changes, field, code
):
    station_id = admin.post(_stations_url(org_a), ROOM, format="json").json()["id"]
    before = database_rows()
    # PATCH with the live-room fields again: a kiosk cannot take them (see the last case).
    response = admin.patch(
        _stations_url(org_a, station_id),
        {"platform": "douyin", **changes} if field == "platform" else changes,
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["fields"][field][0]["code"] == code
    assert database_rows() == before
    assert STREAM_KEY not in response.content.decode()


def test_a_kiosk_or_hotline_refuses_a_stream_key_on_creation(admin, org_a):
    before = database_rows()
    for kind in ("kiosk", "hotline", "web_widget"):
        response = admin.post(
            _stations_url(org_a), {"name": kind, "kind": kind, "stream_key": STREAM_KEY}, "json"
        )
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "live_room_only"
        assert "Only live rooms" in response.json()["detail"]
    assert database_rows() == before


def test_a_live_room_that_becomes_a_widget_forgets_its_stream_and_gets_a_widget_key(admin, org_a):
    station_id = admin.post(_stations_url(org_a), ROOM, format="json").json()["id"]
    changed = admin.patch(_stations_url(org_a, station_id), {"kind": "web_widget"}, format="json")
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["platform"], body["push_url"], body["stream_key_set"]) == ("", "", False)
    assert body["widget_key"].startswith("wk_") and len(body["widget_key"]) >= 32
    station = Station.objects.for_organization(org_a).get(pk=station_id)
    assert (station.stream_key_encrypted, station.stream_key_hint) == ("", "")

    back = admin.patch(_stations_url(org_a, station_id), {"kind": "kiosk"}, format="json")
    assert back.json()["widget_key"] == ""


def test_a_web_widget_gets_a_public_key_that_members_see_and_managers_rotate(
    admin, org_a, member_factory, client_for
):
    created = admin.post(_stations_url(org_a), {"name": "Site", "kind": "web_widget"}, "json")
    assert created.status_code == 201
    first_key = created.json()["widget_key"]
    assert first_key.startswith("wk_")
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    assert analyst.get(_stations_url(org_a, created.json()["id"])).json()["widget_key"] == first_key

    rotated = admin.post(_stations_url(org_a, created.json()["id"], "rotate-widget-key"))
    assert rotated.status_code == 200, rotated.content
    second_key = rotated.json()["widget_key"]
    assert second_key.startswith("wk_") and second_key != first_key
    entry = AuditEntry.objects.for_organization(org_a).get(action="station.rotate_widget_key")
    assert (entry.before, entry.after) == ({"widget_key": first_key}, {"widget_key": second_key})


def test_rotating_the_key_of_a_station_that_is_no_widget_is_refused(admin, org_a):
    room = services.create_station(SYSTEM, org_a, name="Room", kind="live_room")
    before = database_rows()
    response = admin.post(_stations_url(org_a, room.pk, "rotate-widget-key"))
    assert response.status_code == 409
    assert response.json()["code"] == "not_a_widget"
    assert database_rows() == before


def test_ai_label_and_on_air_capacity_are_kept(admin, org_a):
    created = admin.post(
        _stations_url(org_a),
        {"name": "Desk", "kind": "kiosk", "ai_label_required": False, "max_on_air": 3},
        format="json",
    )
    assert created.status_code == 201
    assert (created.json()["ai_label_required"], created.json()["max_on_air"]) == (False, 3)


def test_a_granted_operator_may_change_the_stream_key_of_their_room(
    admin, org_a, member_factory, client_for
):
    station_id = admin.post(_stations_url(org_a), ROOM, format="json").json()["id"]
    operator = member_factory(org_a, Role.OPERATOR)
    station = Station.objects.for_organization(org_a).get(pk=station_id)
    services.grant_station_operator(SYSTEM, station, operator)
    response = client_for(operator).patch(
        _stations_url(org_a, station_id), {"stream_key": "stream-1?sign=0000111122223333"}, "json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["stream_key_hint"] == "3333"


def test_a_station_with_schedules_is_not_deleted_and_says_why(admin, org_a):
    station = services.create_station(SYSTEM, org_a, name="Lobby", kind="kiosk")
    Schedule.objects.create(
        organization=org_a,
        employment=cast(Employment, EmploymentFactory(organization=org_a)),
        station=station,
        rrule="FREQ=DAILY",
        start_time=dt.time(9),
        duration_minutes=60,
        valid_from=timezone.localdate(),
    )
    before = database_rows()
    response = admin.delete(_stations_url(org_a, station.pk))
    assert response.status_code == 409
    assert response.json()["code"] == "station_rostered"
    assert database_rows() == before


def test_another_organizations_widget_key_cannot_be_rotated(admin, org_a, org_b):
    theirs = services.create_station(SYSTEM, org_b, name="Theirs", kind="web_widget")
    before = database_rows()
    response = admin.post(_stations_url(org_a, theirs.pk, "rotate-widget-key"))
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before
