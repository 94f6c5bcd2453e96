"""The worker protocol over HTTP: authentication, idempotent reports, attempt fencing, strict
validation that changes nothing, release.

Real: Django's URL routing, DRF views and serializers, the database. Simulated: the worker
(requests are made by the test client) and the cluster (a fake backend starts "workers").
"""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from inference import contracts, services
from inference.models import (
    UsageReport,
    Worker,
    WorkerState,
    Workload,
    WorkloadState,
)
from inference.reconcile import Reconciler
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker
from tests.support import database_rows


@pytest.fixture
def placed(org_a, pool):
    """A workload placed on a registered worker, and that worker's client."""
    workload, _ = services.submit(org_a, kind="live", spec={"seconds": 1}, pool_name=pool.name)
    client, _token = place_on_new_worker(FakeBackend(), workload, "live")
    return workload, client


def _report(workload, kind="progress", report_id=None, **fields):
    return {
        "report_id": report_id or uuid.uuid4().hex,
        "workload_id": str(workload.id),
        "attempt": fields.pop("attempt", workload.attempts),
        "kind": kind,
        **fields,
    }


def _send(client, *reports):
    return client.post(contracts.REPORTS_PATH, {"reports": list(reports)}, format="json")


def test_a_worker_without_a_valid_token_is_refused(db):
    client = APIClient()
    assert client.post(contracts.HEARTBEAT_PATH, {}, format="json").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer ibw_not-a-token")
    response = client.post(contracts.HEARTBEAT_PATH, {}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_worker_token"


def test_an_organization_api_key_is_not_a_worker_token(org_a, api_a):
    response = api_a.post(contracts.HEARTBEAT_PATH, {"slots_used": 0, "running": []})
    assert response.status_code in (401, 403)


def test_register_takes_and_reports(placed):
    workload, client = placed
    taken = client.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 4}, format="json").json()
    (assignment,) = taken["assignments"]
    assert assignment["workload_id"] == str(workload.id)
    assert (assignment["attempt"], assignment["pipeline"]) == (1, "live")
    # A lost reply loses nothing: taking again returns the same assignment until a report.
    again = client.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 4}, format="json").json()
    assert again["assignments"] == taken["assignments"]

    response = _send(client, _report(workload, progress=0.25))
    assert list(response.json()["outcomes"].values()) == ["accepted"]
    workload.refresh_from_db()
    assert (workload.state, workload.progress) == (WorkloadState.RUNNING, 0.25)
    assert client.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 4}, format="json").json() == {
        "assignments": []
    }


def test_a_retried_usage_report_counts_once(placed, org_a):
    workload, client = placed
    usage = _report(workload, "usage", report_id="usage-0001", usage={"gpu_seconds": 30.0})
    first = _send(client, usage).json()["outcomes"]
    second = _send(client, usage).json()["outcomes"]
    assert (first["usage-0001"], second["usage-0001"]) == ("accepted", "duplicate")
    rows = UsageReport.objects.for_organization(org_a)
    assert [r.gpu_seconds for r in rows] == [30.0]


def test_a_report_of_an_old_attempt_is_stale_but_its_usage_counts(placed, org_a):
    workload, client = placed
    services.cancel(workload, "Stopped by an operator.")
    response = _send(
        client,
        _report(workload, "result", status="succeeded", usage={"stream_minutes": 2.0}),
    )
    assert list(response.json()["outcomes"].values()) == ["stale"]
    workload.refresh_from_db()
    assert workload.state == WorkloadState.CANCELLED
    assert UsageReport.objects.for_organization(org_a).get().stream_minutes == 2.0


def test_a_failed_result_keeps_the_workers_reason(placed):
    workload, client = placed
    _send(client, _report(workload, "result", status="failed", reason="The portrait is missing."))
    workload.refresh_from_db()
    assert (workload.state, workload.reason) == (WorkloadState.FAILED, "The portrait is missing.")


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "result"},  # a result without a status
        {"kind": "usage"},  # usage without quantities
        {"kind": "usage", "usage": {"gpu_seconds": -5}},
        {"kind": "progress", "progress": 1.5},
        {"kind": "teleport"},
        {"kind": "progress", "attempt": 0},
    ],
)
def test_a_malformed_batch_is_refused_whole_and_changes_nothing(placed, bad):
    workload, client = placed
    good = _report(workload, progress=0.5)
    before = database_rows()
    response = _send(client, good, {**_report(workload), **bad})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert database_rows() == before


def test_heartbeat_tells_a_draining_worker(placed):
    workload, client = placed
    worker = Worker.objects.unscoped_dangerously().get(id=workload.worker_id)
    services.drain(worker)
    reply = client.post(
        contracts.HEARTBEAT_PATH, {"slots_used": 1, "running": [str(workload.id)]}, format="json"
    ).json()
    assert reply["drain"] is True and reply["cancel"] == []


def test_release_requeues_what_the_worker_held_and_retires_its_token(placed):
    workload, client = placed
    assert client.post(contracts.RELEASE_PATH, {}, format="json").status_code == 200
    workload.refresh_from_db()
    assert (workload.state, workload.reason_code) == (WorkloadState.QUEUED, "worker_released")
    worker = Worker.objects.unscoped_dangerously().get(backend_id__startswith="ibw-")
    assert worker.state == WorkerState.GONE
    assert client.post(contracts.RELEASE_PATH, {}, format="json").status_code == 401


def test_a_worker_cannot_report_on_another_organizations_workload(placed, org_b, pool):
    _workload, client = placed
    foreign, _ = services.submit(org_b, kind="live", spec={}, pool_name=pool.name)
    response = _send(client, _report(foreign, attempt=1))
    assert list(response.json()["outcomes"].values()) == ["stale"]
    foreign.refresh_from_db()
    assert foreign.state == WorkloadState.QUEUED
    assert not Workload.objects.for_organization(org_b).filter(state="running").exists()


def test_a_worker_cannot_count_usage_on_work_it_never_held(placed, org_a, pool):
    """Another worker of the same organization reports usage on this workload: refused, and
    nothing is written (no usage, no processed report)."""
    from inference.models import ProcessedReport

    workload, _client = placed
    other, _ = services.submit(org_a, kind="live", spec={}, pool_name=pool.name)
    backend = FakeBackend()
    Reconciler(backend).run_once()
    stranger_token = next(
        spec.token for spec in backend.specs.values()
    )  # a second worker of the same organization
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {stranger_token}")
    before = database_rows()
    response = _send(stranger, _report(workload, "usage", usage={"gpu_seconds": 999.0}))
    assert list(response.json()["outcomes"].values()) == ["stale"]
    assert database_rows() == before
    assert not ProcessedReport.objects.filter(workload=workload).exists()
    assert other.state == WorkloadState.QUEUED
