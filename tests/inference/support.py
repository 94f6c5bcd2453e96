"""Helpers that play a worker through the protocol's service functions."""

from __future__ import annotations

import uuid

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from inference import protocol
from inference.contracts import PROTOCOL_VERSION, REGISTER_PATH, Registration, Report, Usage
from inference.models import Worker, WorkerState, Workload, WorkloadState
from inference.reconcile import Reconciler


def place_on_new_worker(backend, workload: Workload, pipeline: str) -> tuple[APIClient, str]:
    """Start a worker for the workload (one reconcile pass), register it over HTTP with its own
    token, and place the workload on it; returns the worker's client (token set) and token."""
    reconciler = Reconciler(backend)
    known = set(backend.specs)
    reconciler.run_once()
    (worker_id,) = set(backend.specs) - known
    token = backend.specs[worker_id].token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    registration = Registration(PROTOCOL_VERSION, 4, (pipeline,))
    response = client.post(REGISTER_PATH, registration.to_json(), format="json")
    assert response.status_code == 200, response.content
    backend.set_phase(worker_id, "running")
    reconciler.run_once()
    workload.refresh_from_db()
    assert workload.state == WorkloadState.PLACED
    return client, token


def register_all(backend) -> list[Worker]:
    """Every starting worker comes up: the backend runs it and it registers."""
    workers = list(Worker.objects.unscoped_dangerously().filter(state=WorkerState.STARTING))
    for worker in workers:
        backend.set_phase(worker.backend_id, "running")
        protocol.register(worker, Registration(PROTOCOL_VERSION, worker.slots, ("live",)))
    return workers


def report(workload: Workload, kind: str = "progress", **fields) -> str:
    workload.refresh_from_db()
    item = Report(
        report_id=fields.pop("report_id", uuid.uuid4().hex),
        workload_id=str(workload.id),
        attempt=fields.pop("attempt", workload.attempts),
        kind=kind,
        **fields,
    )
    worker = Worker.objects.unscoped_dangerously().select_related("pool", "organization")
    return protocol.apply_reports(worker.get(id=workload.worker_id), [item])[item.report_id]


def usage(**quantities) -> Usage:
    return Usage(**quantities)


def writes_during(action) -> list[str]:
    """The SQL statements that changed something while `action` ran."""
    with CaptureQueriesContext(connection) as queries:
        action()
    verbs = ("INSERT", "UPDATE", "DELETE")
    return [
        q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(verbs)
    ]
