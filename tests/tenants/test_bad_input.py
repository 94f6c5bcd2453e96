"""Bad requests get a structured 4xx that names the problem, and write nothing.

Each case is sent to several writing endpoints, as a console or a script would send it by mistake:
broken JSON, a typo'd field, a wrong type, a form post, a body over the limit, an unknown org.
"""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from scheduling.models import Station
from tests import factories
from tests.support import database_rows

# (name, method, path under /api/v1/, a valid body). "{org}" and "{station}" are filled in.
WRITES = [
    ("create organization", "post", "orgs/", {"slug": "gamma", "name": "G", "kind": "bank"}),
    ("change organization", "patch", "orgs/{org}/", {"name": "Renamed"}),
    ("invite", "post", "orgs/{org}/invitations/", {"email": "x@example.org", "role": "analyst"}),
    ("create api key", "post", "orgs/{org}/api-keys/", {"name": "ci", "scopes": ["stations.view"]}),
    ("create station", "post", "orgs/{org}/stations/", {"name": "Lobby", "kind": "kiosk"}),
    ("change station", "patch", "orgs/{org}/stations/{station}/", {"description": "moved"}),
    ("accept invitation", "post", "invitations/accept/", {"token": "whatever"}),
]
WRITE_IDS = [name for name, *_ in WRITES]


@pytest.fixture
def setting(org_a, owner_a, api_a):
    station = factories.StationFactory(organization=org_a, name="Main hall")
    return {"org": org_a.slug, "station": station.pk}


def _url(path: str, setting: dict[str, object]) -> str:
    return "/api/v1/" + path.format(**setting)


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES[:-1], ids=WRITE_IDS[:-1])
def test_the_same_requests_made_well_are_accepted(api_a, setting, name, method, path, body):
    """The control for the cases below: each body is valid, so a refusal there is the defect's."""
    before = database_rows()
    response = getattr(api_a, method)(_url(path, setting), body, format="json")
    assert response.status_code in (200, 201), response.content
    assert database_rows() != before


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_malformed_json_is_a_parse_error(api_a, setting, name, method, path, body):
    before = database_rows()
    response = getattr(api_a, method)(
        _url(path, setting), data='{"name": "Lobby",', content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    assert "JSON" in response.json()["detail"]
    assert database_rows() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_an_unknown_field_is_named(api_a, setting, name, method, path, body):
    before = database_rows()
    response = getattr(api_a, method)(_url(path, setting), {**body, "colour": "red"}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["fields"]["colour"][0]["code"] == "unknown_field"
    assert database_rows() == before


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "orgs/", {"slug": "gamma", "name": "G", "kind": ["bank"]}, "kind"),
        ("patch", "orgs/{org}/", {"time_zone": 8}, "time_zone"),
        ("post", "orgs/{org}/invitations/", {"email": 42, "role": "analyst"}, "email"),
        ("post", "orgs/{org}/api-keys/", {"name": "ci", "scopes": "stations.view"}, "scopes"),
        (
            "post",
            "orgs/{org}/stations/",
            {"name": "Lobby", "kind": "kiosk", "is_active": "maybe"},
            "is_active",
        ),
        ("patch", "orgs/{org}/stations/{station}/", {"name": {"en": "Lobby"}}, "name"),
        ("post", "orgs/{org}/stations/{station}/operators/", {"member": 12}, "member"),
        ("post", "invitations/accept/", {"token": ["a", "b"]}, "token"),
    ],
)
def test_a_wrong_type_is_a_field_error(api_a, setting, method, path, body, field):
    before = database_rows()
    response = getattr(api_a, method)(_url(path, setting), body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [field]
    assert response.json()["fields"][field][0]["message"]
    assert database_rows() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_refused(api_a, setting, name, method, path, body, content_type):
    before = database_rows()
    payload = "name=Lobby&kind=kiosk"
    if content_type == "multipart/form-data":
        content_type = "multipart/form-data; boundary=BoUnDaRy"
        payload = (
            '--BoUnDaRy\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--BoUnDaRy--'
        )
    response = getattr(api_a, method)(_url(path, setting), data=payload, content_type=content_type)
    assert response.status_code == 415, response.content
    assert response.json()["code"] == "unsupported_media_type"
    assert content_type.split(";")[0] in response.json()["detail"]
    assert database_rows() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_body_over_the_limit_is_refused_with_the_sizes(api_a, setting, name, method, path, body):
    before = database_rows()
    padded = {**body, "description": "x" * 200}
    with override_settings(API_MAX_BODY_BYTES=100):
        response = getattr(api_a, method)(_url(path, setting), padded, format="json")
    assert response.status_code == 413, response.content
    size = int(response.request["CONTENT_LENGTH"])
    assert response.json()["code"] == "body_too_large"
    assert f"{size} bytes" in response.json()["detail"]
    assert "100 bytes" in response.json()["detail"]
    assert database_rows() == before


def test_a_body_under_the_limit_goes_through(api_a, setting):
    with override_settings(API_MAX_BODY_BYTES=100):
        response = api_a.post(
            _url("orgs/{org}/stations/", setting), {"name": "Lobby", "kind": "kiosk"}, format="json"
        )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [(method, path, body) for _name, method, path, body in WRITES if "{org}" in path]
    + [("get", "orgs/{org}/", None), ("get", "orgs/{org}/stations/", None)],
)
def test_an_unknown_organization_is_not_found(api_a, setting, method, path, body):
    before = database_rows()
    response = getattr(api_a, method)(
        _url(path, {**setting, "org": "no-such-org"}), body, format="json"
    )
    assert response.status_code == 404, response.content
    assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before


def test_another_organization_looks_exactly_like_an_unknown_one(api_a, setting, org_b):
    factories.StationFactory(organization=org_b, name="Their hall")
    theirs = api_a.patch(f"/api/v1/orgs/{org_b.slug}/", {"name": "Mine now"}, format="json")
    unknown = api_a.patch("/api/v1/orgs/no-such-org/", {"name": "Mine now"}, format="json")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    org_b.refresh_from_db()
    assert org_b.name != "Mine now"


def test_a_request_that_fails_validation_leaves_earlier_valid_fields_unsaved(api_a, setting):
    """A valid name next to an invalid kind: the station keeps its old name."""
    response = api_a.patch(
        _url("orgs/{org}/stations/{station}/", setting),
        {"name": "Renamed hall", "kind": "submarine"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["kind"]
    station = Station.objects.unscoped_dangerously().get(pk=setting["station"])
    assert station.name == "Main hall"


def test_an_unauthenticated_bad_request_says_sign_in_first(setting):
    response = APIClient().post(
        _url("orgs/{org}/stations/", setting), data="{", content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_json_list_instead_of_an_object_is_refused(api_a, setting):
    before = database_rows()
    response = api_a.post(_url("orgs/{org}/stations/", setting), [], format="json")
    assert response.status_code == 400
    assert "dictionary" in response.json()["detail"]
    assert database_rows() == before
