"""The Kubernetes backend against scripted HTTP faults.

Real: the backend, the official client, its urllib3 connections and the watch threads.
Simulated: the API server, a `kmock` (aiohttp) handler answering each request from a script —
410 Gone mid-watch, a watch stream that ends, 500 and 409 and 403 on create — because a real
server cannot be made to fail on cue. The backend is synchronous, so it runs in worker threads
while the event loop serves it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import kmock
import pytest
from kubernetes import client

from inference.backends.base import BackendUnavailable, TenantSpec
from inference.backends.kubernetes import KubernetesBackend, QuotaExceeded
from tests.inference.kubernetes.helpers import pool, worker

MANAGED = {"app.kubernetes.io/managed-by": "ironbowl", "ironbowl.io/org": "alpha"}


def a_pod(name: str, version: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ironbowl-org-alpha",
            "uid": f"uid-{name}",
            "resourceVersion": str(version),
            "labels": {**MANAGED, "ironbowl.io/worker": name, "ironbowl.io/pool": "live"},
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def a_list(version: int, *items: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "List", "metadata": {"resourceVersion": str(version)}, "items": list(items)}


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(version: int) -> dict[str, Any]:
    return event("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": str(version)}})


def status(code: int, reason: str, message: str = "") -> kmock.Response:
    body = {"kind": "Status", "status": "Failure", "code": code, "reason": reason}
    return kmock.Response(status=code, payload={**body, "message": message or reason})


class ScriptedApi:
    """Answers the backend's requests from per-path scripts. A watch script is a tuple of events;
    one ending in HOLD keeps the stream open (as a quiet watch does) until the test ends."""

    HOLD = "hold"

    def __init__(self) -> None:
        self.requests: list[kmock.Request] = []
        self.pod_lists: list[Any] = [a_list(1)]
        self.pod_watches: list[tuple[Any, ...] | kmock.Response] = []
        self.routes: dict[tuple[str, str], list[Any]] = {}
        self.release = asyncio.Event()
        self.url = ""

    def route(self, method: str, path: str, *answers: Any) -> None:
        self.routes[(method, path)] = list(answers)

    def made(self, method: str, path: str, **params: str) -> list[kmock.Request]:
        return [
            r
            for r in self.requests
            if r.method.value == method
            and r.url.path == path
            and all(r.params.get(k) == v for k, v in params.items())
        ]

    @staticmethod
    def _next(answers: list[Any]) -> Any:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def _stream(self, script: tuple[Any, ...]) -> kmock.Response:
        if script and script[-1] == self.HOLD:
            script = (*script[:-1], self._hold())
        return kmock.Response(status=200, payload=script)

    async def _hold(self) -> None:
        await self.release.wait()

    def __call__(self, request: kmock.Request) -> kmock.Response:
        self.requests.append(request)
        method, path = request.method.value, request.url.path
        watching = request.params.get("watch") == "true"
        if path == "/api/v1/pods":
            if not watching:
                answer = self._next(self.pod_lists)
                return (
                    answer
                    if isinstance(answer, kmock.Response)
                    else kmock.Response(status=200, payload=answer)
                )
            script = self.pod_watches.pop(0) if self.pod_watches else (bookmark(1), self.HOLD)
            return script if isinstance(script, kmock.Response) else self._stream(script)
        if path == "/apis/batch/v1/jobs":
            if not watching:
                return kmock.Response(status=200, payload=a_list(1))
            return self._stream((bookmark(1), self.HOLD))
        answers = self.routes.get((method, path))
        if not answers:
            return status(404, "NotFound")
        answer = self._next(answers)
        return (
            answer
            if isinstance(answer, kmock.Response)
            else kmock.Response(status=200, payload=answer)
        )


@pytest.fixture
async def api() -> AsyncIterator[ScriptedApi]:
    scripted = ScriptedApi()
    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        handler << scripted  # kmock's DSL: answer every request with it
        scripted.url = str(server.url).rstrip("/")
        yield scripted
        scripted.release.set()


@pytest.fixture
async def backend(api: ScriptedApi) -> AsyncIterator[KubernetesBackend]:
    configuration = client.Configuration()
    configuration.host = api.url
    kube = KubernetesBackend(
        client.ApiClient(configuration), owns_client=True, sync_timeout_s=1.5, watch_timeout_s=30
    )
    yield kube
    api.release.set()
    await asyncio.to_thread(kube.close)


async def eventually(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Runs the (blocking) `condition` off the loop until it is truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(condition)
        if last:
            return last
        await asyncio.sleep(0.02)
    pytest.fail(f"condition never held: last {last!r}")


async def test_410_error_event_mid_watch_relists(api, backend):
    """Simulated: the watch sends an event, then ERROR 410; the backend lists again and the
    cache holds what the second list says (the pod seen only on the expired watch is gone)."""
    api.pod_lists = [a_list(10, a_pod("a", 5)), a_list(20, a_pod("a", 5), a_pod("c", 19))]
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    api.pod_watches = [
        (event("ADDED", a_pod("b", 11)), event("ERROR", gone)),
        (bookmark(21), "hold"),
    ]

    seen = await eventually(lambda: _when(backend.observe(), lambda s: "c" in s))
    assert (seen["a"].phase, seen["c"].phase) == ("running", "running")
    # b was deleted while the backend was not watching: reported failed, not silently dropped.
    assert (seen["b"].phase, seen["b"].reason) == ("failed", "Deleted")
    # The cache holds the second list a moment before the watch after it is sent: wait for it.
    await eventually(lambda: len(api.made("GET", "/api/v1/pods", watch="true")) >= 2)
    assert len(api.made("GET", "/api/v1/pods", watch="true")) == 2
    assert len(api.made("GET", "/api/v1/pods")) == 4  # two lists, two watches
    assert api.made("GET", "/api/v1/pods", watch="true")[1].params["resourceVersion"] == "20"


async def test_410_answer_to_the_watch_request_relists(api, backend):
    """Simulated: the watch request itself is answered 410 (the client raises ApiException)."""
    api.pod_lists = [a_list(10, a_pod("a", 5)), a_list(30, a_pod("d", 29))]
    api.pod_watches = [status(410, "Expired"), (bookmark(31), "hold")]
    seen = await eventually(lambda: _when(backend.observe(), lambda s: "d" in s))
    assert (seen["d"].phase, seen["a"].phase) == ("running", "failed")
    assert backend.api_calls["list"] >= 3  # pods twice, jobs once


async def test_watch_stream_that_ends_is_resumed_from_the_last_version(api, backend):
    """Simulated: a watch delivers one event, a bookmark, and ends; the next watch starts from the
    bookmark's version without listing again. Every watch asks for bookmarks with timeouts."""
    api.pod_lists = [a_list(10, a_pod("a", 5))]
    api.pod_watches = [
        (event("ADDED", a_pod("b", 11)), bookmark(15)),
        (event("MODIFIED", a_pod("b", 16)), event("DELETED", a_pod("a", 17)), "hold"),
    ]
    seen = await eventually(lambda: _when(backend.observe(), lambda s: s["a"].phase == "failed"))
    assert seen["b"].phase == "running"
    watches = api.made("GET", "/api/v1/pods", watch="true")
    assert [w.params["resourceVersion"] for w in watches] == ["10", "15"]
    assert all(w.params["allowWatchBookmarks"] == "true" for w in watches)
    assert all(int(w.params["timeoutSeconds"]) > 0 for w in watches)
    assert len(api.made("GET", "/api/v1/pods")) == 3  # one list, two watches


