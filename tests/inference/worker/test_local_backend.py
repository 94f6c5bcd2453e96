"""The local backend with real worker processes.

Real: `LocalBackend`, the `python -m inference.worker` processes it spawns, their signals, exit
statuses, logs and records on disk; in the adoption tests, a first orchestrator that is a real
process killed with SIGKILL. Simulated: the control plane the workers talk to is a stand-in at
the HTTP boundary (`FakeControlPlane`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference.backends.base import PoolSpec, WorkerSpec
from inference.backends.local import LocalBackend
from tests.inference.worker.conftest import REPO
from tests.inference.worker.fake_control_plane import TOKEN


def pool(batch: bool = False) -> PoolSpec:
    return PoolSpec(
        name="diagnostic-cpu",
        pipeline="diagnostic",
        model="",
        gpu_class="cpu",
        gpus_per_worker=0,
        slots_per_worker=2,
        image="local",
        batch=batch,
    )


def spec(control_plane, worker_id="w-1", token=TOKEN, batch=False) -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id,
        organization="alpha-hospital",
        pool=pool(batch),
        token=token,
        control_url=control_plane.url,
    )


def wait_until(condition, timeout=30.0):
    """Poll `condition` (the backend has no events to wait on) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.05)


@pytest.fixture
def state_dir(tmp_path) -> Path:
    return tmp_path / "workers"


@pytest.fixture
def backend(state_dir):
    backend = LocalBackend(state_dir, grace_s=30)
    yield backend
    backend.stop_all(timeout_s=30)


def test_a_started_worker_runs_registers_and_stops_by_draining(backend, control_plane, state_dir):
    backend.start_worker(spec(control_plane))
    backend.start_worker(spec(control_plane))  # starting it again is not an error

    control_plane.wait_for(lambda: control_plane.heartbeats)
    observed = backend.observe()
    assert list(observed) == ["w-1"]
    assert observed["w-1"].phase == "running"
    assert observed["w-1"].organization == "alpha-hospital"
    assert observed["w-1"].pool == "diagnostic-cpu"
    assert len(control_plane.registrations) == 1
    record = (state_dir / "w-1.json").read_text()
    assert TOKEN not in record  # the token lives in the worker's environment only

    backend.stop_worker("w-1", "alpha-hospital")
    wait_until(lambda: backend.observe() == {})

    assert control_plane.releases == 1  # it drained and released, it was not killed
    assert not (state_dir / "w-1.json").exists()
    assert "released; exiting" in backend.log_path("w-1").read_text()


def test_a_killed_worker_is_observed_failed_with_the_signal(backend, control_plane):
    backend.start_worker(spec(control_plane))
    control_plane.wait_for(lambda: control_plane.heartbeats)
    pid = json.loads((backend.state_dir / "w-1.json").read_text())["pid"]

    os.kill(pid, signal.SIGKILL)
    observed = wait_until(lambda: backend.observe()["w-1"].phase == "failed" and backend.observe())

    assert observed["w-1"].reason == "Killed"
    assert "signal 9 (SIGKILL)" in observed["w-1"].message
    assert "registered as" in observed["w-1"].message  # the last lines of its log
    backend.stop_worker("w-1", "alpha-hospital")  # the reconciler forgets it
    assert backend.observe() == {}


def test_a_worker_that_exits_with_an_error_says_why(backend, control_plane):
    backend.start_worker(spec(control_plane, token="revoked"))

    observed = wait_until(lambda: backend.observe()["w-1"].phase == "failed" and backend.observe())

    assert observed["w-1"].reason == "Error"
    assert "exit code 1" in observed["w-1"].message
    assert "refused this worker's token" in observed["w-1"].message


def test_a_batch_worker_leaves_when_idle_and_is_observed_succeeded(state_dir, control_plane):
    backend = LocalBackend(state_dir, batch_idle_s=0.2)
    backend.start_worker(spec(control_plane, batch=True))

    observed = wait_until(lambda: backend.observe()["w-1"].phase != "running" and backend.observe())

    assert observed["w-1"].phase == "succeeded"
    assert observed["w-1"].reason == "Completed"
    assert control_plane.releases == 1


