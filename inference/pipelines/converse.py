"""The converse pipeline (`session` workload): a visitor's questions, answered and spoken.

Per question: language detection → retrieval over the organization's knowledge base (the
multilingual embedder, with a keyword backstop) → the curated answer, or a hand-off to a person
below the threshold → optionally reworded by a language model, kept only if grounded → spoken
sentence by sentence: each sentence's audio goes out as soon as it is synthesised (a WAV chunk),
then its lip-synced video (a fragmented-MP4 chunk) when the session has video.

Transport: the pipeline opens a websocket to the control plane's relay with its worker token
(`ControlPlaneClient.session_socket`) and speaks the relay's protocol (`inference.consumers`
on the control side): it says `ready`, receives `question`, `visitor` and `end`, and sends
`answer`, `audio`, `video`, `done`, `error` and finally `closed` with the reason.

Spec: `{"language": "zh"|"yue"|"en", "video": bool, "size", "fps", "ai_label", "inputs":
{"portrait": {...}} | "portrait": "reference" (as for `render`), "persona", "idle_timeout_s",
"max_minutes"}`. The knowledge comes
from the control plane (`ControlPlaneClient.knowledge`) and is indexed once per version and
worker, shared by its slots.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import re
import time
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np

from inference import contracts
from inference.pipelines import models
from inference.pipelines.grounding import check_grounding
from inference.pipelines.language import detect_language
from inference.pipelines.llm import LlmSettings, LlmUnavailable, OpenAICompatibleRephraser
from inference.pipelines.render import portrait_file, portrait_renderer, speech_engine
from inference.pipelines.retrieval import Answer, KnowledgeBase, KnowledgeEntry
from inference.pipelines.types import SUPPORTED_LANGUAGES, StageError
from inference.worker.client import ControlPlaneError, ControlPlaneUnavailable
from inference.worker.pipelines import PipelineFailed, WorkloadContext, WorkloadStopped

log = logging.getLogger(__name__)

HANDOFF_TEXT = {
    "zh": "这个问题我请人工同事为您解答，正在为您转接，请稍候。",
    "yue": "呢個問題我請人工同事幫你解答，而家幫你轉接，請稍等。",
    "en": "Let me pass this question to a colleague who can help; please hold on a moment.",
}
SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.])\s+")
MIN_CHUNK_CHARS = 12  # sentences shorter than this ride with the next one
POLL_S = 0.5  # how often the session loop looks at its stop flag and deadlines
VISITOR_GONE_GRACE_S = 30.0  # a visitor whose socket dropped may come back within this
CONNECT_ATTEMPTS = 6
MAX_MINUTES = 240


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the digital employee says to one question."""

    answer: Answer
    text: str  # what is spoken: the (possibly reworded) answer, or the hand-off sentence
    language: str  # the voice it is spoken in
    rephrased: bool
    note: str  # why it was (not) reworded, for the interaction log

    def message(self, question_id: str) -> dict[str, Any]:
        return {
            "type": "answer",
            "id": question_id,
            "text": self.text,
            "language": self.answer.language,
            "handed_off": self.answer.handed_off,
            "entry_id": self.answer.entry_id,
            "score": round(self.answer.score, 4),
            "matched_by": self.answer.matched_by,
            "rephrased": self.rephrased,
            "reason": f"{self.answer.reason}; {self.note}" if self.note else self.answer.reason,
        }


