"""The public widget endpoint: a visitor opens a conversation with whoever is on duty at a web
widget station, by the station's public key, with no account — and at a rostered station only an
employment on duty takes conversations, through any door.

Real: Django, DRF (throttles included, with lowered rates), the database, Django's signing for
the visitor's token, the session workload queued in inference. Simulated: the shifts are written
directly as rows in the state the duty machinery would have put them in (it is tested in
tests/scheduling/test_duty*.py); no worker runs the conversation.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone, translation
from rest_framework.test import APIClient

from avatars.models import Employment
from inference import sessions
from inference.models import WorkerPool, Workload
from scheduling import selectors, services
from scheduling import sessions as opening
from scheduling.models import Schedule, Shift, Station
from tenants.audit import SYSTEM
from tenants.errors import ConflictError
from tests import factories
from tests.avatars.factories import onboarded_employment
from tests.support import database_rows

NOT_FOUND = {"code": "not_found", "detail": "Not found."}


@pytest.fixture
def converse_pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="converse-cpu",
        pipeline="converse",
        gpu_class="cpu",
        gpus_per_worker=0,
        slots_per_worker=4,
        image="local",
        maximum=2,
    )


def _widget(organization, name="Website") -> Station:
    return services.create_station(SYSTEM, organization, name=name, kind="web_widget")


def _shift(station, employment, *, state="on_duty", starts=-60, ends=60, now=None) -> Shift:
    """A shift of a daily schedule at the station, `starts`/`ends` minutes from now."""
    now = now or timezone.now()
    schedule = Schedule.objects.create(
        organization=station.organization,
        employment=employment,
        station=station,
        rrule="FREQ=DAILY",
        start_time=dt.time(0),
        duration_minutes=24 * 60,
        valid_from=timezone.localdate() - dt.timedelta(days=1),
    )
    return Shift.objects.create(
        organization=station.organization,
        schedule=schedule,
        employment=employment,
        station=station,
        starts_at=now + dt.timedelta(minutes=starts),
        ends_at=now + dt.timedelta(minutes=ends),
        state=state,
    )


def _employee(organization) -> Employment:
    return onboarded_employment(organization=organization, status="active")


@pytest.fixture
def desk(org_a, converse_pool):
    """Organization A's website widget with an employee on duty now."""
    station, employment = _widget(org_a), _employee(org_a)
    _shift(station, employment)
    return station, employment


def _url(key: str) -> str:
    return f"/api/v1/public/widgets/{key}/sessions/"


def _visit(key: str, body=None, ip="203.0.113.7", client=None, **headers):
    client = client or APIClient()
    return client.post(
        _url(key),
        body if body is not None else {"language": "en", "video": False},
        format="json",
        REMOTE_ADDR=ip,
        HTTP_ORIGIN="https://www.alpha-hospital.example",
        **headers,
    )


def _assert_cors(response) -> None:
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Content-Type" in response["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response


@contextmanager
def rates(widget_key="1000/minute", widget_ip="1000/minute"):
    framework: dict[str, Any] = settings.REST_FRAMEWORK
    framework = {
        **framework,
        "DEFAULT_THROTTLE_RATES": {
            **framework["DEFAULT_THROTTLE_RATES"],
            "widget_key": widget_key,
            "widget_ip": widget_ip,
        },
    }
    with override_settings(REST_FRAMEWORK=framework):
        yield


# --- Opening -------------------------------------------------------------------------------------


def test_a_visitor_opens_a_conversation_with_the_employee_on_duty(desk, org_a):
    station, employment = desk
    response = _visit(station.widget_key)
    assert response.status_code == 201, response.content
    _assert_cors(response)
    body = response.json()
    assert set(body) == {"workload", "state", "token", "expires_at", "socket_path", "video"}
    assert (body["state"], body["socket_path"], body["video"]) == ("queued", "/ws/sessions/", False)
    # The ticket is the authenticated endpoint's: the token opens this session's socket.
    workload = sessions.workload_of_token(body["token"])
    assert str(workload.pk) == body["workload"]
    assert workload.organization_id == org_a.pk and workload.kind == "session"
    assert workload.platform_submitted  # its spec is the platform's (budget exemptions trust it)
    assert workload.spec["employment"] == str(employment.pk)
    assert workload.spec["station"] == str(station.pk)
    assert workload.spec["language"] == "en"
    # Shown in the organization's time zone, like every time the organization's API returns.
    assert body["expires_at"].endswith("+08:00")


