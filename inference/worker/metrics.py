"""The worker's Prometheus metrics (its own registry) and the small server for /metrics, /healthz.

The server is a plain `http.server` so the worker needs nothing beyond prometheus_client.
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.slots_total = Gauge(
            "ironbowl_worker_slots_total", "Slots this worker has.", registry=self.registry
        )
        self.slots_used = Gauge(
            "ironbowl_worker_slots_used", "Slots held by running workloads.", registry=self.registry
        )
        self.assignments_started = Counter(
            "ironbowl_worker_assignments_started",
            "Workload attempts this worker started.",
            registry=self.registry,
        )
        self.assignments_finished = Counter(
            "ironbowl_worker_assignments_finished",
            "Workload attempts that ended, by outcome "
            "(succeeded, failed, cancelled, stale, handed_back).",
            ["outcome"],
            registry=self.registry,
        )
        self.reports_pending = Gauge(
            "ironbowl_worker_reports_pending",
            "Reports in the outbox, not yet answered by the control plane.",
            registry=self.registry,
        )
        self.control_plane_errors = Counter(
            "ironbowl_worker_control_plane_errors",
            "Failed calls to the control plane, by call.",
            ["call"],
            registry=self.registry,
        )


class MetricsServer:
    """Serves /metrics and /healthz in a daemon thread; port 0 picks a free port."""

    def __init__(self, metrics: WorkerMetrics, port: int, healthy: Callable[[], bool]) -> None:
        registry = metrics.registry

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok = healthy()
                    self._answer(200 if ok else 503, "text/plain", b"ok\n" if ok else b"stuck\n")
                else:
                    self._answer(404, "text/plain", b"not found\n")

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Scrapes every few seconds would drown the worker's log."""

        self._server = http.server.ThreadingHTTPServer(("", port), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
