"""The usage endpoints: records of a range in pages, net totals by type and by employment, and
tenancy — a second organization never sees them.

Real: the whole Django stack (routing, session and API-key authentication, filters, cursor
pagination), the conversion and reversal services, the database the suite runs on. Nothing is
simulated; records are made by converting stored usage reports.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from ironbowl.analytics import usage
from ironbowl.analytics.models import UsageRecord
from tenants.audit import SYSTEM
from tests import factories
from tests.analytics import usage_world as world


def url(org, tail: str = "") -> str:
    return f"/api/v1/orgs/{org.slug}/analytics/usage/{tail}"


@pytest.fixture
def ledger(org_a):
    """Organization A's records this month: two hires, a reversal, one unattributed report;
    and one record of last year (outside the default range)."""
    now = timezone.now()
    first, second = (world.attributed_workload(org_a) for _ in "12")
    reports = [
        world.report(first, gpu_seconds=100.5, stream_minutes=3, reported_at=now),
        world.report(second, gpu_seconds=20.25, reported_at=now - dt.timedelta(seconds=1)),
        world.report(world.workload(org_a), interactions=4, reported_at=now),
        world.report(first, gpu_seconds=7.0, reported_at=now - dt.timedelta(days=400)),
    ]
    usage.convert_reports([report.pk for report in reports])
    streamed = UsageRecord.objects.for_organization(org_a).get(
        source_id=f"usage-report:{reports[0].pk}:stream_minutes"
    )
    usage.reverse(org_a, streamed, "Counted on the wrong stream.", SYSTEM)
    return {
        "first": first.spec["employment"],
        "second": second.spec["employment"],
        "old": UsageRecord.objects.for_organization(org_a).get(
            source_id=f"usage-report:{reports[3].pk}:gpu_seconds"
        ),
    }


def test_the_list_shows_this_months_records_newest_first_as_exact_strings(api_a, org_a, ledger):
    response = api_a.get(url(org_a))

    assert response.status_code == 200, response.json()
    rows = response.json()["results"]
    assert len(rows) == 5  # 4 quantities and a reversal; last year's record is outside
    occurred = [row["occurred_at"] for row in rows]
    assert occurred == sorted(occurred, reverse=True)
    (reversal,) = (row for row in rows if row["reverses"] is not None)
    assert (reversal["quantity"], reversal["source_id"]) == (
        "-3.000000",
        f"reversal:{reversal['reverses']}",
    )
    gpu = [row for row in rows if row["usage_type"] == "gpu_seconds"]
    assert sorted(row["quantity"] for row in gpu) == ["100.500000", "20.250000"]
    assert {row["employment"] for row in gpu} == {ledger["first"], ledger["second"]}
    unattributed = next(row for row in rows if row["usage_type"] == "interactions")
    assert (unattributed["employment"], unattributed["station"]) == (None, None)
    # Times in the organization's zone.
    assert rows[0]["occurred_at"].endswith("+08:00")


def test_the_list_filters_by_range_type_and_employment_and_pages(api_a, org_a, ledger):
    old = ledger["old"].occurred_at.astimezone(zoneinfo.ZoneInfo(org_a.time_zone)).date()
    last_year = api_a.get(url(org_a), {"from": old.isoformat(), "to": old.isoformat()})
    assert [row["id"] for row in last_year.json()["results"]] == [ledger["old"].pk]

    gpu = api_a.get(url(org_a), {"usage_type": "gpu_seconds"}).json()["results"]
    assert {row["quantity"] for row in gpu} == {"100.500000", "20.250000"}
    mine = api_a.get(url(org_a), {"employment": ledger["second"]}).json()["results"]
    assert [row["quantity"] for row in mine] == ["20.250000"]

    seen, page = [], api_a.get(url(org_a), {"page_size": 4}).json()
    while True:
        seen += [row["id"] for row in page["results"]]
        if not page["next"]:
            break
        page = api_a.get(page["next"]).json()
    assert len(seen) == len(set(seen)) == 5


def test_the_summary_totals_by_type_and_employment_net_of_reversals(api_a, org_a, ledger):
    response = api_a.get(url(org_a, "summary/"))

    assert response.status_code == 200, response.json()
    body = response.json()
    assert {row["usage_type"]: row["quantity"] for row in body["totals"]} == {
        "gpu_seconds": "120.750000",
        "stream_minutes": "0.000000",
        "interactions": "4.000000",
    }
    assert {
        (row["employment"], row["usage_type"]): row["quantity"] for row in body["by_employment"]
    } == {
        (ledger["first"], "gpu_seconds"): "100.500000",
        (ledger["first"], "stream_minutes"): "0.000000",
        (ledger["second"], "gpu_seconds"): "20.250000",
        (None, "interactions"): "4.000000",
    }
    assert body["time_zone"] == org_a.time_zone
    assert body["from"].endswith("T00:00:00+08:00") and body["from"][8:10] == "01"

    filtered = api_a.get(url(org_a, "summary/"), {"employment": ledger["second"]}).json()
    assert filtered["totals"] == [{"usage_type": "gpu_seconds", "quantity": "20.250000"}]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "2026-03-01", "to": "2026-02-01"}, "bad_range"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "range_too_long"),
        ({"from": "yesterday"}, "invalid"),
        ({"usage_type": "gpu_hours"}, "invalid"),
    ],
)
def test_a_bad_query_is_refused_saying_why(api_a, org_a, query, code):
    for tail in ("", "summary/"):
        response = api_a.get(url(org_a, tail), query)
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == code


def test_another_organization_never_sees_the_records(api_a, api_b, org_a, org_b, ledger):
    """B's own list and summary are empty; A's URLs answer B as a missing organization does;
    filtering by A's employment answers exactly as a random id does."""
    assert api_b.get(url(org_b)).json()["results"] == []
    summary = api_b.get(url(org_b, "summary/")).json()
    assert (summary["totals"], summary["by_employment"]) == ([], [])

    for tail in ("", "summary/"):
        foreign = api_b.get(url(org_a, tail))
        assert foreign.status_code == 404
        assert foreign.json() == {"code": "not_found", "detail": "Not found."}

    for tail in ("", "summary/"):
        theirs = api_b.get(url(org_b, tail), {"employment": ledger["first"]})
        random = api_b.get(url(org_b, tail), {"employment": str(uuid.uuid4())})
        assert theirs.status_code == random.status_code == 400
        assert theirs.json() == random.json()
        assert theirs.json()["fields"]["employment"][0]["code"] == "invalid_choice"


def test_reading_needs_the_analytics_view_scope(org_a, ledger):
    _key, token = factories.make_api_key(org_a, scopes=["stations.view"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(url(org_a)).status_code == 403

    _key, token = factories.make_api_key(org_a, scopes=["analytics.view"])
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(url(org_a, "summary/")).json()["totals"] != []
    assert Decimal(client.get(url(org_a)).json()["results"][0]["quantity"]) != 0