def test_a_worker_that_ignores_sigterm_past_the_grace_is_killed(state_dir, control_plane):
    """The worker has a long workload and a long drain grace of its own, so only the backend's
    SIGKILL (grace 0) can end it: it is gone without having released."""
    backend = LocalBackend(state_dir, grace_s=0, extra_env={"IRONBOWL_DRAIN_GRACE_S": "600"})
    backend.start_worker(spec(control_plane))
    control_plane.offer("wl-long", spec={"seconds": 600})
    control_plane.wait_for(lambda: "wl-long" in control_plane.running())

    backend.stop_worker("w-1", "alpha-hospital")
    wait_until(lambda: backend.observe() == {})

    assert control_plane.releases == 0


def orchestrator_that_dies(state_dir: Path, control_plane, worker_id: str) -> None:
    """A first orchestrator, in its own process: starts a worker, then is killed with SIGKILL."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from inference.backends.local import LocalBackend\n"
        "from inference.backends.base import PoolSpec, WorkerSpec\n"
        f"pool = PoolSpec(**{pool().__dict__!r})\n"
        f"spec = WorkerSpec(worker_id={worker_id!r}, organization='alpha-hospital', pool=pool,"
        f" token={TOKEN!r}, control_url={control_plane.url!r})\n"
        f"LocalBackend(Path({str(state_dir)!r})).start_worker(spec)\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'platform'}"}
    first = subprocess.Popen(
        [sys.executable, "-c", code], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "started"
    finally:
        first.kill()
        first.wait(30)
        if first.stdout is not None:
            first.stdout.close()


def test_a_new_orchestrator_adopts_and_stops_the_workers_of_one_that_died(state_dir, control_plane):
    orchestrator_that_dies(state_dir, control_plane, "w-adopted")
    control_plane.wait_for(lambda: control_plane.heartbeats)

    second = LocalBackend(state_dir)
    assert second.observe()["w-adopted"].phase == "running"  # the worker outlived the first

    second.stop_worker("w-adopted", "alpha-hospital")
    wait_until(lambda: second.observe() == {})
    assert control_plane.releases == 1  # drained, not killed


def test_an_adopted_worker_killed_unwatched_is_reported_failed(state_dir, control_plane):
    orchestrator_that_dies(state_dir, control_plane, "w-adopted")
    control_plane.wait_for(lambda: control_plane.heartbeats)
    second = LocalBackend(state_dir)
    pid = json.loads((state_dir / "w-adopted.json").read_text())["pid"]

    os.kill(pid, signal.SIGKILL)
    observed = wait_until(
        lambda: second.observe()["w-adopted"].phase == "failed" and second.observe()
    )

    assert observed["w-adopted"].reason == "Killed"
    assert "no exit status" in observed["w-adopted"].message
    second.stop_worker("w-adopted", "alpha-hospital")
    assert second.observe() == {}


def test_a_reused_pid_is_not_mistaken_for_the_worker(state_dir):
    """Records whose pid now belongs to another process: this test process (alive, but not a
    worker) and, with a wrong start time, any process at all."""
    backend = LocalBackend(state_dir)
    mine = Path(f"/proc/{os.getpid()}/stat").read_text()
    my_start = int(mine[mine.rindex(")") + 2 :].split()[19])
    for worker_id, proc_start in (("w-pid-reused", my_start), ("w-other-start", my_start + 1)):
        record = {
            "worker_id": worker_id,
            "organization": "alpha-hospital",
            "pool": "diagnostic-cpu",
            "pid": os.getpid(),
            "started_at": time.time(),
            "proc_start": proc_start,
        }
        (state_dir / f"{worker_id}.json").write_text(json.dumps(record))

    observed = backend.observe()

    assert {o.phase for o in observed.values()} == {"failed"}
    backend.stop_worker("w-pid-reused", "alpha-hospital")  # forgets it, signals nothing
    backend.stop_worker("w-other-start", "alpha-hospital")
    assert backend.observe() == {}