class Conversation:
    """Answers and speaks; knows nothing of sockets, so it is tested and benchmarked alone."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        *,
        tts: Any,
        renderer: Any | None = None,
        rephraser: OpenAICompatibleRephraser | None = None,
        persona: str = "",
        language: str = "zh",
        fps: int = 25,
        ai_label: bool = True,
        seed: int = 0,
    ) -> None:
        self.knowledge = knowledge
        self.tts = tts
        self.renderer = renderer
        self.rephraser = rephraser
        self.persona = persona
        self.language = language
        self.fps = fps
        self.ai_label = ai_label
        self.seed = seed
        self.frame = 0  # the next video frame number: blinks and sway continue across answers
        self.llm_problem: str | None = None  # the last rephrasing failure, until one succeeds

    def reply(self, question: str) -> Reply:
        """The answer to `question`; StageError for a question that cannot be asked."""
        language = detect_language(question, default=self.language)
        self.language = language
        answer = self.knowledge.answer(question, language)
        if answer.handed_off or answer.answer is None:
            return Reply(answer, HANDOFF_TEXT[language], language, False, "")
        text, rephrased, note = self._reworded(question, answer.answer, language)
        return Reply(answer, text, _voice_for(text, language), rephrased, note)

    def _reworded(self, question: str, curated: str, language: str) -> tuple[str, bool, str]:
        if self.rephraser is None:
            return curated, False, ""
        try:
            candidate = self.rephraser.rephrase(question, curated, language, self.persona)
        except LlmUnavailable as problem:
            self.llm_problem = str(problem)
            return curated, False, f"curated answer spoken: {problem}"
        self.llm_problem = None
        grounding = check_grounding(candidate, curated)
        if not grounding.ok:
            return curated, False, f"rewording refused ({grounding.why}); curated answer spoken"
        return candidate, True, "reworded by the language model; grounded in the entry"

    def speak(self, question_id: str, reply: Reply) -> Iterator[dict[str, Any]]:
        """Audio (and video) chunks, sentence by sentence."""
        for seq, sentence in enumerate(sentences(reply.text)):
            speech = self.tts.synthesize(sentence, reply.language)
            yield {
                "type": "audio",
                "id": question_id,
                "seq": seq,
                "format": "wav",
                "sample_rate": speech.sample_rate,
                "duration_s": round(speech.duration_s, 3),
                "data": _b64(wav_bytes(speech.samples, speech.sample_rate)),
            }
            if self.renderer is not None:
                yield self._video(question_id, seq, speech)

    def _video(self, question_id: str, seq: int, speech: Any) -> dict[str, Any]:
        from inference.pipelines.encode import encode_fragmented_mp4
        from inference.pipelines.label import burn_label
        from inference.pipelines.visemes import mouth_track

        assert self.renderer is not None  # noqa: S101 - speak() checked it
        openness = mouth_track(speech, self.fps)
        frames = self.renderer.render(openness, start_frame=self.frame, seed=self.seed)
        self.frame += len(frames)
        if self.ai_label:
            frames = burn_label(frames)
        data = encode_fragmented_mp4(frames, self.fps, speech.samples, speech.sample_rate)
        return {
            "type": "video",
            "id": question_id,
            "seq": seq,
            "format": "mp4",
            "fps": self.fps,
            "data": _b64(data),
        }


def sentences(text: str) -> list[str]:
    """Speakable pieces: sentences, a very short one joined to the next."""
    pieces, carry = [], ""
    for part in SENTENCE_END.split(text):
        carry = f"{carry} {part}".strip() if carry and _latin(part) else carry + part.strip()
        if len(carry) >= MIN_CHUNK_CHARS:
            pieces.append(carry)
            carry = ""
    if carry:
        pieces.append(carry)
    return pieces or [text]


def _latin(text: str) -> bool:
    return bool(re.match(r"[A-Za-z0-9]", text.strip()))


def _voice_for(text: str, language: str) -> str:
    """Speak Chinese text with a Chinese voice and English with the English one, whatever the
    question's language; Cantonese questions keep the Cantonese voice for Chinese text."""
    try:
        detected = detect_language(text, default=language)
    except StageError:
        return language
    if detected in ("zh", "yue"):
        return "yue" if language == "yue" else detected
    return detected


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- The spec and the knowledge ------------------------------------------------------------------


def parse_spec(spec: dict[str, Any]) -> dict[str, Any]:
    from inference.pipelines.render import parse_spec as parse_render_spec

    language = spec.get("language", "zh")
    if language not in SUPPORTED_LANGUAGES:
        raise StageError(
            f"Language {language!r} is not supported; use one of {', '.join(SUPPORTED_LANGUAGES)}."
        )
    video = bool(spec.get("video", False))
    look: dict[str, Any] = {"size": 256, "fps": 25, "seed": 0, "ai_label": True, "portrait": None}
    if video:  # the same rules as a render's picture settings and portrait
        look = parse_render_spec({**spec, "text": "-", "language": language})
    idle = spec.get("idle_timeout_s", 120)
    minutes = spec.get("max_minutes", 30)
    for name, value, low, high in (
        ("idle_timeout_s", idle, 5, 3600),
        ("max_minutes", minutes, 1, MAX_MINUTES),
    ):
        number = not isinstance(value, bool) and isinstance(value, int | float)
        if not number or not low <= value <= high:
            raise StageError(f"`{name}` must be a number from {low} to {high}.")
    persona = spec.get("persona", "")
    return {
        "language": language,
        "video": video,
        "size": look["size"],
        "fps": look["fps"],
        "seed": look["seed"],
        "ai_label": look["ai_label"],
        "portrait": look["portrait"],
        "persona": persona if isinstance(persona, str) else "",
        "idle_timeout_s": float(idle),
        "max_seconds": float(minutes) * 60,
    }


