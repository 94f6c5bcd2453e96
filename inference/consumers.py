"""The conversation relay: a visitor's socket and the socket of the worker running the session.

Visitor (`/ws/sessions/`, no account): the first message is `{"type": "start", "token": ...}`
with the token the control plane signed; then questions (`{"type": "question", "text", "id"?}`)
and finally `{"type": "end"}`. Replies: `session` (waiting), `ready`, `queued`, and per question
`answer`, `audio` and `video` chunks, `done`; `ended` when the session is over; `error` with a
code and a sentence.

Worker (`/ws/inference/worker/sessions/{workload}/?attempt=N`, `Authorization: Bearer <worker
token>`): only the worker the workload is placed on, for the current attempt, may connect. It
says `ready`, receives `question`, `visitor` and `end`, and sends the answer messages above.

The two sides meet in channel-layer groups named after the workload. The relay measures each
exchange from the question to the first audio chunk it passes on, and records it once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from inference import protocol, sessions
from inference.models import FINAL_STATES, Workload

START_TIMEOUT_S = 10.0
WATCH_INTERVAL_S = 1.0
MAX_PENDING = 5  # questions asked before the worker is ready
MAX_CHUNK_BYTES = 4 * 1024 * 1024

CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_GONE = 4410

# What a worker may send, and the fields of each that reach the visitor.
WORKER_MESSAGES: dict[str, tuple[str, ...]] = {
    "answer": (
        "id",
        "text",
        "language",
        "handed_off",
        "entry_id",
        "score",
        "matched_by",
        "rephrased",
        "reason",
    ),
    "audio": ("id", "seq", "format", "sample_rate", "duration_s", "data"),
    "video": ("id", "seq", "format", "fps", "data"),
    "done": ("id",),
    "error": ("id", "code", "message"),
    "closed": ("reason",),
}


def visitor_group(workload_id: object) -> str:
    return f"session.{workload_id}.visitor"


def worker_group(workload_id: object) -> str:
    return f"session.{workload_id}.worker"


class _SessionSocket(AsyncJsonWebsocketConsumer):
    workload: Workload | None = None

    @property
    def session(self) -> Workload:
        """The session workload, once the socket is let in (handlers run only after that)."""
        if self.workload is None:
            raise RuntimeError("the socket has not joined a session")
        return self.workload


class VisitorSessionConsumer(_SessionSocket):
    ready = False

    async def connect(self) -> None:
        await self.accept()
        self.pending: list[dict[str, Any]] = []
        self.asked: dict[str, tuple[str, float, Any]] = {}  # id -> (text, monotonic, wall)
        self.answers: dict[str, dict[str, Any]] = {}
        self.recorded: set[str] = set()
        self.watcher = asyncio.ensure_future(self._watch())

    async def disconnect(self, code: int) -> None:
        self.watcher.cancel()
        if self.workload is not None:
            left = {"type": "session.visitor", "left": True}
            await self.channel_layer.group_send(worker_group(self.workload.pk), left)
            await self.channel_layer.group_discard(
                visitor_group(self.workload.pk), self.channel_name
            )

    async def _watch(self) -> None:
        """Refuse a socket that never starts; end one whose session ended before a worker
        came (cancelled, or refused by the quota and given up)."""
        began = time.monotonic()
        while not self.ready:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self.workload is None:
                if time.monotonic() - began > START_TIMEOUT_S:
                    await self._refuse("start_timeout", "Send the start message first.")
                    return
                continue
            state = await database_sync_to_async(_state_of)(self.workload)
            if state in FINAL_STATES:
                await self.send_json({"type": "ended", "reason": "session_over"})
                await self.close(code=CLOSE_GONE)
                return

    async def _refuse(self, code: str, message: str, close: int = CLOSE_UNAUTHORIZED) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})
        await self.close(code=close)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "start":
            await self._start(content.get("token"))
        elif self.workload is None:
            await self._refuse("not_started", "Send the start message with your token first.")
        elif kind == "question":
            await self._question(content)
        elif kind == "end":
            await self.channel_layer.group_send(
                worker_group(self.session.pk), {"type": "session.end"}
            )
            await self.send_json({"type": "ended", "reason": "visitor_ended"})
            await self.close(code=1000)
        else:
            await self.send_json(
                {"type": "error", "code": "unknown_message", "message": "Unknown message type."}
            )

    async def _start(self, token: object) -> None:
        if self.workload is not None:
            return
        try:
            self.workload = await database_sync_to_async(sessions.workload_of_token)(token)
        except sessions.InvalidToken as refused:
            close = CLOSE_GONE if refused.code == "session_over" else CLOSE_UNAUTHORIZED
            await self._refuse(refused.code, refused.message, close)
            return
        await self.channel_layer.group_add(visitor_group(self.workload.pk), self.channel_name)
        await self.send_json(
            {"type": "session", "state": self.workload.state, "session": str(self.workload.pk)}
        )
        await self.channel_layer.group_send(
            worker_group(self.workload.pk), {"type": "session.visitor", "left": False}
        )

    async def _question(self, content: dict[str, Any]) -> None:
        text = content.get("text")
        question_id = content.get("id") or uuid.uuid4().hex
        if not isinstance(question_id, str) or len(question_id) > 64:
            await self._error(None, "invalid_id", "A question id is at most 64 characters.")
            return
        if not isinstance(text, str) or not text.strip():
            await self._error(question_id, "empty_question", "Type a question first.")
            return
        if len(text) > sessions.MAX_QUESTION_CHARS:
            await self._error(
                question_id,
                "question_too_long",
                f"A question is at most {sessions.MAX_QUESTION_CHARS} characters.",
            )
            return
        if question_id in self.asked:
            return  # a retry of a question already on its way
        self.asked[question_id] = (text, time.monotonic(), timezone.now())
        question = {"type": "session.question", "id": question_id, "text": text}
        if self.ready:
            await self.channel_layer.group_send(worker_group(self.session.pk), question)
        elif len(self.pending) < MAX_PENDING:
            self.pending.append(question)
            await self.send_json({"type": "queued", "id": question_id})
        else:
            del self.asked[question_id]
            await self._error(question_id, "busy", "Please wait for the answers to come first.")

    async def _error(self, question_id: str | None, code: str, message: str) -> None:
        await self.send_json({"type": "error", "id": question_id, "code": code, "message": message})

    # -- from the worker's side ----------------------------------------------------------------

    async def session_ready(self, event: dict[str, Any]) -> None:
        if not self.ready:
            self.ready = True
            await self.send_json({"type": "ready"})
        pending, self.pending = self.pending, []
        for question in pending:
            await self.channel_layer.group_send(worker_group(self.session.pk), question)

    async def session_message(self, event: dict[str, Any]) -> None:
        message: dict[str, Any] = event["message"]
        kind = message["type"]
        question_id = message.get("id")
        if kind == "answer" and isinstance(question_id, str):
            self.answers[question_id] = message
        await self.send_json(message)
        if kind in ("audio", "done") and isinstance(question_id, str):
            await self._record(question_id)
        if kind == "closed":
            await self.send_json({"type": "ended", "reason": message.get("reason", "")})
            await self.close(code=1000)

    async def _record(self, question_id: str) -> None:
        if question_id in self.recorded or question_id not in self.asked:
            return
        answer = self.answers.get(question_id)
        if answer is None:
            return
        self.recorded.add(question_id)
        text, asked, asked_at = self.asked[question_id]
        latency_ms = round((time.monotonic() - asked) * 1000)
        await database_sync_to_async(sessions.record_interaction)(
            self.session,
            question_id=question_id,
            question=text,
            answer=answer,
            asked_at=asked_at,
            latency_ms=latency_ms,
        )


class WorkerSessionConsumer(_SessionSocket):
    async def connect(self) -> None:
        workload_id = self.scope["url_route"]["kwargs"]["workload"]
        attempt = _query(self.scope).get("attempt", "")
        token = _bearer(self.scope)
        self.workload = await database_sync_to_async(_assigned_session)(token, workload_id, attempt)
        if self.workload is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.channel_layer.group_add(worker_group(self.workload.pk), self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.workload is not None:
            await self.channel_layer.group_discard(
                worker_group(self.workload.pk), self.channel_name
            )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        group = visitor_group(self.session.pk)
        if kind == "ready":
            await self.channel_layer.group_send(group, {"type": "session.ready"})
            return
        fields = WORKER_MESSAGES.get(kind or "")
        if fields is None:
            await self.send_json({"type": "error", "message": f"unknown message type {kind!r}"})
            return
        message = {"type": kind, **{name: content[name] for name in fields if name in content}}
        if "data" in message and not _valid_chunk(message["data"]):
            await self.send_json({"type": "error", "message": "chunk data must be base64"})
            return
        await self.channel_layer.group_send(group, {"type": "session.message", "message": message})

    async def session_question(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "question", "id": event["id"], "text": event["text"]})

    async def session_visitor(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "visitor", "event": "left" if event["left"] else "joined"})

    async def session_end(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "end"})


def _state_of(workload: Workload) -> str:
    workload.refresh_from_db(fields=["state"])
    return workload.state


def _assigned_session(token: str, workload_id: object, attempt: str) -> Workload | None:
    worker = protocol.worker_for_token(token) if token.startswith("ibw_") else None
    if worker is None:
        return None
    return sessions.session_of_worker(worker.pk, workload_id, attempt)


def _bearer(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _sep, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return str(token).strip()
    return ""


def _query(scope: dict[str, Any]) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def _valid_chunk(data: object) -> bool:
    if not isinstance(data, str) or len(data) > MAX_CHUNK_BYTES * 4 // 3 + 4:
        return False
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
