"""The pipeline registry and what a pipeline sees of the worker while it runs.

A pipeline is a callable `(WorkloadContext) -> output dict`. It raises `PipelineFailed` for a
failure a person can act on, and calls `ctx.sleep`/`ctx.check_stopped`, which raise
`WorkloadStopped` once the workload is cancelled or handed back. Pipelines register by name,
either as a callable or as a "module:function" path loaded on first use, so a worker that never
runs a render pipeline never imports torch for it:

    PIPELINES.register("render", "inference.pipelines.render:run")
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

from inference import contracts
from inference.worker.client import ControlPlaneClient


class PipelineFailed(Exception):
    """The workload failed; the message is the result's `reason`, shown to people. A `code` (a
    machine word) and its `details` go into the result's output as `{"code", "details"}`, so
    that the control plane can say it again in the reader's language."""

    def __init__(
        self, message: str, *, code: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = dict(details or {})

    @property
    def output(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details} if self.code else {}


# How long a pipeline's measurement of its output stays true enough to report.
STATS_FRESH_S = 5.0


class WorkloadStopped(Exception):
    """The worker stopped the workload (cancelled, preempted or handed back); no result follows."""


class WorkloadContext:
    """One running workload attempt: its assignment, the worker's GPUs, reporting and stopping."""

    def __init__(
        self,
        assignment: contracts.Assignment,
        *,
        gpus: int,
        emit: Callable[[contracts.ReportKind, dict[str, Any]], None],
        control: ControlPlaneClient | None = None,
    ) -> None:
        self.assignment = assignment
        self.gpus = gpus
        self.control = control  # for pipelines that fetch inputs or open a session socket
        self._emit = emit
        self._stop = threading.Event()
        self._script: contracts.ScriptUpdate | None = None
        self._script_lock = threading.Lock()
        self._stats: dict[str, float] = {}
        self._measured_at = 0.0

    @property
    def spec(self) -> dict[str, Any]:
        return self.assignment.spec

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check_stopped(self) -> None:
        if self._stop.is_set():
            raise WorkloadStopped

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or raise `WorkloadStopped` as soon as the workload is stopped."""
        if self._stop.wait(max(0.0, seconds)):
            raise WorkloadStopped

    def progress(self, fraction: float, message: str = "") -> None:
        self._emit("progress", {"progress": min(1.0, max(0.0, fraction)), "message": message})

    def usage(self, usage: contracts.Usage) -> None:
        """Report what was consumed since the previous usage report (a delta)."""
        self._emit("usage", {"usage": usage})

    def measured(self, **numbers: float) -> None:
        """What the pipeline measured of its output just now (a live stream: `fps`, frames per
        second its outputs received); the worker sends the latest with its next heartbeat."""
        with self._script_lock:
            self._stats = {name: float(value) for name, value in numbers.items()}
            self._measured_at = time.monotonic()

    def stats(self) -> dict[str, float]:
        """The latest measurement while it is fresh; nothing once it is older than
        `STATS_FRESH_S` (a stream stuck on a stalled output must not look healthy)."""
        with self._script_lock:
            if time.monotonic() - self._measured_at > STATS_FRESH_S:
                return {}
            return dict(self._stats)

    # -- script updates (live workloads) -------------------------------------------------------

    def receive_script(self, update: contracts.ScriptUpdate) -> None:
        """The worker hands over a newer script from the control plane; the pipeline takes it
        up when it next asks (`script`). A version not newer than the one held is ignored."""
        with self._script_lock:
            if update.version > self._held_version():
                self._script = update

    def script(self) -> contracts.ScriptUpdate | None:
        """The newest script received since the workload started; None if none came."""
        with self._script_lock:
            return self._script

    @property
    def script_version(self) -> int:
        """The newest script version this workload holds (its spec's until an update came)."""
        with self._script_lock:
            return self._held_version()

    def _held_version(self) -> int:  # with the lock held
        if self._script is not None:
            return self._script.version
        return contracts.script_version(self.spec)


Pipeline = Callable[[WorkloadContext], dict[str, Any]]


class PipelineRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, Pipeline | str] = {}

    def register(self, name: str, pipeline: Pipeline | str) -> None:
        self._entries[name] = pipeline

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def get(self, name: str) -> Pipeline | None:
        """The pipeline called `name`, importing it on first use; None when there is none."""
        entry = self._entries.get(name)
        if isinstance(entry, str):
            module_name, _, attribute = entry.partition(":")
            loaded: Pipeline = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = loaded
            return loaded
        return entry


def default_registry() -> PipelineRegistry:
    """Every pipeline this worker image can run."""
    registry = PipelineRegistry()
    registry.register("diagnostic", "inference.worker.diagnostic:run")
    registry.register("render", "inference.pipelines.render:run")
    registry.register("live", "inference.pipelines.live:run")
    registry.register("build", "inference.pipelines.build:run")
    registry.register("converse", "inference.pipelines.converse:run")
    return registry
