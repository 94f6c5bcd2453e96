"""What the control plane and the workers say to each other: plain dataclasses, no Django.

The worker (`inference.worker`) and the pipelines import only this module from the control side,
so that they run in a slim GPU image. Every message is JSON over HTTP; `to_json`/`from_json` are
the one place where the wire shape is defined.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

PROTOCOL_VERSION = 1

# The worker protocol's routes, relative to the control plane's base URL.
REGISTER_PATH = "/api/v1/inference/worker/register/"
HEARTBEAT_PATH = "/api/v1/inference/worker/heartbeat/"
ASSIGNMENTS_PATH = "/api/v1/inference/worker/assignments/"
REPORTS_PATH = "/api/v1/inference/worker/reports/"
RELEASE_PATH = "/api/v1/inference/worker/release/"
KNOWLEDGE_PATH = "/api/v1/inference/worker/sessions/{workload}/knowledge/"
SESSION_SOCKET_PATH = "/ws/inference/worker/sessions/{workload}/"
# Files of a workload attempt (`?attempt=N`): GET an input the spec names, PUT an output (raw
# bytes with their SHA-256 in SHA256_HEADER; sending one again replaces it).
INPUT_PATH = "/api/v1/inference/worker/workloads/{workload}/inputs/{name}/"
OUTPUT_PATH = "/api/v1/inference/worker/workloads/{workload}/outputs/{name}/"
SHA256_HEADER = "X-Content-SHA256"
# A spec's portrait (render, live, session): the input of this name (`{"sha256", "bytes", ...}`),
# which the worker fetches, or `"portrait": REFERENCE_PORTRAIT`, the one that ships with it.
PORTRAIT_INPUT = "portrait"
REFERENCE_PORTRAIT = "reference"

# Environment of a worker process, set by the backend that starts it.
ENV_CONTROL_URL = "IRONBOWL_CONTROL_URL"
ENV_WORKER_TOKEN = "IRONBOWL_WORKER_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_WORKER_ID = "IRONBOWL_WORKER_ID"
ENV_POOL = "IRONBOWL_POOL"
ENV_PIPELINE = "IRONBOWL_PIPELINE"
ENV_SLOTS = "IRONBOWL_SLOTS"
ENV_METRICS_PORT = "IRONBOWL_METRICS_PORT"
ENV_EXIT_WHEN_IDLE_S = "IRONBOWL_EXIT_WHEN_IDLE_S"
ENV_LLM_URL = "IRONBOWL_LLM_URL"  # an OpenAI-compatible endpoint, e.g. http://vllm:8000/v1
ENV_LLM_MODEL = "IRONBOWL_LLM_MODEL"
ENV_LLM_API_KEY = "IRONBOWL_LLM_API_KEY"

ReportKind = Literal["progress", "usage", "result"]
ResultStatus = Literal["succeeded", "failed"]


@dataclasses.dataclass(frozen=True)
class Usage:
    """Quantities a workload consumed since the previous usage report (deltas, never totals)."""

    stream_minutes: float = 0.0
    gpu_seconds: float = 0.0
    rendered_seconds: float = 0.0
    interactions: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(
            stream_minutes=float(data.get("stream_minutes", 0.0)),
            gpu_seconds=float(data.get("gpu_seconds", 0.0)),
            rendered_seconds=float(data.get("rendered_seconds", 0.0)),
            interactions=int(data.get("interactions", 0)),
        )


@dataclasses.dataclass(frozen=True)
class Registration:
    """POST register: a started worker announces itself; answers with its settings."""

    protocol: int
    slots: int
    pipelines: tuple[str, ...]
    version: str = ""
    metrics_url: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "slots": self.slots,
            "pipelines": list(self.pipelines),
            "version": self.version,
            "metrics_url": self.metrics_url,
        }


def script_version(spec: dict[str, Any]) -> int:
    """The script version a live workload's spec holds: 1 when it names none, 0 when it names
    something that is not a version (the pipeline refuses such a spec)."""
    version = spec.get("script_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return 0
    return version


@dataclasses.dataclass(frozen=True)
class ScriptUpdate:
    """A newer script for a live workload the worker runs, sent in the heartbeat's reply. The
    segments are `{"text", "language"}` objects as the control plane stored them; the pipeline
    checks them again before they go on air."""

    version: int
    segments: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "segments": list(self.segments)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScriptUpdate:
        segments = data.get("segments")
        return cls(
            version=int(data["version"]),
            segments=tuple(segments) if isinstance(segments, list) else (),
        )


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """POST heartbeat: the workloads the worker is running right now."""

    slots_used: int
    running: tuple[str, ...]  # workload ids
    # Live workloads: the script version each one holds, so that only newer ones are sent.
    scripts: dict[str, int] = dataclasses.field(default_factory=dict)
    # What running workloads measured of their output, by workload id (live streams: "fps", the
    # frames per second their outputs received lately); shown on the console's on-air board.
    stats: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"slots_used": self.slots_used, "running": list(self.running)}
        if self.scripts:
            data["scripts"] = dict(self.scripts)
        if self.stats:
            data["stats"] = {key: dict(value) for key, value in self.stats.items()}
        return data


@dataclasses.dataclass(frozen=True)
class HeartbeatReply:
    drain: bool  # finish or hand back what runs, take nothing new, then release
    cancel: tuple[str, ...]  # workload ids to stop now (cancelled or preempted)
    heartbeat_interval_s: float
    # Newer scripts of running live workloads, by workload id (a control plane without script
    # updates sends none).
    scripts: dict[str, ScriptUpdate] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HeartbeatReply:
        return cls(
            drain=bool(data["drain"]),
            cancel=tuple(data.get("cancel", ())),
            heartbeat_interval_s=float(data["heartbeat_interval_s"]),
            scripts={
                str(workload_id): ScriptUpdate.from_json(update)
                for workload_id, update in (data.get("scripts") or {}).items()
            },
        )


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One workload given to a worker. `attempt` fences reports: a report for an older attempt
    (the workload was moved elsewhere meanwhile) is refused."""

    workload_id: str
    attempt: int
    kind: str
    pipeline: str
    slots: int
    spec: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Assignment:
        return cls(
            workload_id=str(data["workload_id"]),
            attempt=int(data["attempt"]),
            kind=str(data["kind"]),
            pipeline=str(data["pipeline"]),
            slots=int(data["slots"]),
            spec=dict(data.get("spec") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Report:
    """POST reports (in batches): progress, usage or the result of one workload attempt.

    `report_id` is chosen by the worker once and reused on every retry, so that a report that
    reached the control plane before the connection dropped counts once."""

    report_id: str
    workload_id: str
    attempt: int
    kind: ReportKind
    progress: float | None = None  # 0..1
    message: str = ""
    usage: Usage | None = None
    status: ResultStatus | None = None  # for kind == "result"
    reason: str = ""  # why it failed, in words a person can act on
    output: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "report_id": self.report_id,
            "workload_id": self.workload_id,
            "attempt": self.attempt,
            "kind": self.kind,
        }
        if self.progress is not None:
            data["progress"] = self.progress
        if self.message:
            data["message"] = self.message
        if self.usage is not None:
            data["usage"] = self.usage.to_json()
        if self.status is not None:
            data["status"] = self.status
        if self.reason:
            data["reason"] = self.reason
        if self.output:
            data["output"] = self.output
        return data


# How the control plane answered each report of a batch.
ReportOutcome = Literal["accepted", "duplicate", "stale"]
