"""`manage.py orchestrate`: the inference orchestrator's reconcile loop.

One instance is active (see `inference.leader`); others wait and take over when it dies. Each
pass is level-triggered and safe to repeat. An unreachable backend means backing off with the
database state kept; the loop resumes where it was.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from prometheus_client import start_http_server

from inference import metrics
from inference.backends import make_backend
from inference.backends.base import BackendUnavailable
from inference.leader import Leadership
from inference.pools import EMBEDDED_POOLS, PoolConfigError, read_pools_file, sync_pools
from inference.reconcile import Reconciler

log = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = "Run the inference orchestrator: admit, place and scale GPU workloads."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--backend", choices=["local", "kubernetes"], default=None)
        parser.add_argument(
            "--pools",
            type=Path,
            default=None,
            help="JSON list of worker pools (default: INFERENCE_POOLS_FILE, else the embedded "
            "CPU pools).",
        )
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--stop-workers-on-exit",
            action="store_true",
            help="stop the local backend's workers when leaving (make run)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._sync_pools(options["pools"] or settings.INFERENCE_POOLS_FILE)
        backend = make_backend(options["backend"])
        leadership = Leadership()
        heartbeat_file = os.environ.get("ORCHESTRATOR_HEARTBEAT_FILE")
        metrics_port = os.environ.get("ORCHESTRATOR_METRICS_PORT")
        if metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # In a pod of its own: serve the orchestrator's counters (passes, admissions,
            # preemptions). Under `serve` they go to the shared folder the web's /metrics reads.
            start_http_server(int(metrics_port))
        reconciler = Reconciler(backend)
        backoff = options["interval"]
        leading = False
        log.info("orchestrator_started", backend=backend.name, pid=os.getpid())
        try:
            while not self._stopping:
                if heartbeat_file:
                    Path(heartbeat_file).touch()
                if not leadership.try_acquire() or not leadership.still_held():
                    if leading or not hasattr(self, "_announced"):
                        log.info("standing_by", reason="another orchestrator holds the lock")
                        self._announced = True
                    leading = False
                    metrics.LEADER.set(0)
                    self._sleep(options["interval"])
                    continue
                if not leading:
                    log.info("leader_acquired", pid=os.getpid())
                    leading = True
                metrics.LEADER.set(1)
                try:
                    report = reconciler.run_once()
                except (BackendUnavailable, DatabaseError) as error:
                    kind = "backend" if isinstance(error, BackendUnavailable) else "database"
                    metrics.RECONCILE_ERRORS.labels(kind=kind).inc()
                    backoff = min(backoff * 2, 60.0)
                    log.warning("reconcile_failed", kind=kind, error=str(error), retry_in=backoff)
                    if kind == "database":
                        # A new connection next time; leadership is checked again on it.
                        connection.close()
                        leadership.connection_closed()
                    self._sleep(backoff * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
                    continue
                except Exception:
                    # A controller outlives a surprise: say it loudly, back off, try again.
                    metrics.RECONCILE_ERRORS.labels(kind="unexpected").inc()
                    backoff = min(backoff * 2, 60.0)
                    log.exception("reconcile_crashed", retry_in=backoff)
                    self._sleep(backoff)
                    continue
                backoff = options["interval"]
                metrics.observe_pass(report)
                if not report.idle:
                    log.info("reconciled", **report.__dict__)
                if options["once"]:
                    break
                # No close_old_connections() here: on PostgreSQL the leader lock lives with this
                # connection, and closing it by age would hand leadership around every minute.
                self._sleep(options["interval"])
        finally:
            leadership.release()
            if options["stop_workers_on_exit"] and hasattr(backend, "stop_all"):
                backend.stop_all()
            backend.close()

    def _sync_pools(self, path: Path | None) -> None:
        try:
            definitions = read_pools_file(path) if path else EMBEDDED_POOLS
            for change in sync_pools(definitions):
                log.info("pool_synced", change=change)
        except PoolConfigError as error:
            raise CommandError(str(error)) from error

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))
