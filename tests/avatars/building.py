"""Running a build's workload as a worker would, inside the test process.

Real: the control plane (admission and placement by the reconcile pass, the worker protocol's
HTTP endpoints — register, assignments, reports, the footage download and the bundle uploads —
with the worker's own token), the build pipeline's compute, and the avatars side that follows
the workload. Simulated: the worker process around the pipeline (a `WorkloadContext` whose
reports go straight to the reports endpoint through Django's test client instead of through the
worker's outbox over a socket), and the cluster (a fake backend "starts" the worker). The
committed-transaction hooks (`transaction.on_commit`) are run as each request ends, as they run
in production; tests/inference/test_end_to_end.py runs a real worker process instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import TestCase
from rest_framework.test import APIClient

from avatars.models import AvatarBuild
from inference import contracts
from inference.models import WorkerPool, Workload, WorkloadState
from inference.pipelines import build as build_pipeline
from inference.reconcile import Reconciler
from inference.worker.client import ProtocolError
from inference.worker.pipelines import PipelineFailed, WorkloadContext, WorkloadStopped
from tests.inference.fakes import FakeBackend


@pytest.fixture
def build_pool(db) -> WorkerPool:
    """The embedded default's build pool (one CPU slot a worker)."""
    pool, _created = WorkerPool.objects.get_or_create(
        name="build-cpu",
        defaults={
            "pipeline": "build",
            "gpu_class": "cpu",
            "gpus_per_worker": 0,
            "slots_per_worker": 1,
            "image": "local",
            "maximum": 1,
            "batch": True,
        },
    )
    return pool


def committing():
    """Run the callbacks of the transactions that "commit" inside the block when it ends."""
    return TestCase.captureOnCommitCallbacks(execute=True)


class TestClientControl:
    """The worker's `ControlPlaneClient`, over Django's test client with the worker's token."""

    def __init__(self, token: str) -> None:
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with committing():
            response = self.api.post(path, body, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    def download_input(self, workload_id: str, attempt: int, name: str, destination: Path) -> None:
        path = contracts.INPUT_PATH.format(workload=workload_id, name=name)
        response = self.api.get(f"{path}?attempt={attempt}")
        if response.status_code != 200:
            raise ProtocolError(f"{path}: {response.status_code}", response.status_code)
        destination.write_bytes(b"".join(response.streaming_content))

    def upload_output(
        self, workload_id: str, attempt: int, name: str, source: Path, sha256: str
    ) -> dict[str, Any]:
        path = contracts.OUTPUT_PATH.format(workload=workload_id, name=name)
        with committing():
            response = self.api.generic(
                "PUT",
                f"{path}?attempt={attempt}",
                source.read_bytes(),
                content_type="application/octet-stream",
                HTTP_X_CONTENT_SHA256=sha256,
            )
        if response.status_code != 200:
            raise ProtocolError(f"{path}: {response.status_code}", response.status_code)
        return response.json()


class SimulatedWorker:
    """The build pool's workers, as the real reconcile pass starts them and places work on them,
    each registering and speaking the protocol through the test client."""

    def __init__(self) -> None:
        self.backend = FakeBackend()
        self.reconciler = Reconciler(self.backend)
        self.controls: dict[str, TestClientControl] = {}  # by backend id, registered ones
        self.control: TestClientControl | None = None  # the latest worker's

    def pass_once(self) -> None:
        with committing():
            self.reconciler.run_once()

    def place(self, workload: Workload) -> contracts.Assignment:
        self.pass_once()  # admits the workload and starts a worker for it
        for worker_id, spec in self.backend.specs.items():
            if worker_id in self.controls or worker_id not in self.backend.workers:
                continue
            self.control = self.controls[worker_id] = TestClientControl(spec.token)
            registration = contracts.Registration(contracts.PROTOCOL_VERSION, 1, ("build",))
            self.control.post(contracts.REGISTER_PATH, registration.to_json())
            self.backend.set_phase(worker_id, "running")
        self.pass_once()  # places it on the worker
        workload.refresh_from_db()
        assert workload.state == WorkloadState.PLACED, (workload.state, workload.reason)
        assert self.control is not None
        taken = self.control.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 1})
        (assignment,) = [
            contracts.Assignment.from_json(item)
            for item in taken["assignments"]
            if item["workload_id"] == str(workload.pk)
        ]
        return assignment

    def lose(self, workload: Workload) -> None:
        """The workload's worker dies (its pod is OOMKilled); the next pass notices."""
        workload.refresh_from_db()
        assert workload.worker is not None
        self.backend.set_phase(workload.worker.backend_id, "failed", reason="OOMKilled")
        self.pass_once()

    def report(self, assignment: contracts.Assignment, kind: str, fields: dict[str, Any]) -> None:
        assert self.control is not None
        report = contracts.Report(
            report_id=uuid.uuid4().hex,
            workload_id=assignment.workload_id,
            attempt=assignment.attempt,
            kind=kind,  # type: ignore[arg-type]
            **fields,
        )
        self.control.post(contracts.REPORTS_PATH, {"reports": [report.to_json()]})

    def run(
        self,
        assignment: contracts.Assignment,
        pipeline: Callable[[WorkloadContext], dict[str, Any]] = build_pipeline.run,
    ) -> WorkloadContext:
        """Run the pipeline on the assignment as the worker's runner does, reporting as it goes."""

        def emit(kind: contracts.ReportKind, fields: dict[str, Any]) -> None:
            self.report(assignment, kind, fields)

        ctx = WorkloadContext(assignment, gpus=0, emit=emit, control=self.control)  # type: ignore[arg-type]
        try:
            output = pipeline(ctx)
        except WorkloadStopped:
            return ctx
        except PipelineFailed as failure:
            emit("result", {"status": "failed", "reason": str(failure), "output": failure.output})
            return ctx
        except Exception as crash:  # as the runner: a crash fails the workload, saying what
            emit("result", {"status": "failed", "reason": f"the build pipeline crashed: {crash!r}"})
            return ctx
        emit("result", {"status": "succeeded", "output": output})
        return ctx


def run_build(build: AvatarBuild, **kwargs: Any) -> AvatarBuild:
    """Place the build's workload on a simulated worker, run the build pipeline, report."""
    workload = Workload.objects.for_organization(build.organization).get(pk=build.workload_id)
    worker = SimulatedWorker()
    worker.run(worker.place(workload), **kwargs)
    return AvatarBuild.objects.for_organization(build.organization).get(pk=build.pk)
