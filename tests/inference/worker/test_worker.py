"""The worker's protocol behaviour, in a thread of the test process.

Real: the worker (`inference.worker.runner.Worker`), its HTTP client, outbox, pipelines and
metrics server, talking real HTTP. Simulated: the control plane is a stand-in at the HTTP
boundary (`FakeControlPlane`), scripted per test; signals are replaced by `request_drain()`,
which is what the SIGTERM handler calls (the process tests send real signals).
"""

from __future__ import annotations

import json
import urllib.request
import uuid

from inference import contracts
from inference.worker import runner
from inference.worker.pipelines import default_registry


def new_id() -> str:
    return str(uuid.uuid4())


def test_registers_runs_a_diagnostic_and_reports_progress_usage_and_result(
    control_plane, start_worker
):
    handle = start_worker(slots=2, gpus=1)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0.4, "message": "hello"})

    control_plane.wait_for(lambda: control_plane.result(workload))

    registration = control_plane.registrations[0]
    assert registration["slots"] == 2
    assert registration["protocol"] == contracts.PROTOCOL_VERSION
    assert "diagnostic" in registration["pipelines"]
    assert control_plane.takes[0] == 2  # asked for work with both slots free
    result = control_plane.result(workload)
    assert result["status"] == "succeeded"
    assert result["output"]["message"] == "hello"
    assert result["output"]["elapsed_s"] >= 0.4  # it really held its slot that long
    progress = [r["progress"] for r in control_plane.reports(workload, "progress")]
    assert progress == [0.25, 0.5, 0.75]
    usage = [r["usage"] for r in control_plane.reports(workload, "usage")]
    # Deltas that add up to the time it ran, × 1 GPU; not a live stream, so no stream minutes.
    assert sum(u["gpu_seconds"] for u in usage) >= 0.4
    assert all(u["stream_minutes"] == 0 for u in usage)
    assert any(workload in beat["running"] for beat in control_plane.heartbeats)

    assert handle.stop() == 0
    assert control_plane.releases == 1


def test_live_workloads_report_stream_minutes_and_cpu_workers_no_gpu_seconds(
    control_plane, start_worker
):
    start_worker(gpus=0)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0.3}, kind="live")

    control_plane.wait_for(lambda: control_plane.result(workload))

    usage = [r["usage"] for r in control_plane.reports(workload, "usage")]
    assert sum(u["stream_minutes"] for u in usage) >= 0.3 / 60
    assert sum(u["gpu_seconds"] for u in usage) == 0


def test_an_assignment_holds_its_slots_until_it_ends(control_plane, start_worker):
    start_worker(slots=2)
    first, second = new_id(), new_id()
    control_plane.offer(first, spec={"seconds": 0.4}, slots=2)
    control_plane.offer(second, spec={"seconds": 0.1}, slots=2)

    control_plane.wait_for(lambda: control_plane.result(first) and control_plane.result(second))

    # Never both at once: each needs both slots.
    assert not any({first, second} <= set(b["running"]) for b in control_plane.heartbeats)
    assert max(b["slots_used"] for b in control_plane.heartbeats) == 2
    order = [(r["workload_id"], r["kind"]) for r in control_plane.accepted.values()]
    started = {wid for wid, _ in order}
    assert started == {first, second}
    ran_first = order[0][0]
    ran_first_result = order.index((ran_first, "result"))
    assert all(wid == ran_first for wid, _ in order[: ran_first_result + 1])


def test_a_failing_diagnostic_reports_failed_with_its_message(control_plane, start_worker):
    start_worker()
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0, "fail": True, "message": "disk on fire"})

    control_plane.wait_for(lambda: control_plane.result(workload))

    result = control_plane.result(workload)
    assert result["status"] == "failed"
    assert result["reason"] == "disk on fire"


