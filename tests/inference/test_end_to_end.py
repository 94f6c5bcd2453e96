"""The whole lifecycle on the local backend: real worker processes speak the real protocol.

Real: Django serving the worker protocol (pytest-django's live server), the reconcile pass with
the local backend, `python -m inference.worker` subprocesses running the diagnostic pipeline,
which really holds its slots for the given time. Nothing simulated; the orchestrator loop is
driven by the test (one `run_once` per step) so that each step can be observed.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from inference import services
from inference.backends.local import LocalBackend
from inference.models import UsageReport, Worker, WorkerState, WorkloadState
from inference.reconcile import Reconciler

pytestmark = pytest.mark.slow


@pytest.fixture
def local(live_server, settings, tmp_path, diagnostic_pool):
    settings.INFERENCE_CONTROL_URL = live_server.url
    backend = LocalBackend(tmp_path / "workers", grace_s=5.0)
    yield Reconciler(backend), backend
    backend.stop_all()


def _drive(reconciler, until, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconciler.run_once()
        if until():
            return
        time.sleep(0.3)
    raise AssertionError("the orchestrator did not get there in time")


def _state(workload) -> str:
    workload.refresh_from_db()
    return workload.state


def test_a_diagnostic_workload_runs_reports_usage_and_the_worker_goes(org_a, local):
    reconciler, backend = local
    workload, _ = services.submit(
        org_a, kind="render", spec={"seconds": 1.5}, pool_name="diagnostic-cpu"
    )
    _drive(reconciler, lambda: _state(workload) == WorkloadState.RUNNING)
    worker = Worker.objects.for_organization(org_a).get()
    assert worker.state == WorkerState.READY  # it registered over HTTP
    _drive(reconciler, lambda: _state(workload) == WorkloadState.SUCCEEDED)
    assert workload.progress == 1.0
    assert workload.result["elapsed_s"] >= 1.5
    assert UsageReport.objects.for_organization(org_a).count() >= 1
    # Nothing left to do: the idle worker is drained, stops, and its process exits.
    _drive(reconciler, lambda: Worker.objects.for_organization(org_a).get().state == "gone")
    _drive(reconciler, lambda: not backend.observe())


def test_two_workloads_share_one_worker_and_a_killed_worker_is_replaced(org_a, local):
    reconciler, backend = local
    first, _ = services.submit(
        org_a, kind="render", spec={"seconds": 30}, pool_name="diagnostic-cpu"
    )
    second, _ = services.submit(
        org_a, kind="render", spec={"seconds": 30}, pool_name="diagnostic-cpu"
    )
    _drive(reconciler, lambda: {_state(first), _state(second)} == {WorkloadState.RUNNING})
    assert first.worker_id == second.worker_id  # two slots of one worker

    worker = Worker.objects.for_organization(org_a).get()
    record = backend.observe()[worker.backend_id]
    assert record.phase == "running"
    record_file = backend.state_dir / f"{worker.backend_id}.json"
    os.kill(json.loads(record_file.read_text())["pid"], signal.SIGKILL)

    _drive(reconciler, lambda: _state(first) == WorkloadState.RUNNING and first.attempts == 2)
    worker.refresh_from_db()
    assert worker.state == WorkerState.GONE and worker.reason == "Killed"
    replacement = Worker.objects.for_organization(org_a).exclude(id=worker.id).get()
    assert first.worker_id == replacement.id
    services.cancel(first, "test over")
    services.cancel(second, "test over")


def test_a_render_workload_yields_an_mp4_that_ffprobe_accepts(
    org_a, live_server, settings, tmp_path
):
    """A render workload on the local backend: a real worker process speaks the script with
    espeak-ng, animates the reference portrait with torch and encodes the MP4 with PyAV."""
    from inference.models import WorkerPool
    from inference.pipelines.encode import probe

    settings.INFERENCE_CONTROL_URL = live_server.url
    WorkerPool.objects.create(
        name="render-cpu", pipeline="render", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=1, image="local", maximum=1, batch=True,
    )  # fmt: skip
    renders = tmp_path / "renders"
    backend = LocalBackend(
        tmp_path / "workers",
        grace_s=5.0,
        extra_env={"IRONBOWL_OUTPUT_DIR": str(renders), "IRONBOWL_TORCH_THREADS": "1"},
    )
    reconciler = Reconciler(backend)
    text = "Good evening. This is the health channel of Qinghe hospital."
    workload, _ = services.submit(
        org_a,
        kind="render",
        spec={"text": text, "language": "en", "portrait": "reference"},
        pool_name="render-cpu",
    )
    try:
        _drive(reconciler, lambda: _state(workload) in ("succeeded", "failed"), timeout=180)
    finally:
        backend.stop_all()
    assert workload.state == WorkloadState.SUCCEEDED, workload.reason
    probed = probe(renders / workload.result["video"])
    durations = [stream["duration_s"] for stream in probed["streams"]]
    assert [s["codec"] for s in probed["streams"]] == ["h264", "aac"]
    assert abs(durations[0] - durations[1]) <= 1 / 25
    assert abs(probed["duration_s"] - workload.result["duration_s"]) <= 1 / 25
    usage = UsageReport.objects.for_organization(org_a).get()
    assert usage.rendered_seconds == workload.result["duration_s"]
