"""An organization's workloads through the API: submit (idempotently), read, cancel, history.

Real: the views, serializers, inference.services, the database, audit log. Simulated: no
orchestrator runs, so workloads stay queued unless a test moves them (through the lifecycle's own
`transition`, as the orchestrator would).
"""

from __future__ import annotations

import pytest

from inference.lifecycle import transition
from inference.models import Workload, WorkloadEvent, WorkloadState
from tenants.models import AuditEntry
from tests.support import database_rows


def _url(org, rest: str = "") -> str:
    return f"/api/v1/orgs/{org.slug}/workloads/{rest}"


def _submit(client, org, body, **headers):
    return client.post(_url(org), body, format="json", headers=headers)


@pytest.fixture
def workload(org_a, owner_a, api_a, pool) -> dict:
    response = _submit(api_a, org_a, {"kind": "live", "spec": {"station": "lobby"}, "slots": 2})
    assert response.status_code == 201, response.content
    return response.json()


def test_submitting_queues_a_workload_that_says_why_it_waits(org_a, api_a, pool, workload):
    assert workload["state"] == "queued"
    assert workload["reason_code"] == "queued"
    assert workload["reason"]
    assert workload["pool"] == "live-h100"
    assert workload["gpu_class"] == "h100"
    assert workload["slots"] == 2
    assert workload["priority"] == 40
    assert workload["priority_label"] == "Scheduled live"
    assert workload["spec"] == {"station": "lobby"}
    assert workload["attempts"] == 0
    entry = AuditEntry.objects.for_organization(org_a).get(action="workload.submit")
    assert entry.object_id == workload["id"]


def test_a_public_service_gets_the_highest_priority(org_a, api_a, pool):
    response = _submit(api_a, org_a, {"kind": "live", "public_service": True})

    assert response.status_code == 201, response.content
    assert response.json()["priority"] == 50


def test_the_same_idempotency_key_returns_the_first_workload(org_a, api_a, pool):
    first = _submit(api_a, org_a, {"kind": "live"}, **{"Idempotency-Key": "shift-42"})
    again = _submit(api_a, org_a, {"kind": "live"}, **{"Idempotency-Key": "shift-42"})
    other = _submit(api_a, org_a, {"kind": "live"}, **{"Idempotency-Key": "shift-43"})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["id"] != first.json()["id"]
    assert Workload.objects.for_organization(org_a).count() == 2
    assert AuditEntry.objects.for_organization(org_a).filter(action="workload.submit").count() == 2


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"kind": "live", "pool": "no-such-pool"}, {}, "pool"),
        ({"kind": "render"}, {}, "kind"),  # no active pool runs renders
        ({"kind": "live", "slots": 5}, {}, "slots"),  # a live-h100 worker has 4
        ({"kind": "session", "public_service": True}, {}, "public_service"),
        ({"kind": "live", "spec": ["not", "an", "object"]}, {}, "spec"),
        ({"kind": "live", "spec": {"blob": "x" * 70_000}}, {}, "spec"),
        ({"kind": "live", "priority": 50}, {}, "priority"),  # unknown field
        ({"kind": "live"}, {"Idempotency-Key": "k" * 101}, "Idempotency-Key"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_writes_nothing(
    org_a, api_a, pool, body, headers, field
):
    before = database_rows()

    response = _submit(api_a, org_a, body, **headers)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"], response.json()
    assert database_rows() == before


@pytest.mark.parametrize(
    "portrait_path",
    ["/srv/ironbowl/media/avatars/other-org/a/v1/portrait.png", "../../etc/passwd", "p.png"],
)
def test_a_spec_may_not_name_a_portrait_on_a_disk(org_a, api_a, pool, portrait_path):
    """A worker shares no disk with the control plane, and on one that did the path could name
    any file there (another organization's portraits); a portrait is a workload input."""
    before = database_rows()
    body = {"kind": "live", "spec": {"segments": [{"text": "Hi"}], "portrait_path": portrait_path}}

    response = _submit(api_a, org_a, body)

    assert response.status_code == 400, response.content
    (error,) = response.json()["fields"]["spec"]
    assert error["code"] == "portrait_path_refused"
    assert "inputs.portrait" in error["message"]
    assert database_rows() == before


def test_list_is_newest_first_and_filters_by_state_and_kind(org_a, api_a, pool, workload):
    newer = _submit(api_a, org_a, {"kind": "live"}).json()
    Workload.objects.for_organization(org_a).filter(id=newer["id"]).update(state="running")

    listed = api_a.get(_url(org_a)).json()["results"]
    running = api_a.get(_url(org_a), {"state": "running"}).json()["results"]
    sessions = api_a.get(_url(org_a), {"kind": "session"}).json()["results"]

    assert [row["id"] for row in listed] == [newer["id"], workload["id"]]
    assert [row["id"] for row in running] == [newer["id"]]
    assert sessions == []


def test_cancel_records_the_reason_in_history_and_audit(org_a, api_a, workload):
    response = api_a.post(
        _url(org_a, f"{workload['id']}/cancel/"), {"reason": "Stream ended."}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert response.json()["reason"] == "Stream ended."
    assert response.json()["finished_at"]
    events = api_a.get(_url(org_a, f"{workload['id']}/events/")).json()
    assert [(e["state"], e["reason_code"]) for e in events] == [
        ("queued", "queued"),
        ("cancelled", "cancelled"),
    ]
    assert events[1]["reason"] == "Stream ended."
    entry = AuditEntry.objects.for_organization(org_a).get(action="workload.cancel")
    assert (entry.before["state"], entry.after["state"]) == ("queued", "cancelled")


def test_cancelling_a_finished_workload_changes_nothing(org_a, api_a, workload):
    row = Workload.objects.for_organization(org_a).get(id=workload["id"])
    transition(row, WorkloadState.SUCCEEDED, "done", "Finished.")
    before = database_rows()

    response = api_a.post(_url(org_a, f"{workload['id']}/cancel/"), {}, format="json")

    assert response.status_code == 200
    assert response.json()["state"] == "succeeded"
    assert database_rows() == before


def test_events_tell_the_whole_story_with_times_in_the_organizations_zone(org_a, api_a, workload):
    org_a.time_zone = "Asia/Shanghai"
    org_a.save()
    row = Workload.objects.for_organization(org_a).get(id=workload["id"])
    transition(row, WorkloadState.ADMITTED, "admitted", "Admitted within the plan's quota.")

    events = api_a.get(_url(org_a, f"{workload['id']}/events/")).json()
    detail = api_a.get(_url(org_a, f"{workload['id']}/")).json()

    assert [e["state"] for e in events] == ["queued", "admitted"]
    assert events[1]["reason"] == "Admitted within the plan's quota."
    assert events[1]["at"].endswith("+08:00")
    assert detail["admitted_at"].endswith("+08:00")
    assert WorkloadEvent.objects.for_organization(org_a).count() == 2


def test_another_organizations_workload_is_not_there(org_b, api_b, workload):
    assert api_b.get(_url(org_b, f"{workload['id']}/")).status_code == 404
    assert api_b.post(_url(org_b, f"{workload['id']}/cancel/"), {}).status_code == 404