def test_each_visit_opens_its_own_conversation(desk, org_a):
    station, _employment = desk
    first, second = _visit(station.widget_key), _visit(station.widget_key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["workload"] != second.json()["workload"]
    assert Workload.objects.for_organization(org_a).count() == 2


def test_with_nobody_on_duty_a_visitor_reads_a_sentence_and_nothing_is_written(
    org_a, converse_pool
):
    station, employment = _widget(org_a), _employee(org_a)
    _shift(station, employment, state="planned", starts=30, ends=90)  # later today
    _shift(station, employment, state="ended", starts=-180, ends=-120)  # this morning
    _shift(station, employment, state="taken_over", starts=-30, ends=30)  # a person has it
    before = database_rows()
    response = _visit(station.widget_key)
    assert response.status_code == 409, response.content
    _assert_cors(response)
    assert response.json() == {
        "code": "nobody_on_duty",
        "detail": "Nobody is on duty here right now. Please come back during opening hours.",
    }
    assert database_rows() == before


def test_a_refusal_behind_the_desk_is_not_explained_to_the_visitor(desk, org_a):
    station, employment = desk
    Employment.objects.for_organization(org_a).filter(pk=employment.pk).update(status="suspended")
    before = database_rows()
    response = _visit(station.widget_key)
    assert response.status_code == 409
    _assert_cors(response)
    assert response.json()["code"] == "unavailable"
    assert "try again later" in response.json()["detail"]
    assert "employee" not in response.json()["detail"]
    assert database_rows() == before


def test_a_bad_body_is_a_field_error(desk):
    station, _employment = desk
    before = database_rows()
    for body in ({"language": "fr"}, {"language": "en", "employment": "someone"}):
        response = _visit(station.widget_key, body)
        assert response.status_code == 400, response.content
        _assert_cors(response)
    assert database_rows() == before


def test_an_empty_body_takes_the_defaults(desk):
    station, _employment = desk
    response = APIClient().post(_url(station.widget_key))
    assert response.status_code == 201, response.content
    workload = sessions.workload_of_token(response.json()["token"])
    assert workload.spec["language"] == "zh"


# --- Keys that open nothing ----------------------------------------------------------------------


def test_unknown_switched_off_rotated_and_non_widget_keys_all_read_the_same_404(
    desk, org_a, converse_pool
):
    station, _employment = desk
    off = _widget(org_a, "Switched off")
    _shift(off, _employee(org_a))
    services.update_station(SYSTEM, off, is_active=False)
    rotated = _widget(org_a, "Rotated")
    _shift(rotated, _employee(org_a))
    old_key = rotated.widget_key
    services.rotate_widget_key(SYSTEM, rotated)
    # A station that stopped being a widget (its key row is left as it was, as if by hand).
    former = _widget(org_a, "Former widget")
    Station.objects.for_organization(org_a).filter(pk=former.pk).update(kind="kiosk")
    # A station of an organization that was switched off as a whole.
    closed_org = factories.OrganizationFactory(is_active=False)
    closed = _widget(closed_org, "Closed organization's site")
    _shift(closed, _employee(closed_org))
    keys = [
        "wk_" + "x" * 32,
        off.widget_key,
        closed.widget_key,
        old_key,
        former.widget_key,
        "",
        "a" * 65,
        "wk_%2e%2e",
        "%F1%81%B3%93%1C%C3%A5d1",  # control and astral characters, as a fuzzer sends
        station.widget_key.upper(),
    ]
    before = database_rows()
    for key in keys:
        response = APIClient().post(_url(key) if key else "/api/v1/public/widgets//sessions/")
        assert response.status_code == 404, (key, response.content)
        assert response.json() == NOT_FOUND
        if key:
            _assert_cors(response)
    assert database_rows() == before
    assert _visit(rotated.widget_key).status_code == 201  # the new key works


# --- CORS ----------------------------------------------------------------------------------------


def test_the_preflight_answers_any_origin_without_credentials(desk):
    station, _employment = desk
    for key in (station.widget_key, "wk_unknown"):
        response = APIClient().options(
            _url(key),
            HTTP_ORIGIN="https://www.alpha-hospital.example",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
        )
        assert response.status_code == 204
        _assert_cors(response)
        assert int(response["Access-Control-Max-Age"]) > 0
        assert response.content == b""  # nothing about the key, known or not


def test_only_the_widget_endpoint_answers_cross_origin(desk, org_a, api_a):
    response = api_a.get(f"/api/v1/orgs/{org_a.slug}/stations/", HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_a_signed_in_member_is_just_a_visitor_here(desk, api_a):
    station, _employment = desk
    response = _visit(station.widget_key, client=api_a)
    assert response.status_code == 201
    assert "Access-Control-Allow-Credentials" not in response


# --- Throttling ----------------------------------------------------------------------------------


def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60
    _assert_cors(response)


def test_one_widget_key_has_one_budget_across_visitors(org_a, converse_pool):
    station, other = _widget(org_a), _widget(org_a, "Other site")
    with rates(widget_key="2/minute"):
        assert [_visit(station.widget_key, ip=f"198.51.100.{i}").status_code for i in (1, 2)] == [
            409,
            409,
        ]
        _assert_throttled(_visit(station.widget_key, ip="198.51.100.3"))
        assert _visit(other.widget_key, ip="198.51.100.3").status_code == 409
        # Preflights are not counted: a browser sends one before most posts.
        assert APIClient().options(_url(station.widget_key)).status_code == 204


def test_one_visitor_address_has_one_budget_across_widgets(org_a, converse_pool):
    first, second = _widget(org_a), _widget(org_a, "Other site")
    with rates(widget_ip="2/minute"):
        assert _visit(first.widget_key, ip="192.0.2.10").status_code == 409
        assert _visit("wk_unknown", ip="192.0.2.10").status_code == 404
        _assert_throttled(_visit(second.widget_key, ip="192.0.2.10"))
        assert _visit(second.widget_key, ip="192.0.2.11").status_code == 409


# --- Tenancy -------------------------------------------------------------------------------------


def test_a_key_opens_only_its_own_organizations_desk(desk, org_a, org_b):
    station_a, employment_a = desk
    station_b, employment_b = _widget(org_b, "Bureau site"), _employee(org_b)
    _shift(station_b, employment_b)

    response = _visit(station_a.widget_key)
    assert response.status_code == 201
    workload = sessions.workload_of_token(response.json()["token"])
    assert workload.organization_id == org_a.pk
    assert workload.spec["employment"] == str(employment_a.pk)
    assert not Workload.objects.for_organization(org_b).exists()
    # The answer names nothing of either organization beyond the new conversation itself.
    text = response.content.decode()
    for marker in (
        org_a.slug,
        str(org_a.pk),
        str(station_a.pk),
        str(employment_a.pk),
        org_b.slug,
        str(org_b.pk),
        str(station_b.pk),
        str(employment_b.pk),
        station_b.widget_key,
    ):
        assert marker not in text

    response_b = _visit(station_b.widget_key)
    assert sessions.workload_of_token(response_b.json()["token"]).organization_id == org_b.pk


def test_with_nobody_on_duty_at_its_own_desk_a_key_never_borrows_another_organizations(
    org_a, org_b, converse_pool
):
    station_a = _widget(org_a)  # nobody on duty in A
    station_b, employment_b = _widget(org_b, "Bureau site"), _employee(org_b)
    _shift(station_b, employment_b)  # someone on duty in B
    before = database_rows()
    response = _visit(station_a.widget_key)
    assert response.status_code == 409
    assert response.json()["code"] == "nobody_on_duty"
    assert database_rows() == before


def test_the_on_duty_lookup_reads_only_the_stations_own_shifts(org_a, org_b, converse_pool):
    station_a, station_b = _widget(org_a), _widget(org_b, "Bureau site")
    employment_b = _employee(org_b)
    _shift(station_b, employment_b)
    assert selectors.on_duty_employment(station_a, timezone.now()) is None
    assert selectors.on_duty_employment(station_b, timezone.now()) == employment_b


# --- The on-duty rule, through any door ----------------------------------------------------------


def test_the_on_duty_lookup_takes_the_shift_covering_the_instant(org_a, converse_pool):
    station, early, late = _widget(org_a), _employee(org_a), _employee(org_a)
    now = timezone.now()
    first = _shift(station, early, starts=-120, ends=0, now=now)
    second = _shift(station, late, starts=0, ends=120, now=now)
    at = first.ends_at
    assert at == second.starts_at
    assert selectors.on_duty_employment(station, at) == late  # an end is not covered
    assert selectors.on_duty_employment(station, second.starts_at) == late
    assert selectors.on_duty_employment(station, at - dt.timedelta(seconds=1)) == early
    assert selectors.on_duty_employment(station, second.ends_at) is None


def test_at_a_rostered_station_only_the_employee_on_duty_takes_conversations(desk, org_a, api_a):
    station, on_duty = desk
    off_duty = _employee(org_a)
    url = f"/api/v1/orgs/{org_a.slug}/stations/{station.pk}/sessions/"
    before = database_rows()
    refused = api_a.post(url, {"employment": str(off_duty.pk), "video": False}, format="json")
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "not_on_duty"
    assert "not on duty at this station" in refused.json()["detail"]
    assert database_rows() == before
    opened = api_a.post(url, {"employment": str(on_duty.pk), "video": False}, format="json")
    assert opened.status_code == 201, opened.content


def test_an_inactive_schedule_leaves_the_station_open_to_any_employee(org_a, converse_pool):
    station, employment = _widget(org_a), _employee(org_a)
    shift = _shift(station, _employee(org_a), state="ended", starts=-120, ends=-60)
    with pytest.raises(ConflictError) as refused:
        opening.open_session(SYSTEM, station, employment, video=False)
    assert refused.value.code == "not_on_duty"
    Schedule.objects.for_organization(org_a).filter(pk=shift.schedule_id).update(is_active=False)
    workload, _ticket, created = opening.open_session(SYSTEM, station, employment, video=False)
    assert created and workload.spec["employment"] == str(employment.pk)


def test_a_visitor_reads_the_sentence_in_the_browsers_language(org_a, converse_pool):
    station = _widget(org_a)
    # LocaleMiddleware activates the visitor's language in this thread and leaves it there;
    # the override puts the default back, so that later tests do not read Chinese.
    with translation.override(settings.LANGUAGE_CODE):
        response = _visit(station.widget_key, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert response.status_code == 409
    assert response.json()["detail"] == "目前没有人值班。请在服务时间内再来。"
