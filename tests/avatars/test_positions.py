"""Positions: create, change, list and delete the jobs an organization hires into."""

from __future__ import annotations

import pytest

from avatars.models import Position
from tenants.models import AuditEntry
from tests.avatars.factories import EmploymentFactory, PositionFactory
from tests.support import database_rows

pytestmark = pytest.mark.django_db


def _url(org, suffix=""):
    return f"/api/v1/orgs/{org.slug}/positions/{suffix}"


def test_an_admin_opens_a_position_with_languages_in_their_conventional_spelling(org_a, api_a):
    response = api_a.post(
        _url(org_a),
        {
            "title": "Health live-stream anchor",
            "department": "Outpatient",
            "duties": "Explain seasonal flu prevention live, twice a week.",
            "required_languages": ["zh-cn", "YUE-hk", "zh-CN"],
            "required_skills": ["live_anchor"],
            "headcount": 2,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["required_languages"] == ["zh-CN", "yue-HK"]
    assert body["required_skills"] == ["live_anchor"]
    assert body["headcount"] == 2
    position = Position.objects.for_organization(org_a).get(pk=body["id"])
    assert position.title == "Health live-stream anchor"
    entry = AuditEntry.objects.for_organization(org_a).get(action="position.create")
    assert entry.object_id == body["id"]


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"required_languages": ["Mandarin"]}, "required_languages", "not a BCP-47 language tag"),
        ({"required_languages": ["zh_CN"]}, "required_languages", "zh-CN, yue-HK"),
        ({"required_skills": ["juggling"]}, "required_skills", "not a valid choice"),
        ({"headcount": 0}, "headcount", "greater than or equal to 1"),
        ({"title": ""}, "title", "blank"),
    ],
)
def test_a_bad_position_says_which_field_to_fix_and_writes_nothing(
    org_a, api_a, payload, field, fragment
):
    before = database_rows()

    response = api_a.post(_url(org_a), {"title": "Service desk", **payload}, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert fragment in str(response.json()["fields"][field])
    assert database_rows() == before


def test_positions_are_listed_and_filtered_by_department(org_a, api_a):
    outpatient = PositionFactory(organization=org_a, department="Outpatient")
    PositionFactory(organization=org_a, department="Pharmacy")

    response = api_a.get(_url(org_a), {"department": "Outpatient"})

    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [str(outpatient.pk)]


def test_a_change_is_audited(org_a, api_a):
    position = PositionFactory(organization=org_a, headcount=1)

    response = api_a.patch(_url(org_a, f"{position.pk}/"), {"headcount": 3}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["headcount"] == 3
    entry = AuditEntry.objects.for_organization(org_a).get(action="position.update")
    assert entry.before["headcount"] == 1
    assert entry.after["headcount"] == 3


def test_the_headcount_cannot_drop_below_the_hires_the_position_has(org_a, api_a):
    position = PositionFactory(organization=org_a, headcount=2)
    EmploymentFactory(organization=org_a, position=position)
    EmploymentFactory(organization=org_a, position=position)
    EmploymentFactory(organization=org_a, position=position, status="terminated")
    before = database_rows()

    response = api_a.patch(_url(org_a, f"{position.pk}/"), {"headcount": 1}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "headcount_below_hires"
    assert "has 2 hires" in response.json()["detail"]
    assert database_rows() == before


def test_a_position_with_employments_cannot_be_deleted(org_a, api_a):
    position = PositionFactory(organization=org_a)
    EmploymentFactory(organization=org_a, position=position, status="terminated")
    before = database_rows()

    response = api_a.delete(_url(org_a, f"{position.pk}/"))

    assert response.status_code == 409
    assert response.json()["code"] == "position_has_employments"
    assert "cannot be deleted" in response.json()["detail"]
    assert database_rows() == before


def test_a_position_without_employments_is_deleted_and_audited(org_a, api_a):
    position = PositionFactory(organization=org_a)

    response = api_a.delete(_url(org_a, f"{position.pk}/"))

    assert response.status_code == 204
    assert not Position.objects.for_organization(org_a).exists()
    entry = AuditEntry.objects.for_organization(org_a).get(action="position.delete")
    assert entry.before["title"] == position.title
