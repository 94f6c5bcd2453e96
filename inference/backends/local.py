"""The local backend: workers as `python -m inference.worker` subprocesses on this machine.

It is the embedded default (`make run`). Each worker gets its own session (process group), a log
file and a JSON record under the state directory. The records are what lets an orchestrator that
was killed be replaced: the next one reads them, checks that each pid is still *that* worker
(its start time and command line, so a reused pid is not mistaken for it) and carries on
observing and stopping it. Nothing here blocks the reconcile loop: a stop sends SIGTERM and
returns; a later `observe()` sends SIGKILL once the grace period has passed and forgets the
worker when it is gone.

There are no quotas on one machine, so `ensure_tenant` does nothing; admission already kept
every organization within its plan before a worker is started.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import inference
from inference import contracts
from inference.backends.base import ObservedPhase, ObservedWorker, TenantSpec, WorkerSpec
from inference.worker.config import ENV_GPUS, ENV_STATE_DIR, EXIT_FILE

log = logging.getLogger(__name__)

WORKER_MODULE = "inference.worker"
LOG_TAIL_LINES = 20
LOG_TAIL_CHARS = 2000
# Passed through from the orchestrator's environment; nothing else is (no database URL, no
# secret key: a worker holds its own token and nothing of the control plane's).
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "CUDA_VISIBLE_DEVICES")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclasses.dataclass
class _Record:
    """What survives the orchestrator, one JSON file per worker (no token in it)."""

    worker_id: str
    organization: str
    pool: str
    pid: int
    started_at: float  # wall clock, for people
    proc_start: int  # the process's start time in clock ticks since boot (/proc/<pid>/stat)
    stop_requested_at: float | None = None  # wall clock: survives a new orchestrator
    exit_code: int | None = None  # once reaped: ≥ 0 an exit status, < 0 the killing signal

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LocalBackend:
    name = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        grace_s: float = 10.0,
        batch_idle_s: float = 60.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """`grace_s`: how long a stopped worker may drain before SIGKILL. `batch_idle_s`: how
        long a batch pool's worker waits for work before it leaves. `extra_env`: more variables
        for every worker (a model store path, an LLM endpoint)."""
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.grace_s = grace_s
        self.batch_idle_s = batch_idle_s
        self.extra_env = dict(extra_env or {})

    # -- Backend -------------------------------------------------------------------------------

    def ensure_tenant(self, tenant: TenantSpec) -> None:
        """Nothing to do: one machine has no namespaces or quotas (see the module docstring)."""

    def start_worker(self, spec: WorkerSpec) -> None:
        if not _SAFE_ID.match(spec.worker_id):
            raise ValueError(f"worker id {spec.worker_id!r} cannot name a local process")
        if self._record_path(spec.worker_id).exists():
            return  # it exists (running or ended): starting it again is not an error
        worker_dir = self.state_dir / spec.worker_id
        worker_dir.mkdir(parents=True, exist_ok=True)
        (worker_dir / EXIT_FILE).unlink(missing_ok=True)  # from an earlier worker of that name
        log_path = self._log_path(spec.worker_id)
        with log_path.open("ab") as log_file:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", WORKER_MODULE],
                env=self._environment(spec, worker_dir),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                close_fds=True,  # hold no pipe of the orchestrator's open for its lifetime
                start_new_session=True,  # a signal to the orchestrator's group spares it
            )
        _CHILDREN[child.pid] = child
        pid = child.pid
        self._write(
            _Record(
                worker_id=spec.worker_id,
                organization=spec.organization,
                pool=spec.pool.name,
                pid=pid,
                started_at=time.time(),
                proc_start=_proc_start(pid) or 0,
            )
        )
        log.info("started local worker %s (pid %d, log %s)", spec.worker_id, pid, log_path)

    def observe(self) -> dict[str, ObservedWorker]:
        observed: dict[str, ObservedWorker] = {}
        for path in sorted(self.state_dir.glob("*.json")):
            record = self._read(path)
            if record is None:
                continue
            seen = self._observe_one(record)
            if seen is not None:
                observed[record.worker_id] = seen
        return observed

    def stop_worker(self, worker_id: str, organization: str) -> None:
        record = self._read(self._record_path(worker_id))
        if record is None:
            return
        if self._alive(record):
            if record.stop_requested_at is None:
                _signal(record.pid, signal.SIGTERM, group=False)  # the worker drains
                record.stop_requested_at = time.time()
                self._write(record)
            self._observe_one(record)  # gone already, or past its grace: finish now
        else:
            self._forget(record)

    def close(self) -> None:
        """Leave the workers running: the next orchestrator adopts them from their records.
        To end them (the end of `make run`), call `stop_all` first."""

    # -- beyond the protocol -------------------------------------------------------------------

    def stop_all(self, timeout_s: float | None = None) -> None:
        """Stop every worker and wait until all are gone (SIGKILL after the grace period)."""
        for path in self.state_dir.glob("*.json"):
            record = self._read(path)
            if record is not None:
                self.stop_worker(record.worker_id, record.organization)
        deadline = time.monotonic() + (self.grace_s + 5 if timeout_s is None else timeout_s)
        while True:
            for path in self.state_dir.glob("*.json"):
                record = self._read(path)
                if record is not None:
                    self.stop_worker(record.worker_id, record.organization)
            if not any(self.state_dir.glob("*.json")) or time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def log_path(self, worker_id: str) -> Path:
        return self._log_path(worker_id)

    # -- internals -----------------------------------------------------------------------------

    def _observe_one(self, record: _Record) -> ObservedWorker | None:
        """The worker's state now; reaps it, escalates a stop, or forgets a stopped one."""
        if record.exit_code is None and not self._alive(record):
            record.exit_code = self._exit_code(record)
            self._write(record)
        if record.stop_requested_at is not None:
            if record.exit_code is not None:
                self._forget(record)
                return None
            if time.time() - record.stop_requested_at >= self.grace_s:
                log.warning("worker %s outlived its grace period; killing it", record.worker_id)
                _signal(record.pid, signal.SIGKILL, group=True)
            return self._observed(record, "running", "Terminating", "stopping (SIGTERM sent)")
        if record.exit_code is None:
            return self._observed(record, "running")
        if record.exit_code == 0:
            return self._observed(record, "succeeded", "Completed")
        if record.exit_code == _UNKNOWN_EXIT:
            return self._observed(
                record,
                "failed",
                "Killed",
                "it ended while no orchestrator watched it and left no exit status "
                f"(killed by a signal?); last lines of its log:\n{self._log_tail(record)}",
            )
        if record.exit_code < 0:
            signum = -record.exit_code
            return self._observed(
                record,
                "failed",
                "Killed",
                f"killed by signal {signum} ({_signal_name(signum)}); "
                f"last lines of its log:\n{self._log_tail(record)}",
            )
        return self._observed(
            record,
            "failed",
            "Error",
            f"exit code {record.exit_code}; last lines of its log:\n{self._log_tail(record)}",
        )

    def _alive(self, record: _Record) -> bool:
        if record.exit_code is not None:
            return False
        child = _CHILDREN.get(record.pid)
        if child is not None:
            return child.poll() is None
        return _is_worker_process(record.pid, record.proc_start)

    def _exit_code(self, record: _Record) -> int:
        child = _CHILDREN.pop(record.pid, None)
        if child is not None and child.returncode is not None:
            return child.returncode  # negative: the signal that killed it
        # An adopted worker that ended: its parent (gone) cannot tell; the worker wrote its
        # own exit status, unless it was killed.
        try:
            exit_file = self.state_dir / record.worker_id / EXIT_FILE
            return int(json.loads(exit_file.read_text())["code"])
        except (OSError, ValueError, KeyError, TypeError):
            return _UNKNOWN_EXIT

    def _observed(
        self, record: _Record, phase: ObservedPhase, reason: str = "", message: str = ""
    ) -> ObservedWorker:
        return ObservedWorker(
            worker_id=record.worker_id,
            organization=record.organization,
            pool=record.pool,
            phase=phase,
            reason=reason,
            message=message,
        )

    def _environment(self, spec: WorkerSpec, worker_dir: Path) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        # The worker must run the same code as the orchestrator that starts it.
        source_root = str(Path(inference.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (source_root, os.environ.get("PYTHONPATH", "")) if p
        )
        env.update(self.extra_env)
        env.update(dict(spec.environment))
        env.update(dict(spec.secrets))
        env.update(
            {
                contracts.ENV_CONTROL_URL: spec.control_url,
                contracts.ENV_WORKER_TOKEN: spec.token,
                contracts.ENV_WORKER_ID: spec.worker_id,
                contracts.ENV_POOL: spec.pool.name,
                contracts.ENV_PIPELINE: spec.pool.pipeline,
                contracts.ENV_SLOTS: str(spec.pool.slots_per_worker),
                contracts.ENV_METRICS_PORT: "0",
                # Usage is billed as the pool's workers would be, GPUs or not on this machine.
                ENV_GPUS: str(spec.pool.gpus_per_worker),
                ENV_STATE_DIR: str(worker_dir),
            }
        )
        if spec.pool.batch:
            env[contracts.ENV_EXIT_WHEN_IDLE_S] = str(self.batch_idle_s)
        return env

    def _record_path(self, worker_id: str) -> Path:
        return self.state_dir / f"{worker_id}.json"

    def _log_path(self, worker_id: str) -> Path:
        return self.state_dir / f"{worker_id}.log"

    def _read(self, path: Path) -> _Record | None:
        try:
            return _Record(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable worker record %s: %s", path, exc)
            return None

    def _write(self, record: _Record) -> None:
        path = self._record_path(record.worker_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record.to_json()))
        tmp.replace(path)

    def _forget(self, record: _Record) -> None:
        """Drop the record and the worker's state (its log stays, for people)."""
        shutil.rmtree(self.state_dir / record.worker_id, ignore_errors=True)
        self._record_path(record.worker_id).unlink(missing_ok=True)
        log.info("local worker %s is gone", record.worker_id)

    def _log_tail(self, record: _Record) -> str:
        try:
            with self._log_path(record.worker_id).open("rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - 16 * LOG_TAIL_CHARS))
                lines = file.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]


_UNKNOWN_EXIT = -(2**16)  # no exit status could be learnt
# The workers this process started, by pid: the only ones whose exit status the kernel tells us.
# They belong to the process, not to one backend instance (a second instance in the same process
# must still reap them), and holding them here keeps their `Popen` alive as long as they run.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _proc_start(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended
        return None
    return int(fields[19])


def _is_worker_process(pid: int, proc_start: int) -> bool:
    """Is `pid` still the worker of the record (not a later process that reuses the pid)?"""
    started = _proc_start(pid)
    if started is None or (proc_start and started != proc_start):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return WORKER_MODULE.encode() in cmdline


def _signal(pid: int, signum: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, signum)  # the worker leads its own session: pgid == pid
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown"
