"""The reconcile pass against a fake backend at the backend's own interface.

Real: the database, admission, placement, scaling and the protocol's service functions.
Simulated: the cluster (tests/inference/fakes.py) and the worker process (support.py plays it).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from inference import protocol, services
from inference.backends.base import ObservedWorker, StartRefused
from inference.contracts import PROTOCOL_VERSION, Heartbeat, Registration
from inference.models import Worker, WorkerState, Workload, WorkloadEvent, WorkloadState
from tests.inference.support import register_all, report, writes_during


def _workload(org, pool, **fields):
    workload, _created = services.submit(
        org, kind="live", spec={"seconds": 1}, pool_name=pool.name, **fields
    )
    return workload


def _state(workload) -> str:
    workload.refresh_from_db()
    return workload.state


def test_a_workload_goes_from_queued_to_succeeded(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    first = reconciler.run_once()
    assert (first.admitted, first.started, first.placed) == (1, 1, 0)
    assert _state(workload) == WorkloadState.ADMITTED
    assert workload.reason_code == "starting_worker"
    assert backend.tenants[org_a.slug].gpu_quota == 1  # trial: 2 h100 slots → one 4-slot worker

    register_all(backend)
    second = reconciler.run_once()
    assert second.placed == 1
    assert _state(workload) == WorkloadState.PLACED
    assert workload.attempts == 1

    assert report(workload, "progress", progress=0.5) == "accepted"
    assert _state(workload) == WorkloadState.RUNNING
    assert report(workload, "result", status="succeeded") == "accepted"
    assert _state(workload) == WorkloadState.SUCCEEDED
    states = list(WorkloadEvent.objects.for_organization(org_a).values_list("state", flat=True))
    assert states == ["queued", "admitted", "placed", "running", "succeeded"]


def test_a_pass_with_nothing_to_do_writes_nothing(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    report(workload, "progress", progress=0.1)
    reconciler.run_once()  # settles
    calls_before = backend.writes

    statements = writes_during(reconciler.run_once)

    assert statements == []
    assert backend.writes == calls_before
    assert _state(workload) == WorkloadState.RUNNING


def test_a_lost_worker_has_its_work_rescheduled(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    report(workload, "progress", progress=0.2)

    backend.set_phase(worker.backend_id, "failed", "OOMKilled", "container used 80Gi")
    result = reconciler.run_once()

    worker.refresh_from_db()
    assert (worker.state, worker.reason) == (WorkerState.GONE, "OOMKilled")
    assert result.lost == 1 and result.requeued == 1
    assert worker.backend_id not in backend.workers  # its pod was cleaned up
    workload.refresh_from_db()
    # Requeued, admitted again in the same pass and waiting for the replacement worker.
    assert workload.state == WorkloadState.ADMITTED
    assert result.started == 1
    assert "worker_lost" in WorkloadEvent.objects.for_organization(org_a).values_list(
        "reason_code", flat=True
    )
    register_all(backend)
    reconciler.run_once()
    assert _state(workload) == WorkloadState.PLACED
    assert workload.attempts == 2
    # A late report of the first attempt is stale: it does not move the workload.
    assert report(workload, "result", status="failed", attempt=1) == "stale"
    assert _state(workload) == WorkloadState.PLACED


def test_a_silent_worker_is_declared_lost(org_a, pool, backend, reconciler, settings):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    Worker.objects.unscoped_dangerously().filter(id=worker.id).update(
        last_heartbeat_at=timezone.now()
        - dt.timedelta(seconds=settings.INFERENCE_HEARTBEAT_TIMEOUT_S + 1)
    )
    reconciler.run_once()
    worker.refresh_from_db()
    assert (worker.state, worker.reason) == (WorkerState.GONE, "HeartbeatLost")
    assert _state(workload) == WorkloadState.ADMITTED


def test_work_fails_after_its_attempts_are_used_up(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    for _attempt in range(workload.max_attempts):
        reconciler.run_once()
        (worker,) = register_all(backend)
        reconciler.run_once()
        backend.set_phase(worker.backend_id, "failed", "Error", "exit code 1")
    reconciler.run_once()
    workload.refresh_from_db()
    assert workload.state == WorkloadState.FAILED
    assert workload.reason == "Its worker was lost (Error). Gave up after 3 failed attempts."
    assert workload.failures == 3


def test_orphans_are_stopped(org_a, pool, backend, reconciler):
    backend.workers["ibw-stray-1"] = ObservedWorker("ibw-stray-1", org_a.slug, pool.name, "running")
    result = reconciler.run_once()
    assert result.orphans == 1
    assert "ibw-stray-1" not in backend.workers


def test_idle_workers_above_demand_drain_release_and_are_stopped(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    report(workload, "result", status="succeeded")

    reconciler.run_once()
    worker.refresh_from_db()
    assert (worker.state, worker.reason) == (WorkerState.DRAINING, "ScaleDown")
    assert protocol.heartbeat(worker, Heartbeat(0, ()))[0] is True  # told to drain
    protocol.release(worker)  # as the worker does once drained
    reconciler.run_once()
    worker.refresh_from_db()
    assert (worker.state, worker.reason) == (WorkerState.GONE, "ScaleDown")
    assert worker.backend_id not in backend.workers  # its process or pod was cleaned up


def test_a_draining_worker_that_never_leaves_is_stopped(org_a, pool, backend, reconciler, settings):
    services.drain(_ready_worker(org_a, pool, backend, reconciler))
    reconciler.run_once()
    worker = Worker.objects.for_organization(org_a).get()
    assert worker.state == WorkerState.DRAINING  # still has time to release itself
    Worker.objects.unscoped_dangerously().filter(id=worker.id).update(
        draining_since=timezone.now()
        - dt.timedelta(seconds=settings.INFERENCE_HEARTBEAT_TIMEOUT_S + 1),
        last_heartbeat_at=timezone.now(),
    )
    reconciler.run_once()
    worker.refresh_from_db()
    assert (worker.state, worker.reason) == (WorkerState.GONE, "Drained")
    assert worker.backend_id not in backend.workers


def _ready_worker(org, pool, backend, reconciler):
    workload = _workload(org, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    report(workload, "result", status="succeeded")
    return worker


def test_warm_minimum_keeps_a_worker_for_an_active_organization(org_a, pool, backend, reconciler):
    pool.warm_minimum = 1
    pool.save()
    workload = _workload(org_a, pool)
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    report(workload, "result", status="succeeded")
    for _ in range(3):
        reconciler.run_once()
    ready = Worker.objects.for_organization(org_a).filter(state=WorkerState.READY)
    assert ready.count() == 1


def test_a_refused_start_is_recorded_and_backed_off(org_a, pool, backend, reconciler):
    backend.refuse_with = StartRefused("QuotaExceeded", "exceeded quota: requests.nvidia.com/gpu")
    workload = _workload(org_a, pool)
    reconciler.run_once()
    worker = Worker.objects.for_organization(org_a).get()
    assert (worker.state, worker.reason) == (WorkerState.GONE, "QuotaExceeded")
    calls = backend.calls["start_worker"]
    reconciler.run_once()  # within the back-off: no new attempt
    assert backend.calls["start_worker"] == calls
    assert _state(workload) == WorkloadState.ADMITTED


def test_an_unreachable_backend_keeps_state(org_a, pool, backend, reconciler):
    from inference.backends.base import BackendUnavailable

    workload = _workload(org_a, pool)
    reconciler.run_once()
    backend.unreachable = True
    with pytest.raises(BackendUnavailable):
        reconciler.run_once()
    backend.unreachable = False
    register_all(backend)
    reconciler.run_once()
    assert _state(workload) == WorkloadState.PLACED


def test_a_start_that_never_reached_the_backend_is_retried(org_a, pool, backend, reconciler):
    """A crash between the database write and the backend call leaves a starting worker that
    the backend does not know: the next orchestrator starts it again, with a fresh token."""
    _workload(org_a, pool)
    reconciler.run_once()
    worker = Worker.objects.for_organization(org_a).get()
    old_hash = worker.token_hash
    backend.workers.clear()
    reconciler.run_once()
    worker.refresh_from_db()
    assert worker.backend_id in backend.workers
    assert worker.token_hash != old_hash
    assert Worker.objects.for_organization(org_a).count() == 1


def test_bin_packing_fills_the_fullest_worker_first(org_a, pool, backend, reconciler):
    first = [_workload(org_a, pool) for _ in range(2)]
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    worker_ids = {w.worker_id for w in Workload.objects.for_organization(org_a)}
    assert len(worker_ids) == 1
    assert all(_state(w) == WorkloadState.PLACED for w in first)


def test_cancelled_work_is_stopped_at_the_next_heartbeat(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    services.cancel(workload, "Stopped by an operator.")
    drain, cancel = protocol.heartbeat(worker, Heartbeat(1, (str(workload.id),)))
    assert cancel == [str(workload.id)] and drain is False
    assert _state(workload) == WorkloadState.CANCELLED


def test_the_orchestrator_never_undoes_a_concurrent_cancel(org_a, pool):
    """Admission and placement read workloads, then write: a cancel in between must win."""
    from inference.lifecycle import transition

    workload = _workload(org_a, pool)
    seen_by_orchestrator = Workload.objects.for_organization(org_a).get(id=workload.id)
    services.cancel(workload, "Stopped by an operator.")
    assert transition(seen_by_orchestrator, WorkloadState.ADMITTED) is False
    assert seen_by_orchestrator.state == WorkloadState.CANCELLED  # reloaded
    assert _state(workload) == WorkloadState.CANCELLED
    assert not WorkloadEvent.objects.for_organization(org_a).filter(state="admitted").exists()


def test_a_worker_drained_while_starting_stays_draining_when_it_registers(
    org_a, pool, backend, reconciler
):
    _workload(org_a, pool)
    reconciler.run_once()
    worker = Worker.objects.for_organization(org_a).get()
    services.drain(worker)
    protocol.register(worker, Registration(PROTOCOL_VERSION, worker.slots, ("live",)))
    worker.refresh_from_db()
    assert worker.state == WorkerState.DRAINING
    assert worker.last_heartbeat_at is not None


def _fill(org, pool, *sizes):
    """Workloads of these sizes, running: on as few workers as best fit makes them."""
    made = [
        services.submit(org, kind="live", spec={}, pool_name=pool.name, slots=size)[0]
        for size in sizes
    ]
    return made


def test_work_that_fits_no_single_worker_gets_a_new_one(org_a, pool, backend, reconciler):
    """Two 4-slot workers with 1 slot free each: a 2-slot workload fits neither, though the
    total free is 2. A third worker is started for it instead of waiting forever."""
    org_a.plan = "enterprise"
    org_a.save()
    _fill(org_a, pool, 3, 3)
    for _ in range(3):
        reconciler.run_once()
        register_all(backend)
    assert Worker.objects.for_organization(org_a).filter(state="ready").count() == 2
    (late,) = _fill(org_a, pool, 2)
    reconciler.run_once()
    assert _state(late) == WorkloadState.ADMITTED
    assert Worker.objects.for_organization(org_a).filter(state="starting").count() == 1
    register_all(backend)
    reconciler.run_once()
    assert _state(late) == WorkloadState.PLACED


def test_best_fit_prefers_the_fuller_worker(org_a, pool, backend, reconciler):
    """Workers with 1 and 2 slots free: a 1-slot workload goes to the one with 1 free, keeping
    the larger gap for larger work."""
    org_a.plan = "enterprise"
    org_a.save()
    three, two = _fill(org_a, pool, 3, 2)
    for _ in range(3):
        reconciler.run_once()
        register_all(backend)
    assert _state(three) == _state(two) == WorkloadState.PLACED
    assert three.worker_id != two.worker_id
    (small,) = _fill(org_a, pool, 1)
    reconciler.run_once()
    assert _state(small) == WorkloadState.PLACED
    assert small.worker_id == three.worker_id


def test_work_on_a_draining_worker_does_not_start_a_replacement(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    services.drain(worker)
    result = reconciler.run_once()
    assert result.started == 0
    assert _state(workload) == WorkloadState.PLACED  # it finishes where it is


def test_work_stranded_on_a_gone_worker_is_queued_again(org_a, pool, backend, reconciler):
    """Placed just as its worker released itself: nobody would ever run it."""
    workload = _workload(org_a, pool)
    reconciler.run_once()
    (worker,) = register_all(backend)
    reconciler.run_once()
    Worker.objects.unscoped_dangerously().filter(id=worker.id).update(state=WorkerState.GONE)
    result = reconciler.run_once()
    workload.refresh_from_db()
    assert result.requeued == 1
    assert workload.reason_code in ("worker_gone", "starting_worker")
    assert workload.failures == 0


def test_preemptions_do_not_use_up_attempts(org_a, pool, backend, reconciler):
    from inference.lifecycle import requeue

    workload = _workload(org_a, pool)
    for _ in range(4):
        reconciler.run_once()
        register_all(backend)
        reconciler.run_once()
        workload.refresh_from_db()
        requeue(workload, "preempted", "Preempted by a test.", counts_as_failure=False)
    workload.refresh_from_db()
    assert workload.state == WorkloadState.QUEUED
    assert (workload.failures, workload.attempts) == (0, 4)


def test_a_stuck_start_is_the_workloads_reason(org_a, pool, backend, reconciler):
    workload = _workload(org_a, pool)
    reconciler.run_once()
    worker = Worker.objects.for_organization(org_a).get()
    backend.set_phase(
        worker.backend_id, "starting", "Unschedulable", "0/3 nodes: Insufficient nvidia.com/gpu"
    )
    reconciler.run_once()
    workload.refresh_from_db()
    assert workload.reason_code == "worker_pending"
    assert "Insufficient nvidia.com/gpu" in workload.reason