def test_an_unknown_pipeline_fails_that_workload_and_the_worker_stays_up(
    control_plane, start_worker
):
    start_worker()
    unknown, valid, bad_spec = new_id(), new_id(), new_id()
    control_plane.offer(unknown, spec={}, pipeline="teleport")
    control_plane.offer(bad_spec, spec={"seconds": "soon"})

    control_plane.wait_for(lambda: control_plane.result(unknown) and control_plane.result(bad_spec))
    control_plane.offer(valid, spec={"seconds": 0})
    control_plane.wait_for(lambda: control_plane.result(valid))

    assert control_plane.result(unknown)["status"] == "failed"
    assert "unknown pipeline 'teleport'" in control_plane.result(unknown)["reason"]
    assert "diagnostic" in control_plane.result(unknown)["reason"]  # says what it can run
    assert control_plane.result(bad_spec)["status"] == "failed"
    assert "'seconds' must be a number" in control_plane.result(bad_spec)["reason"]
    assert control_plane.result(valid)["status"] == "succeeded"


def test_a_crashing_pipeline_fails_its_workload_and_the_worker_stays_up(
    control_plane, start_worker
):
    """A pipeline registered the way the real ones will be (a callable under a name)."""

    def explode(ctx):
        ctx.progress(0.5, "half way")
        raise RuntimeError("CUDA error: out of memory")

    registry = default_registry()
    registry.register("explode", explode)
    registry.register("unserialisable", lambda ctx: {"frames": object()})
    start_worker(pipelines=registry)
    crashing, odd, valid = new_id(), new_id(), new_id()
    control_plane.offer(crashing, spec={}, pipeline="explode")
    control_plane.offer(odd, spec={}, pipeline="unserialisable")
    control_plane.wait_for(lambda: control_plane.result(crashing) and control_plane.result(odd))
    control_plane.offer(valid, spec={"seconds": 0})
    control_plane.wait_for(lambda: control_plane.result(valid))

    assert control_plane.result(crashing)["status"] == "failed"
    assert control_plane.result(crashing)["reason"] == (
        "the explode pipeline crashed: RuntimeError: CUDA error: out of memory"
    )
    assert control_plane.reports(crashing, "progress")[0]["message"] == "half way"
    assert control_plane.result(odd)["status"] == "failed"
    assert "not JSON serializable" in control_plane.result(odd)["reason"]
    assert control_plane.result(valid)["status"] == "succeeded"


def test_a_newer_script_in_a_heartbeat_reply_reaches_the_running_live_workload(
    control_plane, start_worker
):
    """The worker says which script version each live workload holds; a reply with a newer one
    is handed to that workload's context, and the following heartbeats say it holds it, and
    carry what the workload measured of its output. The
    pipeline here waits for the update and reports what it got (the live pipeline's use of it
    is tested in tests/inference/pipelines/test_live.py)."""

    def wait_for_script(ctx):
        while ctx.script() is None:
            ctx.sleep(0.01)
        update = ctx.script()
        ctx.progress(0.5, json.dumps({"version": update.version, "segments": update.segments}))
        ctx.measured(fps=24.5)  # what a live stream measures of its output
        ctx.sleep(600)  # on air until cancelled

    registry = default_registry()
    registry.register("scripted", wait_for_script)
    start_worker(pipelines=registry)
    live, render = new_id(), new_id()
    control_plane.offer(live, spec={"script_version": 3}, pipeline="scripted", kind="live")
    control_plane.offer(render, spec={"seconds": 600})
    control_plane.wait_for(lambda: {live, render} <= control_plane.running())
    assert control_plane.heartbeats[-1]["scripts"] == {live: 3}  # only live workloads say
    assert "stats" not in control_plane.heartbeats[-1]  # nothing measured yet

    segments = [{"text": "Flash sale at eight.", "language": "en"}]
    with control_plane.cond:
        control_plane.scripts[live] = {"version": 4, "segments": segments}
    control_plane.wait_for(lambda: control_plane.reports(live, "progress"))
    control_plane.wait_for(lambda: control_plane.heartbeats[-1].get("scripts") == {live: 4})

    (progress,) = control_plane.reports(live, "progress")
    assert json.loads(progress["message"]) == {"version": 4, "segments": segments}
    # What the workload measured goes with the next heartbeat (the console's on-air board).
    control_plane.wait_for(
        lambda: control_plane.heartbeats[-1].get("stats") == {live: {"fps": 24.5}}
    )
    with control_plane.cond:
        control_plane.cancel |= {live, render}
    control_plane.wait_for(lambda: not control_plane.running())


