"""A stand-in control plane at the HTTP boundary, for testing the real worker against it.

It speaks the worker protocol of `inference.contracts` over real HTTP (an `http.server` thread)
and keeps counters: every report id it received, how often, and which it accepted. Faults are
scripted: answer 503 to everything (`down`), answer 503 to the next N calls of one path
(`fail_next`), or accept reports and then lose the answer (`lose_replies`). It is not the
Django implementation; the lead's end-to-end test covers that one.
"""

from __future__ import annotations

import collections
import http.server
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from inference import contracts

TOKEN = "good-token"


class FakeControlPlane:
    def __init__(self, heartbeat_interval_s: float = 0.05) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.cond = threading.Condition()
        # What the test scripts.
        self.offered: dict[str, dict[str, Any]] = {}  # workload id → assignment JSON
        self.cancel: set[str] = set()
        self.scripts: dict[str, dict[str, Any]] = {}  # workload id → {"version", "segments"}
        self.stale: set[tuple[str, int]] = set()
        self.drain = False
        self.down = False
        self.fail_next: collections.Counter[str] = collections.Counter()  # path → 503s left
        self.lose_replies = 0  # report batches processed, then answered 503
        # What the worker did.
        self.registrations: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.takes: list[int] = []  # free_slots of each take
        self.received: collections.Counter[str] = collections.Counter()  # report id → posts
        self.posted: list[dict[str, Any]] = []  # every report posted, each retry again
        self.accepted: dict[str, dict[str, Any]] = {}  # report id → report, in order
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.failed_calls: collections.Counter[str] = collections.Counter()  # path → 5xx sent
        self.releases = 0

        plane = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = plane._handle(self.path, self.headers.get("Authorization"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                """A worker killed mid-request (some tests do that) is not an error here."""

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- scripting -----------------------------------------------------------------------------

    def offer(
        self,
        workload_id: str,
        *,
        spec: dict[str, Any],
        pipeline: str = "diagnostic",
        kind: str = "render",
        slots: int = 1,
        attempt: int = 1,
    ) -> None:
        with self.cond:
            self.offered[workload_id] = contracts.Assignment(
                workload_id=workload_id,
                attempt=attempt,
                kind=kind,
                pipeline=pipeline,
                slots=slots,
                spec=spec,
            ).to_json()

    def wait_for(self, predicate: Callable[[], object], timeout: float = 30.0) -> None:
        """Wait until `predicate()` holds (checked on every request); fail after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {predicate.__doc__ or predicate}")
                self.cond.wait(min(left, 0.1))

    # -- reading -------------------------------------------------------------------------------

    def reports(self, workload_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        with self.cond:
            return [
                r
                for r in self.accepted.values()
                if r["workload_id"] == workload_id and (kind is None or r["kind"] == kind)
            ]

    def result(self, workload_id: str) -> dict[str, Any] | None:
        results = self.reports(workload_id, "result")
        assert len(results) <= 1, results
        return results[0] if results else None

    def running(self) -> set[str]:
        """Workloads the last heartbeat said were running."""
        with self.cond:
            return set(self.heartbeats[-1]["running"]) if self.heartbeats else set()

    # -- the protocol --------------------------------------------------------------------------

    def _handle(self, path: str, auth: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        with self.cond:
            self.cond.notify_all()
            if auth != f"Bearer {TOKEN}":
                return 401, {"detail": "invalid worker token"}
            if path == contracts.REPORTS_PATH:
                for report in body["reports"]:
                    self.received[report["report_id"]] += 1
                    self.posted.append(report)
            if self.down or self.fail_next[path] > 0:
                self.fail_next[path] = max(0, self.fail_next[path] - 1)
                self.failed_calls[path] += 1
                return 503, {"detail": "control plane unavailable"}
            if path == contracts.REGISTER_PATH:
                self.registrations.append(body)
                return 200, {"worker_id": "w-1", "heartbeat_interval_s": self.heartbeat_interval_s}
            if path == contracts.HEARTBEAT_PATH:
                self.heartbeats.append(body)
                held = body.get("scripts", {})
                return 200, {
                    "drain": self.drain,
                    "cancel": sorted(self.cancel),
                    "heartbeat_interval_s": self.heartbeat_interval_s,
                    # As the real one: newer scripts for workloads that said which they hold.
                    "scripts": {
                        workload_id: script
                        for workload_id, script in self.scripts.items()
                        if workload_id in held and script["version"] > held[workload_id]
                    },
                }
            if path == contracts.ASSIGNMENTS_PATH:
                self.takes.append(body["free_slots"])
                return 200, {"assignments": self._outstanding()}
            if path == contracts.REPORTS_PATH:
                outcomes = {r["report_id"]: self._record(r) for r in body["reports"]}
                if self.lose_replies > 0:
                    self.lose_replies -= 1
                    self.failed_calls[path] += 1
                    return 503, {"detail": "the answer was lost"}
                return 200, {"outcomes": outcomes}
            if path == contracts.RELEASE_PATH:
                self.releases += 1
                return 200, {}
            return 404, {"detail": "no such route"}

    def _outstanding(self) -> list[dict[str, Any]]:
        done = {
            (r["workload_id"], r["attempt"])
            for r in self.accepted.values()
            if r["kind"] == "result"
        }
        return [
            a
            for a in self.offered.values()
            if (a["workload_id"], a["attempt"]) not in done
            and a["workload_id"] not in self.cancel
            and (a["workload_id"], a["attempt"]) not in self.stale
        ]

    def _record(self, report: dict[str, Any]) -> str:
        if (report["workload_id"], report["attempt"]) in self.stale:
            outcome = "stale"
        elif report["report_id"] in self.accepted:
            outcome = "duplicate"
        else:
            self.accepted[report["report_id"]] = report
            outcome = "accepted"
        self.outcomes[outcome] += 1
        return outcome