async def test_failing_list_is_unavailable_then_recovers(api, backend):
    """Simulated: the list answers 500 until it does not; observe() raises BackendUnavailable
    meanwhile (the cache cannot be trusted) and serves the pods afterwards."""
    api.pod_lists = [status(500, "InternalError")]
    with pytest.raises(BackendUnavailable):
        await asyncio.to_thread(backend.observe)
    api.pod_lists = [a_list(10, a_pod("a", 5))]
    await eventually(lambda: _observe_or_none(backend) == {"a"})


def _when(value: Any, predicate: Callable[[Any], bool]) -> Any:
    return value if predicate(value) else None


def _observe_or_none(backend: KubernetesBackend) -> set[str] | None:
    try:
        return set(backend.observe())
    except BackendUnavailable:
        return None


SECRET = "/api/v1/namespaces/ironbowl-org-alpha/secrets/w-1-token"
PODS = "/api/v1/namespaces/ironbowl-org-alpha/pods"


async def test_500_on_create_is_unavailable_and_leaves_no_secret(api, backend):
    """Simulated: the pod create answers 500. The reconciler gets BackendUnavailable (back off,
    retry next pass) and the Secret written just before is deleted again."""
    api.route("PATCH", SECRET, {"kind": "Secret"})
    api.route("POST", PODS, status(500, "InternalError", "etcdserver: request timed out"))
    api.route("DELETE", SECRET, {"kind": "Status", "status": "Success"})
    with pytest.raises(BackendUnavailable):
        await asyncio.to_thread(backend.start_worker, worker("alpha", "w-1", pool()))
    assert len(api.made("DELETE", SECRET)) == 1


