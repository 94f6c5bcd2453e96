"""The worker's side of the HTTP protocol: one method per endpoint, errors sorted by what to do.

`ControlPlaneUnavailable` (5xx, 429, connection errors, timeouts) means "retry later, keep
working"; `Unauthorized` means the token is refused and the worker must stop; `ProtocolError`
means the control plane answered something the worker does not understand. Only the standard
library is used, so the slim image needs nothing more.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from inference import contracts

REQUEST_TIMEOUT_S = 10.0
TRANSFER_BLOCK = 1 << 20  # bytes read and written at a time when files move


class ControlPlaneError(RuntimeError):
    """Base of every failure to talk to the control plane."""


class ControlPlaneUnavailable(ControlPlaneError):
    """Transient: the control plane is down, overloaded or unreachable. Retry with backoff."""


class Unauthorized(ControlPlaneError):
    """The control plane refused the worker's token (401/403). Retrying cannot help."""


class ProtocolError(ControlPlaneError):
    """The control plane answered with a client error or a body the worker cannot read."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of a client error, None for an unreadable body


class Backoff:
    """Exponential backoff with full jitter: after n failures, wait up to min(cap, base·2ⁿ)."""

    def __init__(self, base_s: float = 0.2, cap_s: float = 10.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0**self.failures)
        self.failures += 1
        # Half fixed, half random: workers that lost the control plane together do not all
        # come back in the same instant, yet none retries immediately.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.failures = 0


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def register(self, registration: contracts.Registration) -> tuple[str, float]:
        """Announce the worker; returns its id at the control plane and the heartbeat interval."""
        data = self._post(contracts.REGISTER_PATH, registration.to_json())
        try:
            return str(data["worker_id"]), float(data["heartbeat_interval_s"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"register answered without worker_id/interval: {data}") from exc

    def heartbeat(self, heartbeat: contracts.Heartbeat) -> contracts.HeartbeatReply:
        data = self._post(contracts.HEARTBEAT_PATH, heartbeat.to_json())
        try:
            return contracts.HeartbeatReply.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"heartbeat answered something unreadable: {data}") from exc

    def take_assignments(self, free_slots: int) -> list[contracts.Assignment]:
        data = self._post(contracts.ASSIGNMENTS_PATH, {"free_slots": free_slots})
        try:
            return [contracts.Assignment.from_json(item) for item in data["assignments"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"assignments answered something unreadable: {data}") from exc

    def send_reports(
        self, reports: Sequence[contracts.Report]
    ) -> dict[str, contracts.ReportOutcome]:
        data = self._post(contracts.REPORTS_PATH, {"reports": [r.to_json() for r in reports]})
        outcomes = data.get("outcomes")
        if not isinstance(outcomes, dict):
            raise ProtocolError(f"reports answered without outcomes: {data}")
        known = ("accepted", "duplicate", "stale")
        return {str(k): v for k, v in outcomes.items() if v in known}

    def release(self) -> None:
        self._post(contracts.RELEASE_PATH, {})

    def knowledge(self, workload_id: str, attempt: int) -> dict[str, Any]:
        """The knowledge a session workload answers from: `{"version", "entries"}`."""
        path = contracts.KNOWLEDGE_PATH.format(workload=workload_id)
        return self._post(path, {"attempt": attempt})

    def session_socket(self, workload_id: str, attempt: int) -> tuple[str, dict[str, str]]:
        """The URL and headers of the websocket a session workload's pipeline opens."""
        base = self._base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        path = contracts.SESSION_SOCKET_PATH.format(workload=workload_id)
        return f"{base}{path}?attempt={attempt}", {"Authorization": f"Bearer {self._token}"}

    def download_input(self, workload_id: str, attempt: int, name: str, destination: Path) -> None:
        """Stream input `name` of this workload attempt into `destination`, which appears whole
        or not at all."""
        path = contracts.INPUT_PATH.format(workload=workload_id, name=name)
        request = self._request(path, attempt, "GET")
        partial = destination.with_name(f".{destination.name}.partial")
        try:
            with self._exchange(path, request) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out, TRANSFER_BLOCK)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)

    def upload_output(
        self, workload_id: str, attempt: int, name: str, source: Path, sha256: str
    ) -> dict[str, Any]:
        """Send `source` as output `name` of this workload attempt; sending it again replaces
        it. The control plane checks the SHA-256 and answers what it stored."""
        path = contracts.OUTPUT_PATH.format(workload=workload_id, name=name)
        with source.open("rb") as body:
            request = self._request(path, attempt, "PUT", body)
            request.add_header("Content-Type", "application/octet-stream")
            request.add_header("Content-Length", str(source.stat().st_size))
            request.add_header(contracts.SHA256_HEADER, sha256)
            with self._exchange(path, request) as response:
                return _json_object(path, response.read())

    def _request(
        self, path: str, attempt: int, method: str, body: BinaryIO | None = None
    ) -> urllib.request.Request:
        return urllib.request.Request(  # noqa: S310 - the URL is checked to be http(s)
            f"{self._base_url}{path}?attempt={attempt}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self._token}"},
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the URL is checked to be http(s)
            self._base_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        with self._exchange(path, request) as response:
            return _json_object(path, response.read())

    @contextlib.contextmanager
    def _exchange(
        self, path: str, request: urllib.request.Request
    ) -> Iterator[http.client.HTTPResponse]:
        """Send the request and read its answer inside the block; failures come out sorted."""
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310
                yield response
        except urllib.error.HTTPError as exc:
            detail = _excerpt(exc)
            exc.close()
            if exc.code in (401, 403):
                raise Unauthorized(f"{path}: {exc.code} {detail}") from None
            if exc.code >= 500 or exc.code == 429:
                raise ControlPlaneUnavailable(f"{path}: {exc.code} {detail}") from None
            raise ProtocolError(f"{path}: {exc.code} {detail}", exc.code) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            # Refused, reset, timed out, name not resolved, cut mid-answer: all transient.
            raise ControlPlaneUnavailable(f"{path}: {exc}") from None


def _json_object(path: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"{path}: the answer is not JSON: {raw[:200]!r}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{path}: the answer is not a JSON object: {raw[:200]!r}")
    return data


def _excerpt(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(300).decode(errors="replace").strip()
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else ""
