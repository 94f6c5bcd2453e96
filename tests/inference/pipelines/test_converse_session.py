"""The converse pipeline's session loop against a relay it dials over a real websocket.

Real: the `websockets` client and server, the pipeline's `Session` loop, the conversation core
(e5-small retrieval over the demo bureau's knowledge, espeak-ng). Simulated: the control plane's
relay — a small websocket server in the test that records what the worker sends and sends what
the test tells it (the real relay is tested in tests/inference/test_sessions.py, and both
together in tests/inference/test_conversation_end_to_end.py).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.server import ServerConnection, serve

from inference import contracts
from inference.pipelines.converse import Conversation, Session
from inference.pipelines.embedder import shared_embedder
from inference.pipelines.llm import LlmSettings, OpenAICompatibleRephraser
from inference.pipelines.render import speech_engine
from inference.pipelines.retrieval import KnowledgeBase
from inference.worker.client import ControlPlaneClient
from inference.worker.pipelines import WorkloadContext, WorkloadStopped

KNOWLEDGE = Path(__file__).parents[3] / "platform/ironbowl/demo_data/bureau_knowledge.json"
SPEC = {"idle_timeout_s": 60.0, "max_seconds": 600.0}


class Relay:
    """Accepts the worker's socket; records each message; sends what the test queues."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.outgoing: queue.Queue[dict[str, Any] | None] = queue.Queue()  # None: hang up
        self.lock = threading.Lock()

    def handler(self, socket: ServerConnection) -> None:
        self.requests.append((socket.request.path, socket.request.headers["Authorization"]))
        while True:
            try:
                message = self.outgoing.get_nowait()
            except queue.Empty:
                pass
            else:
                if message is None:
                    return  # the connection drops
                socket.send(json.dumps(message))
            try:
                raw = socket.recv(timeout=0.05)
            except TimeoutError:
                continue
            except Exception:  # the worker went away
                return
            with self.lock:
                self.received.append(json.loads(raw))

    def closed(self) -> dict[str, Any]:
        """The worker's last word, once the relay has it."""
        self.wait_for(lambda got: bool(got) and got[-1]["type"] == "closed")
        return self.received[-1]

    def kinds(self) -> list[str]:
        with self.lock:
            return [m["type"] for m in self.received]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout=60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.received)):
                    return
            time.sleep(0.02)
        raise AssertionError(f"the relay never saw it; got {self.kinds()}")


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_json(KNOWLEDGE, shared_embedder())


