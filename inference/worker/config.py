"""The worker's settings, read once from its environment (the backend that starts it sets them).

Every problem is collected and reported at once, so that a misconfigured Pod says everything
that is wrong in its first log line instead of one variable per restart.
"""

from __future__ import annotations

import dataclasses
import math
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from inference import contracts

# Variables of the worker only (the ones the control plane also sets are in `contracts`).
ENV_GPUS = "IRONBOWL_GPUS"  # GPUs this worker holds; usage counts gpu_seconds with it
ENV_DRAIN_GRACE_S = "IRONBOWL_DRAIN_GRACE_S"  # how long a drain lets running work finish
ENV_STATE_DIR = "IRONBOWL_WORKER_STATE_DIR"  # where the outbox journal survives a restart
ENV_HEARTBEAT_INTERVAL_S = "IRONBOWL_HEARTBEAT_INTERVAL_S"  # until the control plane says

# Written into the state directory as the worker exits, for a supervisor that is not its parent.
EXIT_FILE = "exit.json"

DEFAULT_SLOTS = 1
DEFAULT_DRAIN_GRACE_S = 30.0
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
DEFAULT_PIPELINE = "diagnostic"


class ConfigError(ValueError):
    """The environment does not describe a worker; `problems` says every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    control_url: str
    token: str = dataclasses.field(repr=False)  # never printed
    worker_id: str
    pool: str = ""
    pipeline: str = DEFAULT_PIPELINE
    slots: int = DEFAULT_SLOTS
    gpus: int = 0
    metrics_port: int | None = None  # None: no metrics server; 0: any free port
    exit_when_idle_s: float | None = None
    drain_grace_s: float = DEFAULT_DRAIN_GRACE_S
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    state_dir: Path | None = None


def load_config(env: Mapping[str, str]) -> WorkerConfig:
    """Build the configuration from `env` (normally `os.environ`) or raise `ConfigError`."""
    problems: list[str] = []

    control_url = env.get(contracts.ENV_CONTROL_URL, "").strip().rstrip("/")
    if not control_url:
        problems.append(f"{contracts.ENV_CONTROL_URL} is required (the control plane's base URL)")
    else:
        parts = urlsplit(control_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                f"{contracts.ENV_CONTROL_URL} must be an http(s) URL, got {control_url!r}"
            )
    token = env.get(contracts.ENV_WORKER_TOKEN, "").strip()
    if not token:
        problems.append(f"{contracts.ENV_WORKER_TOKEN} is required (the worker's credential)")

    def number(name: str, default: float | None, *, minimum: float, integer: bool) -> float | None:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number"
            problems.append(f"{name} must be {kind}, got {raw!r}")
            return default
        if not math.isfinite(value) or value < minimum:
            problems.append(f"{name} must be at least {minimum:g}, got {raw!r}")
            return default
        return value

    slots = number(contracts.ENV_SLOTS, DEFAULT_SLOTS, minimum=1, integer=True)
    gpus = number(ENV_GPUS, 0, minimum=0, integer=True)
    metrics_port = number(contracts.ENV_METRICS_PORT, None, minimum=0, integer=True)
    if metrics_port is not None and metrics_port > 65535:
        problems.append(
            f"{contracts.ENV_METRICS_PORT} must be a port (0-65535), got {metrics_port}"
        )
    exit_when_idle_s = number(contracts.ENV_EXIT_WHEN_IDLE_S, None, minimum=0, integer=False)
    drain_grace_s = number(ENV_DRAIN_GRACE_S, DEFAULT_DRAIN_GRACE_S, minimum=0, integer=False)
    heartbeat = number(
        ENV_HEARTBEAT_INTERVAL_S, DEFAULT_HEARTBEAT_INTERVAL_S, minimum=0.01, integer=False
    )
    state_dir_raw = env.get(ENV_STATE_DIR, "").strip()

    if problems:
        raise ConfigError(problems)
    # The narrowing below cannot fail: every default is set and every value was checked.
    assert slots is not None and gpus is not None  # noqa: S101
    assert drain_grace_s is not None and heartbeat is not None  # noqa: S101
    return WorkerConfig(
        control_url=control_url,
        token=token,
        # The backend always names its worker (a Pod's name is also its host name).
        worker_id=env.get(contracts.ENV_WORKER_ID, "").strip() or socket.gethostname(),
        pool=env.get(contracts.ENV_POOL, "").strip(),
        pipeline=env.get(contracts.ENV_PIPELINE, "").strip() or DEFAULT_PIPELINE,
        slots=int(slots),
        gpus=int(gpus),
        metrics_port=None if metrics_port is None else int(metrics_port),
        exit_when_idle_s=exit_when_idle_s,
        drain_grace_s=drain_grace_s,
        heartbeat_interval_s=heartbeat,
        state_dir=Path(state_dir_raw) if state_dir_raw else None,
    )
