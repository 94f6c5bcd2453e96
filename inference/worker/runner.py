"""The worker's life: register, then heartbeat, take assignments, run them in slots, report.

One control thread talks to the control plane; each workload runs in its own thread and only
puts reports in the outbox. Every call to the control plane may fail: the control thread then
backs off (exponential, jittered, capped) and tries again, while workloads keep running and their
reports wait in the outbox under ids chosen once. A drain (SIGTERM, or the control plane's word)
takes nothing new, lets running work finish within a grace period, hands back what did not
finish by not reporting a result for it, flushes the outbox and releases the worker.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from typing import Any, Literal, TypeVar

from inference import contracts
from inference.worker.client import (
    Backoff,
    ControlPlaneClient,
    ControlPlaneError,
    ControlPlaneUnavailable,
    ProtocolError,
    Unauthorized,
)
from inference.worker.config import WorkerConfig
from inference.worker.metrics import MetricsServer, WorkerMetrics
from inference.worker.outbox import Outbox
from inference.worker.pipelines import (
    PipelineFailed,
    PipelineRegistry,
    WorkloadContext,
    WorkloadStopped,
    default_registry,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 1  # the token was refused, or the control plane speaks another protocol

REPORT_BATCH = 100
FINAL_FLUSH_S = 10.0  # how long a leaving worker keeps trying to deliver what it owes
THREAD_JOIN_S = 10.0  # how long a leaving worker waits for stopped workloads to unwind
MAX_WAIT_S = 1.0  # the control thread looks around at least this often
REMEMBERED_ATTEMPTS = 4096
MAX_TEXT = 2000  # the control plane refuses longer messages and reasons

StopReason = Literal["cancelled", "stale", "handed_back"]
T = TypeVar("T")


@dataclasses.dataclass(eq=False)
class _Running:
    assignment: contracts.Assignment
    ctx: WorkloadContext
    thread: threading.Thread | None = None
    stop_reason: StopReason | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.assignment.workload_id, self.assignment.attempt)

    @property
    def silenced(self) -> bool:
        """Cancelled or moved elsewhere: the control plane has decided, so no progress or
        result is reported any more (usage still is: the time was spent)."""
        return self.stop_reason in ("cancelled", "stale")


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        client: ControlPlaneClient | None = None,
        *,
        pipelines: PipelineRegistry | None = None,
        metrics: WorkerMetrics | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.client = client or ControlPlaneClient(config.control_url, config.token)
        self.pipelines = pipelines or default_registry()
        self.metrics = metrics or WorkerMetrics()
        self.backoff = backoff or Backoff()
        journal = None
        if config.state_dir is not None:
            journal = config.state_dir / f"outbox-{config.worker_id}.jsonl"
        self.outbox = Outbox(journal)
        self.metrics_port: int | None = None  # the port actually bound, once serving

        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running: dict[str, _Running] = {}  # by workload id
        self._finished: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()
        self._interval = config.heartbeat_interval_s
        self._drain_requests = 0
        self._take_now = False  # a slot was freed: take assignments without waiting
        self._fatal = False
        self._last_tick = time.monotonic()

        self.metrics.slots_total.set(config.slots)
        self.metrics.slots_used.set_function(self._slots_used)
        self.metrics.reports_pending.set_function(lambda: len(self.outbox))

    # -- called from other threads (signal handlers, tests) ------------------------------------

    def request_drain(self) -> None:
        """Begin draining; asked a second time, stop waiting for running work."""
        with self._lock:
            self._drain_requests += 1
        self._wake.set()

    # -- the control thread --------------------------------------------------------------------

    def run(self) -> int:
        """Run until released; returns the process exit code."""
        server = self._start_metrics_server()
        try:
            control_id = self._register()
            if control_id is None:
                return EXIT_FATAL if self._fatal else EXIT_OK
            log.info(
                "worker %s registered as %s: %d slot(s), pipeline %s, heartbeat every %.3gs",
                self.config.worker_id,
                control_id,
                self.config.slots,
                self.config.pipeline,
                self._interval,
            )
            return self._loop()
        except Unauthorized as exc:
            log.error(
                "the control plane refused this worker's token (%s); check %s. Exiting.",
                exc,
                contracts.ENV_WORKER_TOKEN,
            )
            self._stop_all("cancelled")
            return EXIT_FATAL
        finally:
            if server is not None:
                server.close()
            self.outbox.close()

    def _register(self) -> str | None:
        registration = contracts.Registration(
            protocol=contracts.PROTOCOL_VERSION,
            slots=self.config.slots,
            pipelines=self.pipelines.names(),
            version=_version(),
            metrics_url=self._metrics_url(),
        )
        while True:
            try:
                control_id, interval = self._call("register", self.client.register, registration)
            except ControlPlaneUnavailable as exc:
                delay = self.backoff.next_delay()
                log.warning("register failed (%s); retrying in %.1fs", exc, delay)
                if self._sleep_unless_drained(delay):
                    log.info("asked to stop before registering; exiting")
                    return None
                continue
            except ProtocolError as exc:
                log.error("the control plane refused the registration: %s. Exiting.", exc)
                self._fatal = True
                return None
            self.backoff.reset()
            self._interval = interval
            return control_id

    def _loop(self) -> int:
        now = time.monotonic()
        next_heartbeat = next_take = now
        retry_at = 0.0
        idle_since: float | None = now
        drain_deadline: float | None = None
        drains_seen = 0

        while True:
            self._wake.clear()
            now = self._last_tick = time.monotonic()

            with self._lock:
                drains = self._drain_requests
                take_now, self._take_now = self._take_now, False
            if drains > drains_seen:
                if drain_deadline is None:
                    drain_deadline = now + self.config.drain_grace_s
                    log.info(
                        "draining: taking nothing new; running work has %.3gs to finish",
                        self.config.drain_grace_s,
                    )
                else:
                    drain_deadline = now  # asked again: stop waiting
                drains_seen = drains
            draining = drain_deadline is not None

            if now >= retry_at:
                # Each call is tried on its own: a broken heartbeat must not hold reports back.
                failures: list[ControlPlaneError] = []
                if now >= next_heartbeat and self._attempt(failures, self._heartbeat):
                    next_heartbeat = now + self._interval
                free = self.config.slots - self._slots_used()
                wanted = not draining and free > 0 and (take_now or now >= next_take)
                if wanted and self._attempt(failures, self._take, free):
                    next_take = now + self._interval
                self._attempt(failures, self._flush)
                if failures:
                    delay = self.backoff.next_delay()
                    retry_at = now + delay
                    if self.backoff.failures == 1:
                        log.warning("control plane call failed (%s); retrying", failures[0])
                    else:
                        log.info(
                            "control plane still failing (%s); next try in %.1fs",
                            failures[0],
                            delay,
                        )
                elif self.backoff.failures:
                    log.info("control plane reachable again")
                    self.backoff.reset()

            with self._lock:
                running = len(self._running)
            if running:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            if drain_deadline is not None:
                if not running or now >= drain_deadline:
                    return self._leave()
            elif (
                self.config.exit_when_idle_s is not None
                and idle_since is not None
                and now - idle_since >= self.config.exit_when_idle_s
            ):
                log.info("idle for %.3gs; leaving", now - idle_since)
                self.request_drain()
                continue

            # Sleep until the next thing is due; a finished workload, a new report or a drain
            # request wakes the loop early.
            calls = [next_heartbeat]
            if not draining and self._slots_used() < self.config.slots:
                calls.append(next_take)
            if len(self.outbox):
                calls.append(now)
            wake_at = min(max(min(calls), retry_at), now + MAX_WAIT_S)
            if drain_deadline is not None:
                wake_at = min(wake_at, drain_deadline)
            if idle_since is not None and self.config.exit_when_idle_s is not None:
                wake_at = min(wake_at, idle_since + self.config.exit_when_idle_s)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))

    def _attempt(
        self, failures: list[ControlPlaneError], call: Callable[..., None], *args: Any
    ) -> bool:
        """Run one exchange; a transient or protocol failure is collected, not raised."""
        try:
            call(*args)
        except (ControlPlaneUnavailable, ProtocolError) as exc:
            failures.append(exc)
            return False
        return True

    def _heartbeat(self) -> None:
        with self._lock:
            running = tuple(self._running)
            # Live workloads say which script version they hold; newer ones come back.
            scripts = {
                workload_id: r.ctx.script_version
                for workload_id, r in self._running.items()
                if r.assignment.kind == "live"
            }
            measured = {workload_id: r.ctx.stats() for workload_id, r in self._running.items()}
        stats = {workload_id: numbers for workload_id, numbers in measured.items() if numbers}
        reply: contracts.HeartbeatReply = self._call(
            "heartbeat",
            self.client.heartbeat,
            contracts.Heartbeat(
                slots_used=self._slots_used(), running=running, scripts=scripts, stats=stats
            ),
        )
        self._interval = reply.heartbeat_interval_s
        for workload_id in reply.cancel:
            self._stop_workload(workload_id, None, "cancelled")
        for workload_id, update in reply.scripts.items():
            with self._lock:
                target = self._running.get(workload_id)
            if target is not None:
                log.info("%s: script version %d received", workload_id, update.version)
                target.ctx.receive_script(update)
        if reply.drain:
            with self._lock:
                asked = self._drain_requests == 0
            if asked:
                log.info("the control plane asks this worker to drain")
                self.request_drain()

    def _take(self, free: int) -> None:
        assignments: list[contracts.Assignment] = self._call(
            "assignments", self.client.take_assignments, free
        )
        for assignment in assignments:
            key = (assignment.workload_id, assignment.attempt)
            with self._lock:
                if key in self._finished:
                    continue  # its result is on its way; the control plane has not seen it yet
                current = self._running.get(assignment.workload_id)
            if current is not None:
                if current.assignment.attempt < assignment.attempt:
                    # The workload moved on to a newer attempt: the old one is superseded.
                    self._stop_workload(assignment.workload_id, current.key[1], "stale")
                continue
            if not 1 <= assignment.slots <= self.config.slots:
                self._refuse(
                    assignment,
                    f"the workload needs {assignment.slots} slot(s); "
                    f"this worker has {self.config.slots}",
                )
                continue
            if assignment.slots > self.config.slots - self._slots_used():
                log.info("%s does not fit in the free slots now; later", assignment.workload_id)
                continue
            self._start(assignment)

    def _flush(self) -> None:
        while True:
            batch = self.outbox.peek(REPORT_BATCH)
            if not batch:
                return
            outcomes = self._send_reports(batch)
            self.outbox.remove(outcomes)
            for report in batch:
                if outcomes.get(report.report_id) == "stale":
                    self._stop_workload(report.workload_id, report.attempt, "stale")
            unanswered = len(batch) - len(outcomes)
            if unanswered:
                # They stay queued; back off rather than ask again at once.
                raise ProtocolError(f"{unanswered} report(s) left unanswered")

    def _send_reports(self, batch: list[contracts.Report]) -> dict[str, str]:
        """Send a batch; if it is refused as malformed, find the culprits one by one and drop
        them (they could never be accepted and would block everything behind them)."""
        try:
            return dict(self._call("reports", self.client.send_reports, batch))
        except ProtocolError as exc:
            if exc.status != 400:
                raise
            if len(batch) == 1:
                log.error("the control plane refused report %s: %s", batch[0].to_json(), exc)
                return {batch[0].report_id: "refused"}
        outcomes: dict[str, str] = {}
        for report in batch:
            outcomes.update(self._send_reports([report]))
        return outcomes

    def _leave(self) -> int:
        """Hand back what still runs, deliver what is owed, release, exit 0."""
        self._stop_all("handed_back")
        with self._lock:
            threads = [r.thread for r in self._running.values() if r.thread is not None]
        join_deadline = time.monotonic() + THREAD_JOIN_S
        for thread in threads:
            thread.join(max(0.0, join_deadline - time.monotonic()))

        deadline = time.monotonic() + FINAL_FLUSH_S
        self.backoff.reset()
        released = False
        while not released:
            try:
                self._flush()
                self._call("release", self.client.release)
                released = True
            except (ControlPlaneUnavailable, ProtocolError) as exc:
                delay = self.backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    log.error("could not reach the control plane to leave cleanly: %s", exc)
                    break
                time.sleep(delay)
        owed = len(self.outbox)
        if owed and self.config.state_dir is not None:
            log.warning("%d report(s) undelivered, kept for the next start", owed)
        elif owed:
            log.error("%d report(s) undelivered and lost (no state directory)", owed)
        if released:
            log.info("worker %s released; exiting", self.config.worker_id)
        else:
            log.warning(
                "worker %s leaves unreleased; the control plane will notice its silence",
                self.config.worker_id,
            )
        return EXIT_OK

    # -- workloads -----------------------------------------------------------------------------

    def _start(self, assignment: contracts.Assignment) -> None:
        def emit(kind: contracts.ReportKind, fields: dict[str, Any]) -> None:
            self._emit(running, kind, fields)

        running = _Running(
            assignment,
            WorkloadContext(assignment, gpus=self.config.gpus, emit=emit, control=self.client),
        )
        running.thread = threading.Thread(
            target=self._run_workload,
            args=(running,),
            name=f"workload-{assignment.workload_id}",
            daemon=True,  # a pipeline stuck in native code must not keep a leaving worker alive
        )
        with self._lock:
            self._running[assignment.workload_id] = running
        self.metrics.assignments_started.inc()
        log.info(
            "starting %s attempt %d (%s, pipeline %s, %d slot(s))",
            assignment.workload_id,
            assignment.attempt,
            assignment.kind,
            assignment.pipeline,
            assignment.slots,
        )
        running.thread.start()

    def _run_workload(self, running: _Running) -> None:
        assignment = running.assignment
        outcome = "failed"
        try:
            outcome = self._run_pipeline(running)
        finally:
            with self._lock:
                if self._running.get(assignment.workload_id) is running:
                    del self._running[assignment.workload_id]
                self._remember(running.key)
                self._take_now = True
            self.metrics.assignments_finished.labels(outcome=outcome).inc()
            log.info("%s attempt %d ended: %s", assignment.workload_id, assignment.attempt, outcome)
            self._wake.set()

    def _run_pipeline(self, running: _Running) -> str:
        """Run the workload's pipeline, report its result; returns the outcome for metrics."""
        assignment = running.assignment
        try:
            pipeline = self.pipelines.get(assignment.pipeline)
            if pipeline is None:
                raise PipelineFailed(
                    f"unknown pipeline {assignment.pipeline!r}; this worker runs "
                    f"{', '.join(self.pipelines.names())}"
                )
            output = pipeline(running.ctx)
            try:
                json.dumps(output)
            except (TypeError, ValueError) as exc:
                raise PipelineFailed(f"the {assignment.pipeline} pipeline's output: {exc}") from exc
        except WorkloadStopped:
            return running.stop_reason or "handed_back"
        except PipelineFailed as exc:
            failure = {"status": "failed", "reason": str(exc), "output": exc.output}
            self._emit(running, "result", failure)
            return "failed"
        except Exception as exc:
            log.exception("pipeline %s crashed on %s", assignment.pipeline, assignment.workload_id)
            reason = f"the {assignment.pipeline} pipeline crashed: {type(exc).__name__}: {exc}"
            self._emit(running, "result", {"status": "failed", "reason": reason})
            return "failed"
        # A workload that completed as it was being handed back still counts as done.
        self._emit(running, "result", {"status": "succeeded", "output": dict(output)})
        return str(running.stop_reason) if running.silenced else "succeeded"

    def _emit(self, running: _Running, kind: contracts.ReportKind, fields: dict[str, Any]) -> None:
        with self._lock:
            # Once the control plane has decided (cancelled, moved elsewhere), only the usage of
            # the time already spent is still owed; progress and results no longer count.
            if running.silenced and kind != "usage":
                return
        for text in ("message", "reason"):
            if len(fields.get(text, "")) > MAX_TEXT:
                fields = {**fields, text: fields[text][: MAX_TEXT - 1] + "…"}
        report = contracts.Report(
            report_id=uuid.uuid4().hex,
            workload_id=running.assignment.workload_id,
            attempt=running.assignment.attempt,
            kind=kind,
            **fields,
        )
        self.outbox.add(report)
        self._wake.set()

    def _refuse(self, assignment: contracts.Assignment, reason: str) -> None:
        log.warning("refusing %s: %s", assignment.workload_id, reason)
        self.outbox.add(
            contracts.Report(
                report_id=uuid.uuid4().hex,
                workload_id=assignment.workload_id,
                attempt=assignment.attempt,
                kind="result",
                status="failed",
                reason=reason,
            )
        )
        with self._lock:
            self._remember((assignment.workload_id, assignment.attempt))
        self.metrics.assignments_finished.labels(outcome="failed").inc()

    def _stop_workload(self, workload_id: str, attempt: int | None, reason: StopReason) -> None:
        with self._lock:
            running = self._running.get(workload_id)
            if running is None or (attempt is not None and running.assignment.attempt != attempt):
                return
            if running.stop_reason == reason or (running.silenced and reason == "handed_back"):
                return  # already stopping; a handback does not undo a cancel
            running.stop_reason = reason
        log.info("stopping %s attempt %d (%s)", workload_id, running.assignment.attempt, reason)
        running.ctx.stop()

    def _stop_all(self, reason: StopReason) -> None:
        with self._lock:
            ids = list(self._running)
        for workload_id in ids:
            self._stop_workload(workload_id, None, reason)

    def _remember(self, key: tuple[str, int]) -> None:
        """Hold the lock. Attempts that ended are not started again when offered again."""
        self._finished[key] = None
        while len(self._finished) > REMEMBERED_ATTEMPTS:
            self._finished.popitem(last=False)

    def _slots_used(self) -> int:
        with self._lock:
            return sum(r.assignment.slots for r in self._running.values())

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, name: str, function: Callable[..., T], *args: Any) -> T:
        try:
            return function(*args)
        except ControlPlaneError:
            self.metrics.control_plane_errors.labels(call=name).inc()
            raise

    def _sleep_unless_drained(self, seconds: float) -> bool:
        """Sleep; True when a drain was asked meanwhile (or before)."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if self._drain_requests:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._wake.wait(left)
            self._wake.clear()

    def healthy(self) -> bool:
        """The control thread has looked around recently (it does so at least every second)."""
        return time.monotonic() - self._last_tick < max(30.0, 3 * self._interval)

    def _start_metrics_server(self) -> MetricsServer | None:
        if self.config.metrics_port is None:
            return None
        server = MetricsServer(self.metrics, self.config.metrics_port, self.healthy)
        server.start()
        self.metrics_port = server.port
        log.info("metrics on http://0.0.0.0:%d/metrics (and /healthz)", server.port)
        return server

    def _metrics_url(self) -> str:
        if self.metrics_port is None:
            return ""
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
        return f"http://{host}:{self.metrics_port}/metrics"


def _version() -> str:
    try:
        return metadata.version("ironbowl")
    except metadata.PackageNotFoundError:
        return ""