async def test_409_on_create_reads_the_existing_pod(api, backend):
    """Simulated: the pod exists already (409). The backend reads it and owns the Secret to it."""
    api.route("PATCH", SECRET, {"kind": "Secret"})
    api.route("POST", PODS, status(409, "AlreadyExists"))
    api.route("GET", f"{PODS}/w-1", a_pod("w-1", 7))
    await asyncio.to_thread(backend.start_worker, worker("alpha", "w-1", pool()))
    applied = api.made("PATCH", SECRET)
    assert len(applied) == 2
    owners = json.loads(applied[-1].body)["metadata"]["ownerReferences"]
    assert owners[0]["uid"] == "uid-w-1"
    assert owners[0]["kind"] == "Pod"
    assert applied[-1].headers["Content-Type"] == "application/apply-patch+yaml"
    assert applied[-1].params["fieldManager"] == "ironbowl-orchestrator"


async def test_403_exceeded_quota_raises_quota_exceeded(api, backend):
    """Simulated: quota admission's 403, word for word as the API server sends it."""
    message = (
        'pods "w-1" is forbidden: exceeded quota: ironbowl-gpu, requested: '
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=2, limited: "
        "requests.nvidia.com/gpu=2"
    )
    api.route("PATCH", SECRET, {"kind": "Secret"})
    api.route("POST", PODS, status(403, "Forbidden", message))
    api.route("DELETE", SECRET, {"kind": "Status", "status": "Success"})
    with pytest.raises(QuotaExceeded) as refused:
        await asyncio.to_thread(backend.start_worker, worker("alpha", "w-1", pool()))
    assert refused.value.reason == "QuotaExceeded"
    assert "exceeded quota" in str(refused.value)


async def test_ensure_tenant_applies_once_and_retries_a_conflict(api, backend):
    """Simulated: nothing exists yet (404s); the namespace apply meets one 409 and is retried;
    both applies are server-side applies by the orchestrator's field manager, and the backend
    waits until the quota controller counted the new quota. The same tenant again makes no
    request."""
    namespace = "/api/v1/namespaces/ironbowl-org-alpha"
    quota = f"{namespace}/resourcequotas/ironbowl-gpu"
    api.route("PATCH", namespace, status(409, "Conflict"), {"kind": "Namespace"})
    api.route("PATCH", quota, {"kind": "ResourceQuota"})
    counted = {"hard": {"requests.nvidia.com/gpu": "4"}, "used": {"requests.nvidia.com/gpu": "0"}}
    api.route("GET", quota, status(404, "NotFound"), {"kind": "ResourceQuota", "status": counted})
    await asyncio.to_thread(backend.ensure_tenant, TenantSpec("alpha", 4))
    assert len(api.made("PATCH", namespace)) == 2
    (applied,) = api.made("PATCH", quota, fieldManager="ironbowl-orchestrator", force="true")
    assert json.loads(applied.body)["spec"] == {"hard": {"requests.nvidia.com/gpu": "4"}}
    count = len(api.requests)
    await asyncio.to_thread(backend.ensure_tenant, TenantSpec("alpha", 4))
    assert len(api.requests) == count


def test_unreachable_api_is_unavailable():
    """Real: a port where nothing listens. Every operation raises BackendUnavailable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = False
    backend = KubernetesBackend(client.ApiClient(configuration), owns_client=True, sync_timeout_s=1)
    try:
        with pytest.raises(BackendUnavailable):
            backend.ensure_tenant(TenantSpec("alpha", 1))
        with pytest.raises(BackendUnavailable):
            backend.start_worker(worker("alpha", "w-1", pool()))
        with pytest.raises(BackendUnavailable):
            backend.observe()
    finally:
        backend.close()


async def test_a_created_worker_is_observed_before_its_watch_event(api, backend):
    """Simulated: the watch stays quiet after the create. observe() reports the new pod anyway,
    so that the next pass does not take it for a worker whose start was lost."""
    api.route("PATCH", SECRET, {"kind": "Secret"})
    api.route("POST", PODS, {**a_pod("w-1", 12), "status": {"phase": "Pending"}})
    assert await asyncio.to_thread(backend.observe) == {}
    await asyncio.to_thread(backend.start_worker, worker("alpha", "w-1", pool()))
    seen = await asyncio.to_thread(backend.observe)
    assert seen["w-1"].phase == "starting"
    lists = [r for r in api.made("GET", "/api/v1/pods") if "watch" not in r.params]
    assert len(lists) == 1  # no relist: the pod came from the create's answer
