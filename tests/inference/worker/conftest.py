"""Fixtures: the stand-in control plane, and the real worker in a thread or in its own process."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inference import contracts
from inference.worker.client import Backoff
from inference.worker.config import WorkerConfig
from inference.worker.runner import Worker
from tests.inference.worker.fake_control_plane import TOKEN, FakeControlPlane

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def control_plane() -> Iterator[FakeControlPlane]:
    plane = FakeControlPlane()
    yield plane
    plane.close()


@dataclasses.dataclass
class ThreadedWorker:
    worker: Worker
    thread: threading.Thread
    exit_code: list[int]

    def stop(self) -> int:
        """Drain (as SIGTERM does), wait for the worker to leave, return its exit code."""
        self.worker.request_drain()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the worker did not leave"
        return self.exit_code[0]


@pytest.fixture
def start_worker(control_plane: FakeControlPlane, tmp_path: Path) -> Iterator[Any]:
    """Start the real `Worker` in a thread (no signals there; `stop()` drains as SIGTERM does).
    Backoff is short so that outages in tests take tenths of seconds, not seconds."""
    started: list[ThreadedWorker] = []

    def start(**overrides: Any) -> ThreadedWorker:
        fields: dict[str, Any] = {
            "control_url": control_plane.url,
            "token": TOKEN,
            "worker_id": f"worker-{len(started)}",
            "slots": 2,
            "gpus": 1,
        }
        pipelines = overrides.pop("pipelines", None)
        fields.update(overrides)
        worker = Worker(
            WorkerConfig(**fields), pipelines=pipelines, backoff=Backoff(base_s=0.02, cap_s=0.2)
        )
        exit_code: list[int] = []
        thread = threading.Thread(target=lambda: exit_code.append(worker.run()), daemon=True)
        thread.start()
        handle = ThreadedWorker(worker, thread, exit_code)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.worker.request_drain()
        handle.worker.request_drain()
        handle.thread.join(60)


def worker_env(control_plane: FakeControlPlane, **extra: str) -> dict[str, str]:
    """The environment a backend gives `python -m inference.worker` (nothing of Django)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{REPO}",
        contracts.ENV_CONTROL_URL: control_plane.url,
        contracts.ENV_WORKER_TOKEN: TOKEN,
        contracts.ENV_WORKER_ID: "worker-proc",
        contracts.ENV_SLOTS: "2",
    }
    env.update(extra)
    return env


@dataclasses.dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Any]:
    """Start `python -m inference.worker` as a real process, its output in a file."""
    spawned: list[WorkerProcess] = []

    def spawn(env: dict[str, str]) -> WorkerProcess:
        log = tmp_path / f"worker-{len(spawned)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "inference.worker"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        handle = WorkerProcess(process, log)
        spawned.append(handle)
        return handle

    yield spawn
    for handle in spawned:
        if handle.process.poll() is None:
            handle.process.kill()
        handle.process.wait(30)
