"""Files of a running workload: its inputs fetched from the control plane, its outputs delivered.

A GPU pod shares no file system with the web, so a pipeline that needs a file (a build's footage)
downloads it through the worker protocol, and one that makes files (a build's bundle parts)
uploads them, each fenced by the workload's attempt like reports. Through a control-plane outage
both keep trying with backoff (and stop as soon as the workload is stopped); a refusal says what
to do: the workload moved on (it stops), or the file is not there (it fails, saying which).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from inference.worker.client import (
    Backoff,
    ControlPlaneClient,
    ControlPlaneUnavailable,
    ProtocolError,
    Unauthorized,
)
from inference.worker.pipelines import PipelineFailed, WorkloadContext, WorkloadStopped

RETRY_FOR_S = 300.0  # how long a transfer keeps trying through an outage
DAMAGED_TRIES = 3  # downloads whose bytes do not match before the input counts as damaged

T = TypeVar("T")


def fetch_input(
    ctx: WorkloadContext, name: str, destination: Path, *, sha256: str = "", size: int | None = None
) -> Path:
    """Download input `name` of the workload into `destination` and return it; with `sha256` or
    `size`, a download that does not match them is tried again, then fails the workload."""
    control = _control(ctx)
    assignment = ctx.assignment
    for _try in range(DAMAGED_TRIES):
        _retrying(
            ctx,
            f"fetch the input {name!r}",
            lambda: control.download_input(
                assignment.workload_id, assignment.attempt, name, destination
            ),
        )
        received = destination.stat().st_size
        if (size is None or received == size) and (
            not sha256 or file_sha256(destination) == sha256
        ):
            return destination
    expected = f"{size} bytes" if size is not None else "its recorded SHA-256"
    raise PipelineFailed(
        f"The input {name!r} arrived damaged {DAMAGED_TRIES} times: {received} bytes that do "
        f"not match {expected}."
    )


def deliver_output(ctx: WorkloadContext, name: str, source: Path) -> dict[str, Any]:
    """Upload `source` as output `name` of the workload; returns `{"sha256", "bytes"}` as the
    control plane stored it. Delivering again (a retry) replaces the stored file."""
    control = _control(ctx)
    assignment = ctx.assignment
    digest = file_sha256(source)
    stored = _retrying(
        ctx,
        f"deliver the output {name!r}",
        lambda: control.upload_output(
            assignment.workload_id, assignment.attempt, name, source, digest
        ),
    )
    if stored.get("sha256") != digest:
        raise PipelineFailed(f"The control plane stored another file as {name!r}: {stored}")
    return {"sha256": digest, "bytes": source.stat().st_size}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _control(ctx: WorkloadContext) -> ControlPlaneClient:
    if ctx.control is None:
        raise PipelineFailed("This worker has no connection to the control plane to move files.")
    return ctx.control


def _retrying(ctx: WorkloadContext, what: str, call: Callable[[], T]) -> T:
    """Run one transfer; retry while the control plane is unavailable, sorting its refusals."""
    backoff = Backoff(base_s=0.5, cap_s=15.0)
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        ctx.check_stopped()
        try:
            return call()
        except ControlPlaneUnavailable as exc:
            delay = backoff.next_delay()
            if time.monotonic() + delay > deadline:
                raise PipelineFailed(
                    f"Could not {what}: the control plane stayed unreachable ({exc})."
                ) from exc
            ctx.sleep(delay)
        except Unauthorized as exc:
            raise WorkloadStopped from exc  # the token is refused: the worker itself is leaving
        except ProtocolError as exc:
            if exc.status == 409:  # the workload moved on from this attempt
                raise WorkloadStopped from exc
            raise PipelineFailed(f"Could not {what}: {exc}") from exc
