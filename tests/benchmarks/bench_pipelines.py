"""Benchmark: the render pipeline's stages against real time, on this machine's CPU.

Real time is what a stream needs: 25 frames/s of video, and speech as fast as it is spoken.
Measured: text to speech (espeak-ng; the real-time factor per language, and how many times
faster than speaking it is), the portrait renderer at 512×512 with 1 and 2 torch threads
(frames/s, as a ratio to 25), the whole render from script to MP4 (seconds of work per second
of video), and 1 to 4 live streams side by side in one process (dropped frames: how many live
slots one worker sustains at 25 frames/s). On CUDA
the same code runs in half precision; this machine has no GPU, so no CUDA figures come from it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.benchmarks.bench_api import BenchmarkSection

FPS = 25
SCRIPTS = {
    "zh": "各位观众晚上好，欢迎来到清河人民医院健康直播间。今天我们聊一聊冬季如何预防流感。",
    "yue": "你好，歡迎嚟到兰溪市场监管局消費者服務台，請問有咩可以幫到你？",
    "en": "Good evening and welcome to the health channel. Tonight we talk about healthy sleep.",
}
ROUNDS = 5


def _tts() -> dict[str, Any]:
    from inference.pipelines.tts import EspeakTTS

    tts = EspeakTTS()
    results = {}
    for language, text in SCRIPTS.items():
        tts.synthesize(text, language)  # warm
        times, duration = [], 0.0
        for _ in range(ROUNDS):
            began = time.perf_counter()
            speech = tts.synthesize(text, language)
            times.append(time.perf_counter() - began)
            duration = speech.duration_s
        seconds = statistics.median(times)
        results[language] = {
            "audio_s": duration,
            "synth_ms": seconds * 1000,
            "real_time_factor": seconds / duration,
        }
    return results


def _renderer(threads: int) -> dict[str, Any]:
    from skimage import data

    from inference.pipelines.renderer import PortraitRenderer

    torch.set_num_threads(threads)
    renderer = PortraitRenderer(np.asarray(data.astronaut()), size=512, device="cpu")
    openness = (np.sin(np.arange(100) / 3.0) + 1) / 2
    renderer.render(openness[:25])  # warm
    times = []
    for round_ in range(ROUNDS):
        began = time.perf_counter()
        renderer.render(openness, start_frame=round_ * 100)
        times.append(time.perf_counter() - began)
    fps = len(openness) / statistics.median(times)
    return {"threads": threads, "frames_per_s": fps, "over_real_time": fps / FPS}


def _render_pipeline() -> dict[str, Any]:
    from inference import contracts
    from inference.pipelines import render
    from inference.worker.pipelines import WorkloadContext

    torch.set_num_threads(1)
    spec = {"text": SCRIPTS["zh"], "language": "zh", "portrait": "reference"}
    with tempfile.TemporaryDirectory() as folder:
        import os

        os.environ[render.ENV_OUTPUT_DIR] = folder
        os.environ[render.ENV_TORCH_THREADS] = "1"
        times, video_s = [], 0.0
        for round_ in range(3):
            assignment = contracts.Assignment(f"bench-{round_}", 1, "render", "render", 1, spec)
            ctx = WorkloadContext(assignment, gpus=0, emit=lambda kind, data: None)
            began = time.perf_counter()
            output = render.run(ctx)
            times.append(time.perf_counter() - began)
            video_s = output["duration_s"]
            Path(folder, output["video"]).unlink()
    seconds = statistics.median(times[1:])  # the first loads the models
    return {"video_s": video_s, "render_s": seconds, "work_per_video_second": seconds / video_s}


def _live_slots(max_streams: int = 4, seconds: float = 8.0) -> list[dict[str, Any]]:
    """Live streams run side by side in one process (one torch thread each, as a worker's
    slots do), writing HLS: the share of frames each could not deliver in time."""
    import os
    import threading

    from inference import contracts
    from inference.pipelines import live, render
    from inference.worker.pipelines import WorkloadContext

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        os.environ[render.ENV_OUTPUT_DIR] = folder
        os.environ[render.ENV_TORCH_THREADS] = "1"
        for streams in range(1, max_streams + 1):
            results: list[dict[str, Any]] = []

            def one(index: int, n: int = streams, results: list[Any] = results) -> None:
                spec = {
                    "segments": [{"text": SCRIPTS["zh"], "language": "zh"}],
                    "portrait": "reference",
                    "duration_s": seconds,
                    "outputs": {"hls_dir": f"hls-{n}-{index}"},
                }
                assignment = contracts.Assignment(f"live-{n}-{index}", 1, "live", "live", 1, spec)
                ctx = WorkloadContext(assignment, gpus=0, emit=lambda kind, data: None)
                results.append(live.run(ctx))

            threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            total = sum(r["frames_total"] for r in results)
            dropped = sum(r["frames_dropped"] for r in results)
            rows.append({"streams": streams, "frames": total, "dropped": dropped})
    return rows


def _conversation(entries_wanted: int = 1000, questions: int = 60) -> dict[str, Any]:
    """Retrieval over 1,000 entries (the demo bureau's 30, repeated under new ids and topics),
    and from a question to the first audio chunk of its answer through the converse pipeline's
    own `Conversation`: language detection, retrieval, and the first sentence spoken and
    WAV-encoded as it is sent over the session socket."""
    import json

    from inference.pipelines.converse import Conversation
    from inference.pipelines.embedder import shared_embedder
    from inference.pipelines.render import speech_engine
    from inference.pipelines.retrieval import KnowledgeBase, KnowledgeEntry

    torch.set_num_threads(1)
    fixture = Path(__file__).parents[2] / "platform/ironbowl/demo_data/bureau_knowledge.json"
    data = json.loads(fixture.read_text())
    base = data["entries"]
    entries = [
        KnowledgeEntry(
            id=f"{item['id']}-{index}",
            questions=tuple(item["questions"]),
            answer=item["answer"],
            language=item["language"],
            topic=f"{item['topic']}-{index // len(base)}",
        )
        for index, item in enumerate(base[i % len(base)] for i in range(entries_wanted))
    ]
    embedder = shared_embedder("cpu")
    began = time.perf_counter()
    knowledge = KnowledgeBase(entries, embedder)
    build_s = time.perf_counter() - began
    asked = [q["question"] for q in data["held_out"]][:questions]
    conversation = Conversation(knowledge, tts=speech_engine())
    retrieval_ms, first_audio_ms, audio_s = [], [], []
    for question in asked:
        began = time.perf_counter()
        knowledge.answer(question)
        retrieval_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        reply = conversation.reply(question)
        first = next(conversation.speak("bench", reply))
        first_audio_ms.append((time.perf_counter() - began) * 1000)
        audio_s.append(first["duration_s"])
    return {
        "entries": len(entries),
        "build_s": build_s,
        "retrieval_p50_ms": statistics.median(retrieval_ms),
        "retrieval_p99_ms": statistics.quantiles(retrieval_ms, n=100, method="inclusive")[98],
        "first_audio_p50_ms": statistics.median(first_audio_ms),
        "first_audio_p99_ms": statistics.quantiles(first_audio_ms, n=100, method="inclusive")[98],
        "first_chunk_audio_p50_s": statistics.median(audio_s),
    }


def run() -> BenchmarkSection:
    data = {
        "tts": _tts(),
        "renderer": [_renderer(1), _renderer(2)],
        "pipeline": _render_pipeline(),
        "live": _live_slots(),
        "conversation": _conversation(),
    }
    torch.set_num_threads(1)
    return BenchmarkSection(
        name="pipelines",
        title="Render pipeline stages against real time (CPU)",
        markdown=_markdown(data),
        data=data,
    )


def _markdown(data: dict[str, Any]) -> str:
    lines = [
        "| text to speech (espeak-ng) | audio | synthesis | real-time factor | × real time |",
        "|---|---:|---:|---:|---:|",
    ]
    for language, row in data["tts"].items():
        lines.append(
            f"| {language} | {row['audio_s']:.2f} s | {row['synth_ms']:.1f} ms | "
            f"{row['real_time_factor']:.4f} | {1 / row['real_time_factor']:.0f}× |"
        )
    lines += [
        "",
        "| portrait renderer, 512×512, CPU | frames/s | ÷ 25 frames/s (streams kept up with) |",
        "|---|---:|---:|",
    ]
    for row in data["renderer"]:
        lines.append(
            f"| {row['threads']} torch thread(s) | {row['frames_per_s']:.1f} | "
            f"{row['over_real_time']:.2f}× |"
        )
    pipeline = data["pipeline"]
    lines += [
        "",
        f"Whole render, script to MP4 (Mandarin, {pipeline['video_s']:.2f} s of video, one "
        f"thread): {pipeline['render_s']:.2f} s, {pipeline['work_per_video_second']:.2f} s of "
        "work per second of video (below 1 is faster than real time).",
        "",
        "| live streams side by side in one worker (8 s each, HLS) | frames | dropped | share |",
        "|---|---:|---:|---:|",
    ]
    for row in data["live"]:
        share = row["dropped"] / row["frames"] if row["frames"] else 0.0
        lines.append(f"| {row['streams']} | {row['frames']} | {row['dropped']} | {share:.1%} |")
    sustained = [r["streams"] for r in data["live"] if r["dropped"] <= 0.01 * r["frames"]]
    lines.append("")
    lines.append(
        f"Live slots one worker process sustains at 25 frames/s (≤ 1% dropped) on this machine: "
        f"{max(sustained, default=0)}."
    )
    talk = data["conversation"]
    lines += [
        "",
        f"Conversation over {talk['entries']:,} knowledge-base entries (multilingual-e5-small on "
        f"one CPU thread; index built in {talk['build_s']:.0f} s): retrieval p50 "
        f"{talk['retrieval_p50_ms']:.1f} ms, p99 {talk['retrieval_p99_ms']:.1f} ms; question to "
        f"first audio chunk (detect, retrieve, speak and encode the first sentence) p50 "
        f"{talk['first_audio_p50_ms']:.1f} ms, p99 {talk['first_audio_p99_ms']:.1f} ms, for a "
        f"first chunk of {talk['first_chunk_audio_p50_s']:.1f} s of speech (p50: "
        f"{talk['first_audio_p50_ms'] / 1000 / talk['first_chunk_audio_p50_s']:.3f}× its "
        "duration). Users accept about 1.5–2.2 s from question to speech.",
    ]
    return "\n".join(lines)
