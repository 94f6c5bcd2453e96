"""`python -m inference.worker` as a real process: configuration, signals, exit codes, imports.

Real: the worker process, its environment, SIGTERM, its exit code and log. Simulated: the
control plane is a stand-in at the HTTP boundary (`FakeControlPlane`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from inference import contracts
from tests.inference.worker.conftest import REPO, worker_env


def test_sigterm_drains_lets_running_work_finish_releases_and_exits_0(control_plane, spawn_worker):
    worker = spawn_worker(worker_env(control_plane))
    workload = str(uuid.uuid4())
    control_plane.offer(workload, spec={"seconds": 0.6})
    control_plane.wait_for(lambda: workload in control_plane.running())

    worker.process.send_signal(signal.SIGTERM)

    assert worker.process.wait(60) == 0, worker.output()
    assert control_plane.result(workload)["status"] == "succeeded"
    assert control_plane.releases == 1
    assert "SIGTERM received" in worker.output()


def test_sigterm_hands_back_work_that_outlasts_the_grace(control_plane, spawn_worker):
    worker = spawn_worker(worker_env(control_plane, IRONBOWL_DRAIN_GRACE_S="0", IRONBOWL_GPUS="2"))
    workload = str(uuid.uuid4())
    control_plane.offer(workload, spec={"seconds": 600})
    control_plane.wait_for(lambda: workload in control_plane.running())

    worker.process.send_signal(signal.SIGTERM)

    assert worker.process.wait(60) == 0, worker.output()
    assert control_plane.result(workload) is None
    assert control_plane.reports(workload, "usage")[0]["usage"]["gpu_seconds"] > 0
    assert control_plane.releases == 1


def test_a_refused_token_exits_non_zero_and_says_why(control_plane, spawn_worker):
    worker = spawn_worker(worker_env(control_plane, IRONBOWL_WORKER_TOKEN="stolen"))

    assert worker.process.wait(60) == 1
    assert "refused this worker's token" in worker.output()
    assert "stolen" not in worker.output()  # the token itself is never logged


def test_invalid_configuration_exits_2_naming_every_problem(control_plane, spawn_worker):
    env = worker_env(control_plane, IRONBOWL_SLOTS="many", IRONBOWL_METRICS_PORT="70000")
    del env[contracts.ENV_CONTROL_URL]
    worker = spawn_worker(env)

    assert worker.process.wait(60) == 2
    output = worker.output()
    assert "IRONBOWL_CONTROL_URL is required" in output
    assert "IRONBOWL_SLOTS must be an integer, got 'many'" in output
    assert "IRONBOWL_METRICS_PORT must be a port" in output
    assert control_plane.registrations == []


def test_the_worker_keeps_retrying_registration_while_the_control_plane_is_down(
    control_plane, spawn_worker
):
    with control_plane.cond:
        control_plane.down = True
    worker = spawn_worker(worker_env(control_plane))
    control_plane.wait_for(lambda: control_plane.failed_calls[contracts.REGISTER_PATH] >= 2)
    with control_plane.cond:
        control_plane.down = False

    control_plane.wait_for(lambda: control_plane.registrations)
    control_plane.wait_for(lambda: control_plane.heartbeats)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(60) == 0


def test_the_worker_imports_nothing_of_django():
    """The worker runs in a slim GPU image: importing all of it and every pipeline must not pull
    in Django or the control plane's apps."""
    code = (
        "import pkgutil, importlib, sys, inference.worker, inference.pipelines\n"
        "for package in (inference.worker, inference.pipelines):\n"
        "    for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "import inference.worker.__main__\n"
        "bad = {'django', 'rest_framework', 'tenants', 'avatars', 'scheduling', 'ironbowl'}\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in bad))\n"
        "print(sorted(n for n in sys.modules if n.startswith('inference.')))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    forbidden, loaded = done.stdout.splitlines()
    assert forbidden == "[]"
    assert "'inference.worker.runner'" in loaded  # the check did import the worker
    assert "'inference.pipelines.render'" in loaded  # and the pipelines
    assert "inference.models" not in loaded
