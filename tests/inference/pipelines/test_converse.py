"""The conversation core: answering, handing off, rewording with a language model, speaking.

Real: the e5-small embedder over the demo bureau's knowledge, espeak-ng speech, the portrait
renderer and PyAV's fragmented-MP4 encoder. Simulated: the language model — an OpenAI-compatible
endpoint cannot run here, so a small HTTP server in the test answers `/chat/completions` with
the text each test chooses (the request it receives is checked).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest

from inference.pipelines import converse
from inference.pipelines.converse import HANDOFF_TEXT, Conversation, sentences
from inference.pipelines.embedder import shared_embedder
from inference.pipelines.llm import LlmSettings, OpenAICompatibleRephraser
from inference.pipelines.render import portrait_renderer, speech_engine
from inference.pipelines.retrieval import KnowledgeBase
from inference.pipelines.types import StageError

KNOWLEDGE = Path(__file__).parents[3] / "platform/ironbowl/demo_data/bureau_knowledge.json"
LICENCE_QUESTION = "How many days does it take to get a business licence after I apply?"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_json(KNOWLEDGE, shared_embedder())


def _wav_seconds(data: str) -> float:
    with wave.open(io.BytesIO(base64.b64decode(data))) as wav:
        return wav.getnframes() / wav.getframerate()


def test_an_answer_is_spoken_sentence_by_sentence(kb: KnowledgeBase) -> None:
    conversation = Conversation(kb, tts=speech_engine())
    reply = conversation.reply("营业执照丢了怎么补办？")
    assert not reply.answer.handed_off
    assert reply.language == "zh" and reply.text == reply.answer.answer
    chunks = list(conversation.speak("q1", reply))
    assert [c["seq"] for c in chunks] == list(range(len(sentences(reply.text))))
    assert all(c["type"] == "audio" and c["id"] == "q1" for c in chunks)
    total = sum(_wav_seconds(c["data"]) for c in chunks)
    assert total == pytest.approx(sum(c["duration_s"] for c in chunks), abs=0.01)
    assert total > 2.0  # a few sentences of speech, not silence


def test_an_unanswerable_question_is_handed_off_in_the_askers_language(
    kb: KnowledgeBase,
) -> None:
    conversation = Conversation(kb, tts=speech_engine())
    out_of_scope = json.loads(KNOWLEDGE.read_text(encoding="utf-8"))["out_of_scope"]
    assert {case["language"] for case in out_of_scope} == {"zh", "yue", "en"}
    for case in out_of_scope:
        reply = conversation.reply(case["question"])
        assert reply.answer.handed_off, case
        assert reply.text == HANDOFF_TEXT[case["language"]]
        assert next(iter(conversation.speak("h", reply)))["type"] == "audio"  # spoken too
        message = reply.message("q")
        assert message["handed_off"] and message["entry_id"] is None


def test_a_question_in_an_unsupported_language_is_refused_clearly(kb: KnowledgeBase) -> None:
    conversation = Conversation(kb, tts=speech_engine())
    with pytest.raises(StageError, match="Mandarin, Cantonese or English"):
        conversation.reply("営業許可はどこで申請できますか？ですか")
    with pytest.raises(StageError, match="empty"):
        conversation.reply("   ")


def test_video_chunks_follow_the_audio_and_last_as_long(kb: KnowledgeBase) -> None:
    """Each sentence's video is a fragmented MP4 with its audio; the picture and the sound agree
    within one frame, and frame numbers run on across answers (blinks do not restart)."""
    renderer = portrait_renderer("reference", 128, "cpu")
    conversation = Conversation(kb, tts=speech_engine(), renderer=renderer, fps=25)
    reply = conversation.reply(LICENCE_QUESTION)
    chunks = list(conversation.speak("q", reply))
    audio = [c for c in chunks if c["type"] == "audio"]
    video = [c for c in chunks if c["type"] == "video"]
    assert len(audio) == len(video) >= 1
    assert [c["type"] for c in chunks[:2]] == ["audio", "video"]  # audio first, for latency
    frames_before = conversation.frame
    for sound, picture in zip(audio, video, strict=True):
        with av.open(io.BytesIO(base64.b64decode(picture["data"]))) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
        assert abs(frames / 25 - sound["duration_s"]) <= 1 / 25 + 1e-6
    assert frames_before > 0
    conversation.speak("again", reply).__next__()
    assert conversation.frame == frames_before  # audio only so far; video not yet rendered


def test_sentences_split_on_chinese_and_english_punctuation() -> None:
    assert sentences("你好。请问您办理什么业务？我们周一至周五办公。") == [
        "你好。请问您办理什么业务？",
        "我们周一至周五办公。",
    ]
    assert sentences("Hello. We open at 9:00. Bring your ID card, please.") == [
        "Hello. We open at 9:00.",
        "Bring your ID card, please.",
    ]
    assert sentences("好的") == ["好的"]


# --- The language model ---------------------------------------------------------------------------


class _StandIn(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint answering whatever the test put in `server.replies`."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        status, reply = self.server.replies.pop(0)  # type: ignore[attr-defined]
        data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def llm() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.requests = []  # type: ignore[attr-defined]
    server.replies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _completion(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def _rephraser(server: ThreadingHTTPServer) -> OpenAICompatibleRephraser:
    host, port = server.server_address[:2]
    settings = LlmSettings(url=f"http://{host!s}:{port}/v1", model="qwen2.5-7b", api_key="sk-test")
    return OpenAICompatibleRephraser(settings)


def test_a_grounded_rewording_is_spoken(kb: KnowledgeBase, llm: ThreadingHTTPServer) -> None:
    conversation = Conversation(kb, tts=speech_engine(), rephraser=_rephraser(llm), persona="Kind")
    curated = kb.answer(LICENCE_QUESTION).answer
    assert curated is not None and "3 working days" in curated
    llm.replies.append((200, _completion("It takes 3 working days and it is free of charge.")))  # type: ignore[attr-defined]
    reply = conversation.reply(LICENCE_QUESTION)
    assert reply.rephrased and reply.text.startswith("It takes 3 working days")
    path, headers, body = llm.requests[0]  # type: ignore[attr-defined]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "qwen2.5-7b"
    assert curated in body["messages"][1]["content"] and "Kind" in body["messages"][0]["content"]


def test_a_rewording_that_invents_a_fact_is_not_spoken(
    kb: KnowledgeBase, llm: ThreadingHTTPServer
) -> None:
    conversation = Conversation(kb, tts=speech_engine(), rephraser=_rephraser(llm))
    llm.replies.append((200, _completion("It takes 5 working days; call 555-0100.")))  # type: ignore[attr-defined]
    reply = conversation.reply(LICENCE_QUESTION)
    assert not reply.rephrased
    assert reply.text == reply.answer.answer
    assert "numbers not in the entry" in reply.message("q")["reason"]


def test_an_unreachable_or_broken_model_falls_back_to_the_curated_answer(
    kb: KnowledgeBase, llm: ThreadingHTTPServer
) -> None:
    conversation = Conversation(kb, tts=speech_engine(), rephraser=_rephraser(llm))
    llm.replies.append((503, {"error": "overloaded"}))  # type: ignore[attr-defined]
    reply = conversation.reply(LICENCE_QUESTION)
    assert reply.text == reply.answer.answer and not reply.rephrased
    assert conversation.llm_problem == "the language model endpoint answered HTTP 503"
    llm.replies.append((200, b"not json"))  # type: ignore[attr-defined]
    conversation.reply(LICENCE_QUESTION)
    assert conversation.llm_problem is not None and "unreadable" in conversation.llm_problem
    llm.replies.append((200, _completion("Three working days, free of charge.")))  # type: ignore[attr-defined]
    assert conversation.reply(LICENCE_QUESTION).rephrased
    assert conversation.llm_problem is None  # back to normal

    gone = OpenAICompatibleRephraser(LlmSettings(url="http://127.0.0.1:9", model="m"))
    conversation = Conversation(kb, tts=speech_engine(), rephraser=gone)
    reply = conversation.reply(LICENCE_QUESTION)
    assert reply.text == reply.answer.answer
    assert conversation.llm_problem is not None and "unreachable" in conversation.llm_problem


def test_llm_settings_come_from_the_environment_only() -> None:
    assert LlmSettings.from_environment({}) is None
    settings = LlmSettings.from_environment(
        {"IRONBOWL_LLM_URL": "http://vllm:8000/v1/", "IRONBOWL_LLM_MODEL": "qwen"}
    )
    assert settings == LlmSettings(url="http://vllm:8000/v1", model="qwen")
    with pytest.raises(ValueError, match="http"):
        LlmSettings.from_environment({"IRONBOWL_LLM_URL": "ftp://x"})


# --- The spec and the knowledge -------------------------------------------------------------------


def test_bad_specs_are_refused_with_what_to_fix() -> None:
    assert converse.parse_spec({})["video"] is False
    with pytest.raises(StageError, match="not supported"):
        converse.parse_spec({"language": "fr"})
    with pytest.raises(StageError, match="idle_timeout_s"):
        converse.parse_spec({"idle_timeout_s": 0})
    with pytest.raises(StageError, match="No portrait"):
        converse.parse_spec({"video": True})
    with pytest.raises(StageError, match="not read"):
        converse.parse_spec({"video": True, "portrait_path": "/srv/media/avatars/p.png"})
    spec = converse.parse_spec({"video": True, "portrait": "reference", "size": 128})
    assert spec["portrait"] == "reference" and spec["size"] == 128


def test_knowledge_from_the_control_plane_is_checked() -> None:
    with pytest.raises(StageError, match="no knowledge entries"):
        converse.knowledge_base({"version": "v0", "entries": []})
    with pytest.raises(StageError, match="unreadable"):
        converse.knowledge_base({"entries": [{"id": 1}]})