def knowledge_base(payload: dict[str, Any], device: str = "cpu") -> KnowledgeBase:
    """The index of the knowledge the control plane sent, built once per version per worker."""
    from inference.pipelines.embedder import shared_embedder

    try:
        version = str(payload["version"])
        entries = [KnowledgeEntry.from_json(item) for item in payload["entries"]]
    except (KeyError, TypeError, ValueError) as error:
        raise StageError(f"the knowledge the control plane sent is unreadable ({error})") from None
    if not entries:
        raise StageError(
            "This digital employee has no knowledge entries in Mandarin, Cantonese or English "
            "to answer from; attach some and open the conversation again."
        )
    return models.shared(
        ("knowledge", version, device),
        lambda: KnowledgeBase(entries, shared_embedder(device)),
    )


def rephraser() -> OpenAICompatibleRephraser | None:
    try:
        settings = LlmSettings.from_environment()
    except ValueError as error:
        raise StageError(f"the worker's language model settings are wrong: {error}") from None
    if settings is None:
        return None
    client: OpenAICompatibleRephraser = models.create("llm", "openai-compatible", settings=settings)
    return client


# --- The session ---------------------------------------------------------------------------------


def run(ctx: WorkloadContext) -> dict[str, Any]:
    try:
        return _converse(ctx)
    except StageError as error:
        raise PipelineFailed(str(error)) from error


def _converse(ctx: WorkloadContext) -> dict[str, Any]:
    import torch

    spec = parse_spec(ctx.spec)
    if ctx.control is None:
        raise PipelineFailed("This worker has no connection to the control plane for sessions.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    payload = _with_retries(
        ctx, lambda: ctx.control.knowledge(ctx.assignment.workload_id, ctx.assignment.attempt)
    )
    renderer = None
    if spec["video"]:
        renderer = portrait_renderer(portrait_file(ctx, spec["portrait"]), spec["size"], device)
    conversation = Conversation(
        knowledge_base(payload, device),
        tts=speech_engine(),
        renderer=renderer,
        rephraser=rephraser(),
        persona=spec["persona"],
        language=spec["language"],
        fps=spec["fps"],
        ai_label=spec["ai_label"],
        seed=spec["seed"],
    )
    return Session(ctx, conversation, spec, device).serve()


def _with_retries(ctx: WorkloadContext, call: Any) -> Any:
    delay = 0.5
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return call()
        except ControlPlaneUnavailable as error:
            if attempt == CONNECT_ATTEMPTS - 1:
                raise PipelineFailed(f"The control plane cannot be reached: {error}") from None
            ctx.sleep(delay)
            delay = min(delay * 2, 8.0)
        except ControlPlaneError as error:
            raise PipelineFailed(f"The control plane refused the session: {error}") from None
    raise AssertionError("unreachable")


