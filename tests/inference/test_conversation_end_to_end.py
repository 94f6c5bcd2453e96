"""A conversation end to end on the local backend, over real websockets.

Real: the whole ASGI application served by uvicorn (HTTP for the API and the worker protocol,
websockets through Channels' in-memory layer), the orchestrator's reconcile pass with the local
backend, a `python -m inference.worker` subprocess running the converse pipeline (e5-small
retrieval in torch, espeak-ng speech, the portrait renderer and PyAV for video), a visitor
speaking the relay's protocol with the `websockets` client. Nothing is simulated.

The visitor asks the demo bureau's held-out paraphrases (questions written for the test, not
stored in the knowledge base) in Chinese and English, and questions the bureau cannot answer.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from django.db import connections

from avatars.models import Employment, KnowledgeEntry
from inference import services, sessions
from inference.backends.local import LocalBackend
from inference.models import Interaction, UsageReport, WorkerPool, Workload, WorkloadState
from inference.reconcile import Reconciler
from tests.avatars.factories import onboarded_employment
from tests.factories import StationFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KNOWLEDGE = Path(__file__).parents[2] / "platform/ironbowl/demo_data/bureau_knowledge.json"
LANGUAGE_TAGS = {"zh": "zh-CN", "en": "en-US"}


@pytest.fixture
def server(monkeypatch) -> Iterator[str]:
    """The ASGI application on a free port, in a thread of this process (so that it shares the
    test database); yields its base URL. Its requests and consumers run in executor threads that
    end with the server: each closes its database connection after use (as with
    CONN_MAX_AGE=0), or PostgreSQL connections would be left open when those threads go.

    Each server gets channel layers of its own. A channels-redis layer keeps asyncio locks and
    queues bound to the event loop that first waited on them; a layer left over from an earlier
    server's loop (stopped with consumers still waiting) fails in this one with "bound to a
    different event loop". In production each process serves from one loop for its life."""
    import uvicorn
    from channels.layers import channel_layers

    from ironbowl.asgi import application

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    monkeypatch.setattr(channel_layers, "backends", {})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    config = uvicorn.Config(application, lifespan="off", log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]})
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        listener.close()


class Orchestrator:
    """The reconcile pass, every half second, in a thread (as `manage.py orchestrate` runs)."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stopping.wait(0.5):
                self.reconciler.run_once()
        finally:
            connections.close_all()

    def __enter__(self) -> Orchestrator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


@pytest.fixture
def bureau(org_a):
    """The demo bureau's knowledge, attached to an active digital employee at a web widget."""
    data = json.loads(KNOWLEDGE.read_text(encoding="utf-8"))
    employment = onboarded_employment(organization=org_a, status="active")
    through = Employment.knowledge_entries.through
    through.objects.filter(employment_id=employment.pk).delete()  # the factory's own entry
    ids = {}
    for item in data["entries"]:
        entry = KnowledgeEntry.objects.create(
            organization=org_a,
            questions=item["questions"],
            answer=item["answer"],
            language=LANGUAGE_TAGS[item["language"]],
            tags=[item["topic"]],
        )
        through.objects.create(employment_id=employment.pk, knowledgeentry_id=entry.pk)
        ids[str(entry.pk)] = item["id"]
    station = StationFactory(organization=org_a, kind="web_widget")
    WorkerPool.objects.create(
        name="converse-cpu", pipeline="converse", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=4, image="local", maximum=1,
    )  # fmt: skip
    return station, employment, data, ids


class Visitor:
    """A visitor's websocket, speaking the relay's protocol."""

    def __init__(self, socket: Any, token: str) -> None:
        self.socket = socket
        self.socket.send(json.dumps({"type": "start", "token": token}))

    def next(self, timeout: float = 120) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.socket.recv(timeout=timeout))
        return message

    def wait_ready(self) -> None:
        """Until the worker has started, loaded its models and joined (the first time, the
        orchestrator starts a worker process)."""
        while (message := self.next(timeout=180))["type"] != "ready":
            assert message["type"] in ("session", "queued"), message

    def ask(self, question_id: str, text: str) -> list[dict[str, Any]]:
        self.socket.send(json.dumps({"type": "question", "id": question_id, "text": text}))
        messages = []
        while True:
            message = self.next()
            messages.append(message)
            assert message["type"] in ("answer", "audio", "video", "done"), message
            assert message["id"] == question_id
            if message["type"] == "done":
                return messages

    def end(self) -> dict[str, Any]:
        self.socket.send(json.dumps({"type": "end"}))
        return self.next()


@contextlib.contextmanager
def visiting(base_url: str, token: str) -> Iterator[Visitor]:
    from websockets.sync.client import connect

    url = base_url.replace("http://", "ws://") + sessions.SOCKET_PATH
    with connect(url, open_timeout=10, max_size=None) as socket:
        yield Visitor(socket, token)


def _open(api, org, station, employment, **body) -> dict[str, Any]:
    response = api.post(
        f"/api/v1/orgs/{org.slug}/stations/{station.pk}/sessions/",
        {"employment": str(employment.pk), **body},
        format="json",
    )
    assert response.status_code == 201, response.content
    ticket: dict[str, Any] = response.json()
    return ticket