@pytest.fixture
def relay() -> Iterator[tuple[Relay, str]]:
    relay = Relay()
    with serve(relay.handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        yield relay, f"http://{host}:{port}"
        server.shutdown()


class Running:
    """A session served in a thread, with what its workload reported."""

    def __init__(
        self, base_url: str, conversation: Conversation, spec: dict[str, Any] | None = None
    ) -> None:
        self.reports: list[tuple[str, dict[str, Any]]] = []
        assignment = contracts.Assignment("w-talk", 3, "session", "converse", 1, {})
        self.ctx = WorkloadContext(
            assignment,
            gpus=1,
            emit=lambda kind, data: self.reports.append((kind, data)),
            control=ControlPlaneClient(base_url, "ibw_worker-token"),
        )
        self.session = Session(self.ctx, conversation, {**SPEC, **(spec or {})}, "cpu")
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.result = self.session.serve()
        except BaseException as error:  # handed to the test
            self.error = error

    def join(self) -> None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def _question(relay: Relay, question_id: str, text: str) -> list[dict[str, Any]]:
    relay.outgoing.put({"type": "question", "id": question_id, "text": text})
    relay.wait_for(lambda got: any(m.get("id") == question_id and m["type"] in ("done", "error")
                                   for m in got))  # fmt: skip
    return [m for m in relay.received if m.get("id") == question_id]


def test_questions_are_answered_until_the_visitor_ends(kb, relay):
    server, url = relay
    running = Running(url, Conversation(kb, tts=speech_engine()))
    server.wait_for(lambda got: got[:1] == [{"type": "ready"}])
    assert server.requests == [
        ("/ws/inference/worker/sessions/w-talk/?attempt=3", "Bearer ibw_worker-token")
    ]
    exchange = _question(server, "q1", "营业执照弄丢了，补办要带什么？")
    assert exchange[0]["type"] == "answer" and not exchange[0]["handed_off"]
    assert {m["type"] for m in exchange[1:-1]} == {"audio"} and exchange[-1]["type"] == "done"
    handed = _question(server, "q2", "Who won the football match last night?")
    assert handed[0]["handed_off"] and handed[0]["text"].startswith("Let me pass")
    # A question it cannot take is refused, and the session goes on.
    refused = _question(server, "q3", "営業許可はどこですか？ですか")
    assert refused == [
        {
            "type": "error",
            "id": "q3",
            "code": "question",
            "message": "this station answers in Mandarin, Cantonese or English; please ask in "
            "one of them",
        }
    ]
    server.outgoing.put({"type": "end"})
    running.join()
    assert server.closed() == {"type": "closed", "reason": "visitor_ended"}
    assert running.error is None and running.result is not None
    assert {k: running.result[k] for k in ("exchanges", "answered", "handed_off")} == {
        "exchanges": 2,
        "answered": 1,
        "handed_off": 1,
    }
    assert running.result["ended"] == "visitor_ended"
    usage = [data["usage"] for kind, data in running.reports if kind == "usage"]
    assert [u.interactions for u in usage] == [1, 1] and all(u.gpu_seconds > 0 for u in usage)


def test_a_quiet_session_ends_by_itself(kb, relay):
    server, url = relay
    running = Running(url, Conversation(kb, tts=speech_engine()), {"idle_timeout_s": 0.5})
    running.join()
    assert server.closed() == {"type": "closed", "reason": "idle"}
    assert running.result is not None and running.result["ended"] == "idle"


def test_a_stopped_session_says_goodbye_and_hands_back(kb, relay):
    server, url = relay
    running = Running(url, Conversation(kb, tts=speech_engine()))
    server.wait_for(lambda got: bool(got))
    running.ctx.stop()
    running.join()
    assert server.closed() == {"type": "closed", "reason": "stopped"}
    assert isinstance(running.error, WorkloadStopped)


def test_a_dropped_socket_is_dialled_again(kb, relay):
    server, url = relay
    running = Running(url, Conversation(kb, tts=speech_engine()))
    server.wait_for(lambda got: got == [{"type": "ready"}])
    server.outgoing.put(None)  # the realtime pod restarts
    server.wait_for(lambda got: got == [{"type": "ready"}, {"type": "ready"}])
    assert len(server.requests) == 2
    assert _question(server, "q1", "How do I replace a lost licence?")[-1]["type"] == "done"
    server.outgoing.put({"type": "end"})
    running.join()
    assert running.result is not None and running.result["exchanges"] == 1


def test_an_unreachable_language_model_is_reported_on_the_workload(kb, relay):
    """The session goes on with curated answers; the workload's progress message says why,
    once, until the model answers again."""
    server, url = relay
    gone = OpenAICompatibleRephraser(LlmSettings(url="http://127.0.0.1:9/v1", model="m"))
    running = Running(url, Conversation(kb, tts=speech_engine(), rephraser=gone))
    first = _question(server, "q1", "How do I replace a lost licence?")
    second = _question(server, "q2", "Where is the service hall?")
    assert not first[0]["rephrased"] and not second[0]["rephrased"]
    assert "unreachable" in first[0]["reason"]
    server.outgoing.put({"type": "end"})
    running.join()
    progress = [data["message"] for kind, data in running.reports if kind == "progress"]
    assert len(progress) == 1
    assert progress[0].startswith("Rewording is off until the language model answers again")
    assert "127.0.0.1:9" in progress[0]