def test_an_assignment_larger_than_the_worker_is_refused_with_a_reason(control_plane, start_worker):
    start_worker(slots=2)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0}, slots=3)

    control_plane.wait_for(lambda: control_plane.result(workload))

    assert control_plane.result(workload)["status"] == "failed"
    assert "needs 3 slot(s)" in control_plane.result(workload)["reason"]


def test_reports_survive_a_control_plane_outage_and_count_once(control_plane, start_worker):
    """Outage in two forms: 503 before anything is applied, and a batch applied whose answer is
    lost (503 after). Every report must reach the control plane once, and it must be the
    worker's retries under the same ids (not luck) that got it there."""
    start_worker(gpus=1)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0.4})
    control_plane.wait_for(lambda: control_plane.reports(workload, "progress"))

    with control_plane.cond:
        control_plane.down = True
    control_plane.wait_for(lambda: control_plane.failed_calls[contracts.REPORTS_PATH] >= 3)
    with control_plane.cond:
        control_plane.lose_replies = 2
        control_plane.down = False

    control_plane.wait_for(lambda: control_plane.result(workload))
    control_plane.wait_for(lambda: control_plane.outcomes["duplicate"] >= 1)

    accepted = control_plane.reports(workload)
    ids = [r["report_id"] for r in accepted]
    assert len(ids) == len(set(ids))
    # Retried: some reports were posted more than once, under the same id.
    assert any(control_plane.received[rid] > 1 for rid in ids)
    # Nothing lost: three progress steps, their usage, the final usage and the result.
    assert [r["progress"] for r in control_plane.reports(workload, "progress")] == [
        0.25,
        0.5,
        0.75,
    ]
    assert len(control_plane.reports(workload, "usage")) == 4
    assert control_plane.result(workload)["status"] == "succeeded"
    # Nothing counted twice: the usage the control plane holds is one run's worth.
    usage = sum(r["usage"]["gpu_seconds"] for r in control_plane.reports(workload, "usage"))
    assert usage <= control_plane.result(workload)["output"]["elapsed_s"] + 0.001
    assert usage >= 0.4


def test_a_cancelled_workload_stops_and_reports_nothing_more(control_plane, start_worker):
    handle = start_worker()
    workload, after = new_id(), new_id()
    control_plane.offer(workload, spec={"seconds": 600})
    control_plane.wait_for(lambda: workload in control_plane.running())

    with control_plane.cond:
        control_plane.cancel.add(workload)
    control_plane.wait_for(lambda: workload not in control_plane.running())
    control_plane.offer(after, spec={"seconds": 0})
    control_plane.wait_for(lambda: control_plane.result(after))

    assert control_plane.result(workload) is None
    # No progress nor result after the cancel, only the usage of the time it held its slot.
    assert control_plane.reports(workload, "progress") == []
    usage = control_plane.reports(workload, "usage")
    assert len(usage) == 1 and usage[0]["usage"]["gpu_seconds"] > 0
    finished = handle.worker.metrics.assignments_finished
    assert finished.labels(outcome="cancelled")._value.get() == 1
    assert handle.stop() == 0


def test_a_stale_answer_stops_the_attempt(control_plane, start_worker):
    """The control plane moved the attempt elsewhere: its reports are answered "stale"."""
    handle = start_worker()
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 1.2})
    control_plane.wait_for(lambda: workload in control_plane.running())
    with control_plane.cond:
        control_plane.stale.add((workload, 1))

    control_plane.wait_for(lambda: control_plane.outcomes["stale"] >= 1)
    control_plane.wait_for(lambda: workload not in control_plane.running())
    finished = handle.worker.metrics.assignments_finished.labels(outcome="stale")
    control_plane.wait_for(lambda: finished._value.get() == 1 and not len(handle.worker.outbox))

    assert control_plane.reports(workload) == []  # nothing of that attempt was accepted
    posted = [r for r in control_plane.posted if r["workload_id"] == workload]
    # No result; after the first stale answer only the usage of the time spent (which the real
    # control plane still counts) was sent.
    assert "result" not in {r["kind"] for r in posted}
    assert posted[-1]["kind"] == "usage"
    assert posted[-1]["usage"]["gpu_seconds"] > 0