def _state(workload_id: str) -> str:
    return Workload.objects.unscoped_dangerously().get(pk=workload_id).state


def _until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.2)


def test_a_visitor_talks_to_the_bureau_over_the_websocket(
    server, settings, tmp_path, org_a, api_a, bureau
):
    station, employment, data, ids = bureau
    settings.INFERENCE_CONTROL_URL = server
    backend = LocalBackend(tmp_path / "workers", grace_s=5.0)
    ticket = _open(api_a, org_a, station, employment, language="zh", video=False)
    cases = [c for c in data["held_out"] if c["language"] in ("zh", "en")]
    out_of_scope = data["out_of_scope"]
    right: dict[str, int] = {"zh": 0, "en": 0}
    asked: dict[str, int] = {"zh": 0, "en": 0}
    try:
        with Orchestrator(Reconciler(backend)), visiting(server, ticket["token"]) as visitor:
            visitor.wait_ready()
            for number, case in enumerate(cases):
                messages = visitor.ask(f"h{number}", case["question"])
                answer = messages[0]
                assert answer["type"] == "answer"
                assert [m["type"] for m in messages[1:-1]] == ["audio"] * (len(messages) - 2)
                assert len(messages) >= 3  # at least one audio chunk
                asked[case["language"]] += 1
                right[case["language"]] += ids.get(answer["entry_id"] or "") == case["expected"]
            for number, case in enumerate(out_of_scope):
                answer = visitor.ask(f"o{number}", case["question"])[0]
                assert answer["handed_off"], case
                assert answer["entry_id"] is None
            assert visitor.end() == {"type": "ended", "reason": "visitor_ended"}
            _until(lambda: _state(ticket["workload"]) == WorkloadState.SUCCEEDED)
    finally:
        backend.stop_all()

    accuracy = {language: right[language] / asked[language] for language in asked}
    print("held-out top-1:", {k: f"{right[k]}/{asked[k]}" for k in asked})
    assert min(asked.values()) >= 20
    assert accuracy["zh"] >= 0.9 and accuracy["en"] >= 0.9

    workload = Workload.objects.for_organization(org_a).get(pk=ticket["workload"])
    total = len(cases) + len(out_of_scope)
    assert workload.result["exchanges"] == total
    assert workload.result["handed_off"] >= len(out_of_scope)
    interactions = Interaction.objects.for_organization(org_a).filter(workload=workload)
    assert interactions.count() == total
    assert interactions.filter(outcome="handed_off").count() == workload.result["handed_off"]
    assert all(i.latency_ms > 0 for i in interactions)
    reported = sum(u.interactions for u in UsageReport.objects.for_organization(org_a))
    assert reported == total


def test_answers_come_with_lip_synced_video_chunks(server, settings, tmp_path, org_a, bureau):
    """A session with video: every sentence's audio is followed by a fragmented MP4 of the
    reference portrait speaking it, whose length matches the audio within one frame."""
    station, employment, _data, _ids = bureau
    settings.INFERENCE_CONTROL_URL = server
    backend = LocalBackend(tmp_path / "workers", grace_s=5.0)
    spec = {
        "employment": str(employment.pk),
        "station": str(station.pk),
        "language": "en",
        "video": True,
        "portrait": "reference",
        "size": 128,
    }
    workload, _ = services.submit(org_a, kind="session", spec=spec)
    token = sessions.issue_token(workload).token
    try:
        with Orchestrator(Reconciler(backend)), visiting(server, token) as visitor:
            visitor.wait_ready()
            messages = visitor.ask("v1", "Where is your service hall and when is it open?")
            visitor.end()
            _until(lambda: _state(str(workload.pk)) == WorkloadState.SUCCEEDED)
    finally:
        backend.stop_all()
    audio = [m for m in messages if m["type"] == "audio"]
    video = [m for m in messages if m["type"] == "video"]
    assert len(audio) == len(video) >= 1
    for sound, picture in zip(audio, video, strict=True):
        with av.open(io.BytesIO(base64.b64decode(picture["data"]))) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert abs(frames / picture["fps"] - sound["duration_s"]) <= 1 / picture["fps"] + 1e-6


def test_the_talk_command_holds_a_conversation_from_the_terminal(
    server, settings, tmp_path, org_a, bureau, monkeypatch
):
    """`manage.py talk` as an operator would try a desk: real server, worker and relay."""
    from django.core.management import call_command

    settings.INFERENCE_CONTROL_URL = server
    backend = LocalBackend(tmp_path / "workers", grace_s=5.0)
    monkeypatch.setattr("sys.stdin", io.StringIO("Where is your service hall?\n\n明天会下雨吗？\n"))
    out = io.StringIO()
    try:
        with Orchestrator(Reconciler(backend)):
            call_command("talk", org_a.slug, "--language", "en", "--server", server, stdout=out)
    finally:
        backend.stop_all()
    printed = out.getvalue()
    assert "88 Renmin Road" in printed  # the service hall's entry
    assert "[→ a colleague]" in printed  # the weather is handed off
    assert printed.count("first audio after") == 2
    workload = Workload.objects.for_organization(org_a).get()
    assert workload.kind == "session"
    assert Interaction.objects.for_organization(org_a).count() == 2