class Session:
    """One visitor's conversation over the relay socket, until the visitor ends it, goes
    quiet, the time limit comes, or the worker stops it."""

    def __init__(
        self, ctx: WorkloadContext, conversation: Conversation, spec: dict[str, Any], device: str
    ) -> None:
        self.ctx = ctx
        self.conversation = conversation
        self.spec = spec
        self.device = device
        self.counts = {"exchanges": 0, "answered": 0, "handed_off": 0, "rephrased": 0}
        self.first_audio_ms: list[float] = []
        self.llm_reported: str | None = None

    def serve(self) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        started = time.monotonic()
        ended = ""
        while not ended:
            try:
                ended = self._connected(started)
            except (ConnectionClosed, InvalidHandshake, OSError) as error:
                if self.ctx.stopped:
                    raise WorkloadStopped from None
                log.warning("session socket lost (%s); reconnecting", error)
                if time.monotonic() - started > self.spec["max_seconds"]:
                    ended = "time_limit"
                else:
                    self.ctx.sleep(1.0)
        return {
            **self.counts,
            "ended": ended,
            "first_audio_ms_p50": round(float(np.median(self.first_audio_ms)), 1)
            if self.first_audio_ms
            else None,
            "knowledge_entries": len(self.conversation.knowledge.entries),
            "video": self.conversation.renderer is not None,
            "device": self.device,
        }

    def _connected(self, started: float) -> str:
        from websockets.sync.client import connect

        url, headers = self.ctx.control.session_socket(  # type: ignore[union-attr]
            self.ctx.assignment.workload_id, self.ctx.assignment.attempt
        )
        with connect(url, additional_headers=headers, open_timeout=10, max_size=None) as socket:
            socket.send(json.dumps({"type": "ready"}))
            last_heard = time.monotonic()
            visitor_left: float | None = None
            while True:
                now = time.monotonic()
                reason = self._why_end(now, started, last_heard, visitor_left)
                if reason:
                    socket.send(json.dumps({"type": "closed", "reason": reason}))
                    if reason == "stopped":
                        raise WorkloadStopped
                    return reason
                try:
                    raw = socket.recv(timeout=POLL_S)
                except TimeoutError:
                    continue
                message = json.loads(raw) if isinstance(raw, str) else {}
                kind = message.get("type")
                if kind == "question":
                    last_heard = time.monotonic()
                    self._answer(socket, str(message.get("id", "")), message.get("text"))
                    last_heard = time.monotonic()
                elif kind == "visitor":
                    last_heard = time.monotonic()
                    visitor_left = last_heard if message.get("event") == "left" else None
                    if visitor_left is None:
                        socket.send(json.dumps({"type": "ready"}))
                elif kind == "end":
                    socket.send(json.dumps({"type": "closed", "reason": "visitor_ended"}))
                    return "visitor_ended"

    def _why_end(
        self, now: float, started: float, last_heard: float, visitor_left: float | None
    ) -> str:
        if self.ctx.stopped:
            return "stopped"
        if now - started > self.spec["max_seconds"]:
            return "time_limit"
        if now - last_heard > self.spec["idle_timeout_s"]:
            return "idle"
        if visitor_left is not None and now - visitor_left > VISITOR_GONE_GRACE_S:
            return "visitor_left"
        return ""

    def _answer(self, socket: Any, question_id: str, text: object) -> None:
        began = time.monotonic()
        try:
            reply = self.conversation.reply(text if isinstance(text, str) else "")
        except StageError as problem:
            refusal = {"type": "error", "id": question_id, "code": "question"}
            socket.send(json.dumps({**refusal, "message": str(problem)}))
            return
        socket.send(json.dumps(reply.message(question_id)))
        for chunk in reply_chunks(self.conversation, question_id, reply):
            socket.send(json.dumps(chunk))
            if chunk["type"] == "audio" and chunk["seq"] == 0:
                self.first_audio_ms.append((time.monotonic() - began) * 1000)
        socket.send(json.dumps({"type": "done", "id": question_id}))
        self._count(reply, time.monotonic() - began)

    def _count(self, reply: Reply, seconds: float) -> None:
        self.counts["exchanges"] += 1
        self.counts["handed_off" if reply.answer.handed_off else "answered"] += 1
        self.counts["rephrased"] += reply.rephrased
        self.ctx.usage(contracts.Usage(interactions=1, gpu_seconds=seconds * self.ctx.gpus))
        problem = self.conversation.llm_problem
        if problem != self.llm_reported:
            self.llm_reported = problem
            message = (
                f"Rewording is off until the language model answers again: {problem}"
                if problem
                else "The language model answers again; answers are reworded."
            )
            self.ctx.progress(0.0, message)


def reply_chunks(
    conversation: Conversation, question_id: str, reply: Reply
) -> Iterator[dict[str, Any]]:
    """The spoken answer's chunks; a speech failure becomes an error message for this question
    rather than the end of the session."""
    try:
        yield from conversation.speak(question_id, reply)
    except StageError as problem:
        yield {"type": "error", "id": question_id, "code": "speech", "message": str(problem)}