def test_the_control_plane_can_drain_the_worker(control_plane, start_worker):
    handle = start_worker()
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0.3})
    control_plane.wait_for(lambda: workload in control_plane.running())

    with control_plane.cond:
        control_plane.drain = True
    handle.thread.join(60)

    assert handle.exit_code == [0]
    assert control_plane.result(workload)["status"] == "succeeded"  # finished within the grace
    assert control_plane.releases == 1


def test_drain_hands_back_what_does_not_finish_within_the_grace(control_plane, start_worker):
    handle = start_worker(drain_grace_s=0)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 600})
    control_plane.wait_for(lambda: workload in control_plane.running())

    assert handle.stop() == 0

    assert control_plane.result(workload) is None  # handed back: the control plane requeues it
    usage = control_plane.reports(workload, "usage")
    assert len(usage) == 1 and usage[0]["usage"]["gpu_seconds"] > 0  # the time it did hold
    assert control_plane.releases == 1


def test_a_batch_worker_leaves_when_idle(control_plane, start_worker):
    handle = start_worker(exit_when_idle_s=0.2)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0.1})

    handle.thread.join(60)

    assert handle.exit_code == [0]
    assert control_plane.result(workload)["status"] == "succeeded"
    assert control_plane.releases == 1


def test_unsent_reports_survive_a_restart_with_a_state_dir(
    control_plane, start_worker, tmp_path, monkeypatch
):
    """The first worker leaves while the control plane refuses reports; the second, started
    over the same state directory, delivers them under the same ids."""
    monkeypatch.setattr(runner, "FINAL_FLUSH_S", 0.3)
    state = tmp_path / "state"
    workload = new_id()
    with control_plane.cond:
        control_plane.fail_next[contracts.REPORTS_PATH] = 10**6
    first = start_worker(state_dir=state, worker_id="w")
    control_plane.offer(workload, spec={"seconds": 0})
    control_plane.wait_for(lambda: control_plane.failed_calls[contracts.REPORTS_PATH] >= 1)
    first.worker.request_drain()
    first.thread.join(60)
    tried = set(control_plane.received)
    assert control_plane.accepted == {}

    with control_plane.cond:
        control_plane.fail_next.clear()
        control_plane.offered.clear()  # the result must come from the journal, not a rerun
    start_worker(state_dir=state, worker_id="w")
    control_plane.wait_for(lambda: control_plane.result(workload))

    assert set(control_plane.accepted) == tried
    assert control_plane.result(workload)["status"] == "succeeded"


def test_metrics_and_health_are_served(control_plane, start_worker):
    handle = start_worker(slots=3, metrics_port=0)
    workload = new_id()
    control_plane.offer(workload, spec={"seconds": 0})
    control_plane.wait_for(lambda: control_plane.result(workload))
    control_plane.wait_for(lambda: handle.worker.metrics_port is not None)

    base = f"http://127.0.0.1:{handle.worker.metrics_port}"
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
        metrics = response.read().decode()
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:  # noqa: S310
        health = response.status

    assert health == 200
    assert "ironbowl_worker_slots_total 3.0" in metrics
    assert "ironbowl_worker_assignments_started_total 1.0" in metrics
    assert 'ironbowl_worker_assignments_finished_total{outcome="succeeded"} 1.0' in metrics
    assert "ironbowl_worker_reports_pending" in metrics
    registration = control_plane.registrations[0]
    assert registration["metrics_url"].endswith(f":{handle.worker.metrics_port}/metrics")


def test_a_measurement_that_is_no_longer_fresh_is_not_reported(monkeypatch):
    """A stream stuck on a stalled output stops measuring; its last numbers must not keep being
    sent as if it were healthy."""
    from inference import contracts
    from inference.worker import pipelines

    clock = [100.0]
    monkeypatch.setattr(pipelines.time, "monotonic", lambda: clock[0])
    assignment = contracts.Assignment("w", 1, "live", "live", 1, {})
    ctx = pipelines.WorkloadContext(assignment, gpus=0, emit=lambda kind, data: None)
    assert ctx.stats() == {}
    ctx.measured(fps=25)
    assert ctx.stats() == {"fps": 25.0}
    clock[0] += pipelines.STATS_FRESH_S + 0.1
    assert ctx.stats() == {}
