"""The console's stations pages: the list (search, kinds, pages), creating, changing and deleting
a station, the write-only stream key, roles and tenancy.

Real Django stack (sessions, middleware, templates, the cache), real services and database,
signed in with forced session logins; nothing is simulated.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from scheduling import services
from scheduling.models import Station, StationKind
from tenants.audit import SYSTEM
from tenants.models import AuditEntry, Organization
from tenants.roles import Role
from tests.console.conftest import submit_token
from tests.factories import PASSWORD, StationFactory
from tests.scheduling import schedules_world as world
from tests.support import database_rows

pytestmark = pytest.mark.django_db

STREAM_KEY = "live_sk-9f3bQ7x2MzKpW4tR8vN1"


def url(name: str, org: Organization, *args: object) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


def station_post(token: str = "", **fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Health live room",
        "kind": StationKind.LIVE_ROOM,
        "description": "",
        "platform": "douyin",
        "push_url": "rtmp://push.example.com/live",
        "stream_key": "",
        "max_on_air": "1",
        "is_active": "true",
        "ai_label_required": "true",
        "submit_token": token,
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def field_html(html: str, name: str) -> str:
    """The markup of one form field (label, input and the errors next to it)."""
    found = re.search(
        r'<div class="field[^"]*">\s*<label for="field-' + re.escape(name) + r'".*?</div>',
        html,
        re.S,
    )
    assert found, f"no field {name}"
    return found.group(0)


def create(client: Client, org: Organization, **fields: object):
    page = client.get(url("station-create", org)).content.decode()
    return client.post(url("station-create", org), station_post(submit_token(page), **fields))


# --- The list ------------------------------------------------------------------------------------


def test_the_list_shows_the_organizations_stations_and_never_anothers(console_a, org_a, org_b):
    StationFactory(organization=org_a, name="Alpha lobby", kind=StationKind.KIOSK)
    StationFactory(organization=org_b, name="Beta secret room")

    html = console_a.get(url("stations", org_a)).content.decode()

    assert "Alpha lobby" in html
    assert "Beta secret room" not in html


def test_the_list_is_searched_filtered_by_kind_and_paged(console_a, org_a):
    for n in range(55):
        StationFactory(organization=org_a, name=f"Room {n:02d}")
    StationFactory(organization=org_a, name="Front desk kiosk", kind=StationKind.KIOSK)

    first = console_a.get(url("stations", org_a)).content.decode()
    second = console_a.get(url("stations", org_a), {"page": 2}).content.decode()
    found = console_a.get(url("stations", org_a), {"q": "front"}).content.decode()
    kiosks = console_a.get(url("stations", org_a), {"kind": "kiosk"}).content.decode()

    assert first.count('<td><a href="/console/o/alpha-hospital/stations/') == 50
    # By name: the kiosk first, then rooms 00 to 48; the rest on the second page.
    assert "Front desk kiosk" in first and "Room 48" in first and "Room 49" not in first
    assert "Room 49" in second and "Room 54" in second and "Room 48" not in second
    assert "Front desk kiosk" in found and "Room 01" not in found
    assert "Front desk kiosk" in kiosks and "Room 01" not in kiosks


# --- Creating and changing -----------------------------------------------------------------------


def test_creating_a_live_room_saves_it_and_shows_the_key_only_as_set(console_a, org_a):
    response = create(console_a, org_a, stream_key=STREAM_KEY)

    station = Station.objects.for_organization(org_a).get(name="Health live room")
    assert response.status_code == 302
    assert response["Location"] == url("station-edit", org_a, station.pk)
    assert station.push_url == "rtmp://push.example.com/live"
    assert station.stream_key_encrypted and STREAM_KEY not in station.stream_key_encrypted
    page = console_a.get(response["Location"]).content.decode()
    assert 'data-testid="stream-key-state">Set<' in page
    assert STREAM_KEY not in page
    assert AuditEntry.objects.for_organization(org_a).filter(action="station.create").count() == 1


def test_the_stream_key_never_comes_back_in_any_response(console_a, owner_a, org_a):
    created = create(console_a, org_a, stream_key=STREAM_KEY)
    station = Station.objects.for_organization(org_a).get()
    edit = url("station-edit", org_a, station.pk)
    seen = [created, console_a.get(url("stations", org_a)), console_a.get(edit)]
    # Refused with the key typed again: the form comes back without it.
    page = console_a.get(edit).content.decode()
    seen.append(
        refused := console_a.post(
            edit,
            station_post(submit_token(page), push_url="http://wrong", stream_key=STREAM_KEY),
        )
    )
    assert refused.status_code == 400
    assert "type the stream key again" in refused.content.decode()
    # Sent after the session ended: the draft keeps the other fields, never the key.
    signed_out = Client()
    seen.append(signed_out.post(edit, station_post(name="Renamed", stream_key=STREAM_KEY + "2")))
    signed_out.post(
        reverse("console:sign-in"),
        {"email": owner_a.user.email, "password": PASSWORD},
    )
    draft = signed_out.get(edit)
    seen.append(draft)
    seen.append(console_a.get(url("roster", org_a)))

    assert 'value="Renamed"' in draft.content.decode()
    for response in seen:
        assert STREAM_KEY.encode() not in response.content
        assert STREAM_KEY[-8:].encode() not in response.content
        assert STREAM_KEY not in response.get("Location", "")


def test_a_new_key_replaces_the_saved_one_and_an_empty_field_keeps_it(console_a, org_a):
    create(console_a, org_a, stream_key=STREAM_KEY)
    station = Station.objects.for_organization(org_a).get()
    edit = url("station-edit", org_a, station.pk)
    saved = station.stream_key_encrypted

    page = console_a.get(edit).content.decode()
    console_a.post(edit, station_post(submit_token(page), description="Renamed nothing"))
    station.refresh_from_db()
    assert station.stream_key_encrypted == saved  # empty field: the key stays

    page = console_a.get(edit).content.decode()
    console_a.post(edit, station_post(submit_token(page), stream_key="another-key-5678"))
    station.refresh_from_db()
    assert station.stream_key_encrypted != saved
    assert station.stream_key_hint == "5678"
    assert "ends in …5678" in console_a.get(edit).content.decode()

    page = console_a.get(edit).content.decode()
    console_a.post(edit, station_post(submit_token(page), stream_key_clear="true"))
    station.refresh_from_db()
    assert station.stream_key_encrypted == ""
    assert 'data-testid="stream-key-state">Not set<' in console_a.get(edit).content.decode()


def test_an_invalid_push_url_is_refused_next_to_the_field_and_nothing_is_saved(console_a, org_a):
    before = database_rows()

    response = create(console_a, org_a, push_url="http://push.example.com/live")

    html = response.content.decode()
    assert response.status_code == 400
    push_url = field_html(html, "push_url")
    assert 'aria-invalid="true"' in push_url
    assert "starts with rtmp:// or rtmps://" in push_url
    assert 'value="http://push.example.com/live"' in push_url  # what was typed stays
    assert database_rows() == before


def test_bad_input_is_named_next_to_each_field(console_a, org_a):
    StationFactory(organization=org_a, name="Taken")

    empty = create(console_a, org_a, name="", max_on_air="0").content.decode()
    taken = create(console_a, org_a, name="Taken").content.decode()
    kiosk = create(console_a, org_a, kind=StationKind.KIOSK).content.decode()

    assert "errors" in field_html(empty, "name")
    assert "errors" in field_html(empty, "max_on_air")
    assert "Another station already has this name." in field_html(taken, "name")
    assert "Only live rooms have" in field_html(kiosk, "platform")
    assert Station.objects.for_organization(org_a).count() == 1


def test_a_double_submit_creates_one_station(console_a, org_a):
    page = console_a.get(url("station-create", org_a)).content.decode()
    data = station_post(submit_token(page))

    first = console_a.post(url("station-create", org_a), data)
    second = console_a.post(url("station-create", org_a), data)

    assert first.status_code == second.status_code == 302
    assert second["Location"] == first["Location"]
    assert Station.objects.for_organization(org_a).count() == 1


def test_deleting_a_station_with_schedules_is_refused_with_the_reason(console_a, org_a):
    world.pools()
    room = world.station(org_a, name="Rostered room")
    world.schedule(world.hire(org_a), room)
    spare = world.station(org_a, name="Spare room")
    edit = console_a.get(url("station-edit", org_a, room.pk)).content.decode()
    delete_token = re.findall(r'name="submit_token" value="([^"]+)"', edit)[1]

    refused = console_a.post(url("station-delete", org_a, room.pk), {"submit_token": delete_token})
    deleted = console_a.post(url("station-delete", org_a, spare.pk))

    assert refused.status_code == 409
    assert "switch the station off instead" in refused.content.decode()
    assert Station.objects.for_organization(org_a).filter(pk=room.pk).exists()
    assert deleted.status_code == 302
    assert not Station.objects.for_organization(org_a).filter(pk=spare.pk).exists()


# --- Roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_operators_and_analysts_cannot_create_or_delete_stations(
    role, org_a, member_factory, console_for
):
    client = console_for(member_factory(org_a, role))
    room = StationFactory(organization=org_a, name="Existing")

    page = client.get(url("station-create", org_a))
    post = client.post(url("station-create", org_a), station_post())
    delete = client.post(url("station-delete", org_a, room.pk))
    listing = client.get(url("stations", org_a)).content.decode()

    assert page.status_code == post.status_code == delete.status_code == 403
    assert Station.objects.for_organization(org_a).count() == 1
    assert 'data-testid="new-station"' not in listing


def test_an_analyst_sees_a_station_but_cannot_change_it(org_a, member_factory, console_for):
    client = console_for(member_factory(org_a, Role.ANALYST))
    room = StationFactory(organization=org_a, name="Existing")

    page = client.get(url("station-edit", org_a, room.pk))
    post = client.post(url("station-edit", org_a, room.pk), station_post(name="Changed"))

    assert page.status_code == 200
    assert '<fieldset class="plain" disabled>' in page.content.decode()
    assert post.status_code == 403
    room.refresh_from_db()
    assert room.name == "Existing"


def test_an_operator_changes_only_the_stations_granted_to_them(org_a, member_factory, console_for):
    operator = member_factory(org_a, Role.OPERATOR)
    client = console_for(operator)
    granted = StationFactory(organization=org_a, name="Granted")
    other = StationFactory(organization=org_a, name="Other")
    services.grant_station_operator(SYSTEM, granted, operator)

    refused = client.post(url("station-edit", org_a, other.pk), station_post(name="Other 2"))
    page = client.get(url("station-edit", org_a, granted.pk)).content.decode()
    changed = client.post(
        url("station-edit", org_a, granted.pk), station_post(submit_token(page), name="Granted 2")
    )

    assert refused.status_code == 403
    assert "You do not operate this station" in refused.content.decode()
    assert changed.status_code == 302
    granted.refresh_from_db()
    other.refresh_from_db()
    assert (granted.name, other.name) == ("Granted 2", "Other")


# --- Tenancy -------------------------------------------------------------------------------------


def test_another_organizations_station_answers_404_whatever_the_url(console_b, org_a, org_b):
    theirs = StationFactory(organization=org_a, name="Alpha room")
    before = database_rows()

    urls = [
        url("station-edit", org_b, theirs.pk),
        url("station-edit", org_a, theirs.pk),
        url("station-delete", org_b, theirs.pk),
    ]
    answers = [console_b.get(urls[0]), console_b.get(urls[1])]
    answers += [console_b.post(u, station_post(name="Taken over")) for u in urls]
    missing = console_b.get(url("station-edit", org_b, "00000000-0000-0000-0000-000000000000"))

    assert [a.status_code for a in answers] == [404] * 5
    assert missing.status_code == 404
    assert all(b"Alpha room" not in a.content for a in answers)
    assert database_rows() == before
