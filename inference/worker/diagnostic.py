"""The diagnostic pipeline: holds its slots for a given wall time, reports progress and usage.

It lets the whole lifecycle (placement, slots, progress, usage, results, cancel, drain) be tested
end to end before the real pipelines exist. Spec: `{"seconds": float, "fail": bool,
"message": str}`, only `seconds` required.

Usage is simple on purpose: gpu_seconds = elapsed wall time × the worker's GPUs (the whole
worker, not a share per slot), and for `live` workloads stream_minutes = elapsed / 60. Each usage
report carries the delta since the previous one, including the time consumed before a stop.
"""

from __future__ import annotations

import time
from typing import Any

from inference import contracts
from inference.worker.pipelines import PipelineFailed, WorkloadContext

PROGRESS_STEPS = 4
MAX_SECONDS = 7 * 24 * 3600.0


def run(ctx: WorkloadContext) -> dict[str, Any]:
    seconds, fail, message = _parse(ctx.spec)
    started = last = time.monotonic()

    def report_usage() -> None:
        nonlocal last
        now = time.monotonic()
        elapsed, last = now - last, now
        live = ctx.assignment.kind == "live"
        ctx.usage(
            contracts.Usage(
                gpu_seconds=elapsed * ctx.gpus, stream_minutes=elapsed / 60 if live else 0.0
            )
        )

    try:
        for step in range(1, PROGRESS_STEPS + 1):
            # Sleep to an absolute target so the steps add up to `seconds` of wall time.
            ctx.sleep(started + seconds * step / PROGRESS_STEPS - time.monotonic())
            if step < PROGRESS_STEPS:
                report_usage()
                ctx.progress(step / PROGRESS_STEPS, f"diagnostic step {step}/{PROGRESS_STEPS}")
    finally:
        report_usage()  # also when stopped: the time until then was really used
    if fail:
        raise PipelineFailed(message or "the diagnostic was asked to fail")
    return {"elapsed_s": round(time.monotonic() - started, 3), "message": message}


def _parse(spec: dict[str, Any]) -> tuple[float, bool, str]:
    seconds = spec.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise PipelineFailed("invalid diagnostic spec: 'seconds' must be a number")
    if not 0 <= seconds <= MAX_SECONDS:
        raise PipelineFailed(f"invalid diagnostic spec: 'seconds' must be 0 to {MAX_SECONDS:g}")
    fail = spec.get("fail", False)
    if not isinstance(fail, bool):
        raise PipelineFailed("invalid diagnostic spec: 'fail' must be true or false")
    message = spec.get("message", "")
    if not isinstance(message, str):
        raise PipelineFailed("invalid diagnostic spec: 'message' must be text")
    return float(seconds), fail, message
