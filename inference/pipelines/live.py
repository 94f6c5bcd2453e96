"""The live pipeline: a digital human on air for a shift, paced in real time.

Spec: `{"segments": [{"text": str, "language": "zh" | "yue" | "en"}, ...], "portrait":
"reference" | "inputs": {"portrait": {...}} (as for `render`), "ai_label": bool, "duration_s":
float, "idle_between_s": float, "script_version": int, "outputs": {"hls_dir": str, "rtmp_url":
str} (one or both), "size": int, "fps": int, "seed": int, "latency_s": float}`.

The stream is a timeline of `round(duration_s × fps)` frames. The program plays the script's
segments in order (speech, mouth track and frames, as `render` makes them) with an idle loop
between them (mouth shut, silence; blinks and head sway go on, since they are functions of the
frame number), and starts the script again from the top until the shift ends. Between segments
the `ScriptSource` is asked for the current script: an update (a higher `version`, which an
operator sent through the control plane and the worker received with a heartbeat) is played from
its first segment on.

Pacing: frame k is due at `t0 + k / fps`, where t0 is `latency_s` (default 1 s) after the models
are loaded; chunks are rendered and sent at most `latency_s` ahead of that, so outputs receive a
real-time stream with a buffer of `latency_s`. A frame whose due time has passed before it could
be rendered is dropped (the program moves on with the clock, like live TV, instead of drifting
late); drops are counted, never hidden. Outputs: HLS (written in the loop; local disk) and an
RTMP push (its own thread, see `rtmp`). `frames_sent` counts the frames the station's output
received (the RTMP push when there is one, else HLS) and `frames_dropped` the rest of the
timeline, so the two always add up to the shift's frames.

Reports: `stream_minutes` (timeline time on air) and GPU-seconds as usage deltas every ~10 s
and once more at the end (also when cancelled: time on air is owed); progress is elapsed /
duration, also at each segment's start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inference import contracts
from inference.pipelines import render
from inference.pipelines.rtmp import Gap, RtmpPush, fit_audio, redact, samples_at
from inference.pipelines.script import MAX_SHIFT_S, Script, Segment, parse_script
from inference.pipelines.types import Speech, StageError
from inference.worker.pipelines import PipelineFailed, WorkloadContext

CHUNK_FRAMES = 10  # frames rendered and sent together: 0.4 s at 25 frames/s
MEASURE_EVERY_S = 1.0  # how often the frames/s sent is measured for the on-air board
REPORT_EVERY_S = 10.0
MAX_IDLE_S = 600.0
DEFAULT_LATENCY_S = 1.0
HLS_SEGMENT_S = 2.0


# -- the script ----------------------------------------------------------------------------


class ScriptSource(Protocol):
    """Where the live loop gets the script between segments."""

    def current(self) -> Script: ...


class ControlPlaneScript:
    """The script as the control plane last sent it: an operator's update reaches the worker in
    a heartbeat's reply and the worker hands it to the workload's context. Only a higher version
    replaces the one on air; one that cannot be parsed leaves the current script on air (the
    stream must not stop for a bad update) and its reason in `error`."""

    def __init__(self, ctx: WorkloadContext, initial: Script) -> None:
        self._ctx = ctx
        self._script = initial
        self._refused = -1  # the version last refused, so it is parsed once
        self.error = ""

    def current(self) -> Script:
        update = self._ctx.script()
        if update is None or update.version <= self._script.version:
            return self._script
        if update.version == self._refused:
            return self._script
        try:
            script = parse_script(update.version, list(update.segments))
        except StageError as error:
            self._refused = update.version
            self.error = f"script v{update.version} ignored: {error}"
            return self._script
        self._script, self.error = script, ""
        return self._script


# -- the spec ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LiveSpec:
    script: Script
    portrait: render.Portrait
    ai_label: bool
    duration_s: float
    idle_between_s: float
    hls_dir: Path | None
    rtmp_url: str | None
    size: int
    fps: int
    seed: int
    latency_s: float


def _number(spec: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise StageError(f"`{name}` must be a number of seconds from {low:g} to {high:g}.")
    return float(value)


def parse_spec(spec: dict[str, Any]) -> LiveSpec:
    script = parse_script(spec.get("script_version", 1), spec.get("segments"))
    # Size, frame rate, seed and portrait follow the render pipeline's rules.
    shape = render.parse_spec(
        {
            key: spec[key]
            for key in ("portrait", "inputs", "portrait_path", "size", "fps", "seed")
            if key in spec
        }
        | {"text": script.segments[0].text, "language": script.segments[0].language}
    )
    duration = _number(spec, "duration_s", 0.0, 0.0, MAX_SHIFT_S)
    if duration <= 0:
        raise StageError("`duration_s`, the shift's length in seconds, must be more than 0.")
    outputs = spec.get("outputs") or {}
    if not isinstance(outputs, dict):
        raise StageError("`outputs` must be an object with `hls_dir` and/or `rtmp_url`.")
    hls_dir, rtmp_url = outputs.get("hls_dir"), outputs.get("rtmp_url")
    if not hls_dir and not rtmp_url:
        raise StageError("The stream has nowhere to go: give `outputs.hls_dir` or `rtmp_url`.")
    if rtmp_url and (
        not isinstance(rtmp_url, str) or not rtmp_url.startswith(("rtmp://", "rtmps://"))
    ):
        raise StageError("`outputs.rtmp_url` must be an rtmp:// or rtmps:// URL.")
    return LiveSpec(
        script=script,
        portrait=shape["portrait"],
        ai_label=bool(spec.get("ai_label", True)),
        duration_s=duration,
        idle_between_s=_number(spec, "idle_between_s", 2.0, 0.0, MAX_IDLE_S),
        hls_dir=_output_path(str(hls_dir)) if hls_dir else None,
        rtmp_url=str(rtmp_url) if rtmp_url else None,
        size=shape["size"],
        fps=shape["fps"],
        seed=shape["seed"],
        latency_s=_number(spec, "latency_s", DEFAULT_LATENCY_S, 0.2, 10.0),
    )


def _output_path(value: str) -> Path:
    """The HLS directory, always under the worker's output directory: a workload's spec is the
    tenant's to write, so it may not name a place elsewhere on the worker's disk."""
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise StageError(
            "`outputs.hls_dir` must be a folder name under the worker's output directory "
            "(relative, without '..')."
        )
    return Path(os.environ.get(render.ENV_OUTPUT_DIR) or "renders") / path


# -- the program ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Piece:
    """Frames `start` .. `start + len(openness)` of the timeline: the mouth track and the audio
    that plays with them (exactly the samples those frames cover)."""

    start: int
    openness: np.ndarray
    audio: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.openness)

    def from_frame(self, frame: int, *, fps: int, rate: int) -> Piece:
        """The piece without its frames before `frame`."""
        cut = max(0, frame - self.start)
        skip = samples_at(self.start + cut, fps=fps, sample_rate=rate) - samples_at(
            self.start, fps=fps, sample_rate=rate
        )
        return Piece(self.start + cut, self.openness[cut:], self.audio[skip:])


@dataclasses.dataclass
class Tally:
    segments_spoken: int = 0
    segments_skipped: int = 0
    by_version: dict[str, int] = dataclasses.field(default_factory=dict)
    version: int = 0
    note: str = ""  # the latest thing to say in a progress report


class Program:
    """Endless pieces: the script's segments with idle between them, script updates taken
    between segments. Positions follow the timeline even when the loop drops frames."""

    def __init__(
        self, source: ScriptSource, tts: Any, *, fps: int, rate: int, idle_s: float
    ) -> None:
        self._source = source
        self._tts = tts
        self.fps, self.rate = fps, rate
        self._idle_frames = round(idle_s * fps)
        self._speech: dict[tuple[int, int], Speech | None] = {}
        self.tally = Tally(version=source.current().version)

    def prepare(self, script: Script) -> None:
        """Speak every segment of the first script now, so bad input fails before going on air."""
        for index, segment in enumerate(script.segments):
            self._speech[(script.version, index)] = self._synthesize(segment)

    def pieces(self) -> Iterator[Piece]:
        from inference.pipelines.visemes import mouth_track

        position, index, version = 0, 0, self.tally.version
        while True:
            script = self._source.current()
            if script.version != version:
                version, index = script.version, 0
                self._speech = {k: v for k, v in self._speech.items() if k[0] == version}
            self.tally.version = version
            number = index % len(script.segments)
            index += 1
            key = (version, number)
            if key not in self._speech:
                try:
                    self._speech[key] = self._synthesize(script.segments[number])
                except StageError as error:  # an update that cannot be spoken: skip it
                    self._speech[key] = None
                    self.tally.note = f"segment {number + 1} of v{version} skipped: {error}"
            speech = self._speech[key]
            if speech is None:
                self.tally.segments_skipped += 1
            else:
                samples = speech.samples
                openness = mouth_track(speech, self.fps)
                frames = max(len(openness), math.ceil(len(samples) * self.fps / self.rate))
                openness = np.concatenate([openness, np.zeros(frames - len(openness))])
                self.tally.segments_spoken += 1
                self.tally.by_version[str(version)] = self.tally.by_version.get(str(version), 0) + 1
                self.tally.note = (
                    f"segment {number + 1}/{len(script.segments)} of v{version}"
                    f" (#{self.tally.segments_spoken})"
                )
                yield from self._chunks(position, openness, samples)
                position += frames
            # Idle after each segment; at least one chunk when nothing could be spoken, so a
            # script of unspeakable segments cannot spin without the clock advancing.
            idle = self._idle_frames if speech is not None else max(self._idle_frames, self.fps)
            if idle:
                yield from self._chunks(position, np.zeros(idle), np.zeros(0, np.float32))
                position += idle

    def _synthesize(self, segment: Segment) -> Speech:
        speech: Speech = self._tts.synthesize(segment.text, segment.language)
        samples = _resample(speech.samples, speech.sample_rate, self.rate)
        return Speech(samples, self.rate, speech.phonemes, speech.language)

    def _chunks(self, start: int, openness: np.ndarray, audio: np.ndarray) -> Iterator[Piece]:
        """Split frames starting at timeline frame `start` into pieces of CHUNK_FRAMES; the
        audio (local to `start`) is padded with silence to cover every frame."""
        base = samples_at(start, fps=self.fps, sample_rate=self.rate)
        for first in range(0, len(openness), CHUNK_FRAMES):
            last = min(first + CHUNK_FRAMES, len(openness))
            lo = samples_at(start + first, fps=self.fps, sample_rate=self.rate) - base
            hi = samples_at(start + last, fps=self.fps, sample_rate=self.rate) - base
            piece_audio = audio[lo:hi]
            if len(piece_audio) < hi - lo:
                piece_audio = np.concatenate(
                    [piece_audio, np.zeros(hi - lo - len(piece_audio), np.float32)]
                )
            yield Piece(start + first, openness[first:last].astype(np.float32), piece_audio)


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples.astype(np.float32, copy=False)
    length = round(len(samples) * target / rate)
    positions = np.arange(length) * (rate / target)
    resampled: np.ndarray = np.interp(positions, np.arange(len(samples)), samples)
    return resampled.astype(np.float32)


# -- on air --------------------------------------------------------------------------------


def run(ctx: WorkloadContext) -> dict[str, Any]:
    try:
        return _live(ctx)
    except StageError as error:
        raise PipelineFailed(str(error)) from error


def _live(ctx: WorkloadContext) -> dict[str, Any]:
    import torch

    spec = parse_spec(ctx.spec)
    threads = int(os.environ.get(render.ENV_TORCH_THREADS, "1"))
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tts = render.speech_engine()
    source = ControlPlaneScript(ctx, spec.script)
    program = Program(
        source, tts, fps=spec.fps, rate=int(tts.sample_rate), idle_s=spec.idle_between_s
    )
    program.prepare(spec.script)
    renderer = render.portrait_renderer(render.portrait_file(ctx, spec.portrait), spec.size, device)
    air = _OnAir(ctx, spec, program, renderer, threads=threads)
    air.stream(source)
    return air.result(device)


class _OnAir:
    """The clock, the outputs and the counts of one stream."""

    def __init__(
        self,
        ctx: WorkloadContext,
        spec: LiveSpec,
        program: Program,
        renderer: Any,
        *,
        threads: int,
    ) -> None:
        from inference.pipelines.encode import HlsWriter, VideoSettings

        self.ctx, self.spec, self.program, self.renderer = ctx, spec, program, renderer
        self.fps, self.rate = spec.fps, program.rate
        self.total = round(spec.duration_s * spec.fps)
        video = VideoSettings(threads=threads)
        self.hls = (
            HlsWriter(
                spec.hls_dir,
                fps=self.fps,
                sample_rate=self.rate,
                segment_s=HLS_SEGMENT_S,
                video=video,
            )
            if spec.hls_dir
            else None
        )
        self.rtmp = (
            RtmpPush(spec.rtmp_url, fps=self.fps, sample_rate=self.rate, video=video)
            if spec.rtmp_url
            else None
        )
        self.position = 0  # timeline frames behind us, sent or dropped
        self.late: list[Gap] = []
        self._reported_frames = 0
        self._reported_at = time.monotonic()
        self._measured_frames = 0
        self._measured_at = self._reported_at
        self._note = ""

    def stream(self, source: ScriptSource) -> None:
        started = time.monotonic()
        due_zero = started + self.spec.latency_s  # when frame 0 is due at the outputs
        completed = False
        try:
            for whole in self.program.pieces():
                self.ctx.check_stopped()
                piece = whole if whole.end <= self.total else self._until(whole, self.total)
                ahead = started + piece.start / self.fps - time.monotonic()
                if ahead > 0:
                    self.ctx.sleep(ahead)  # never more than latency_s ahead of the clock
                piece = self._drop_late(piece, due_zero)
                if len(piece.openness):
                    frames = self.renderer.render(
                        piece.openness, start_frame=piece.start, seed=self.spec.seed
                    )
                    if self.spec.ai_label:
                        from inference.pipelines.label import burn_label

                        frames = burn_label(frames)
                    kept = self._drop_late(piece, due_zero)
                    self._send(kept, frames[kept.start - piece.start :])
                self.position = piece.end
                self._report(source)
                if self.position >= self.total:
                    break
            completed = True
        finally:
            self._close(completed)
            self._usage()

    def _until(self, piece: Piece, frame: int) -> Piece:
        keep = frame - piece.start
        samples = samples_at(frame, fps=self.fps, sample_rate=self.rate) - samples_at(
            piece.start, fps=self.fps, sample_rate=self.rate
        )
        return Piece(piece.start, piece.openness[:keep], piece.audio[:samples])

    def _drop_late(self, piece: Piece, due_zero: float) -> Piece:
        """The piece without the frames whose due time has passed; they are counted."""
        overdue = (time.monotonic() - due_zero) * self.fps  # frames before this are late
        first_in_time = min(piece.end, max(piece.start, math.floor(overdue) + 1))
        if first_in_time == piece.start:
            return piece
        dropped = first_in_time - piece.start
        last = self.late[-1] if self.late else None
        if last is not None and last.start_frame + last.frames == piece.start:
            last.frames += dropped
        else:
            self.late.append(Gap("all", piece.start, dropped, "rendering fell behind the clock"))
        return piece.from_frame(first_in_time, fps=self.fps, rate=self.rate)

    def _send(self, piece: Piece, frames: np.ndarray) -> None:
        if not len(frames):
            return
        if self.hls is not None:
            audio = fit_audio(
                piece.audio,
                first_frame=self.hls.frames_written,
                frames=len(frames),
                fps=self.fps,
                rate=self.rate,
            )
            try:
                self.hls.write(frames, audio)
            except OSError as error:
                raise PipelineFailed(
                    f"The HLS output {self.spec.hls_dir} failed: {error}"
                ) from error
        if self.rtmp is not None:
            self.rtmp.send(piece.start, frames, piece.audio)

    def _frames_out(self) -> int:
        """Frames the station's output has received: the RTMP push when there is one, else HLS."""
        if self.rtmp is not None:
            return self.rtmp.frames_sent
        return self.hls.frames_written if self.hls is not None else 0

    def _measure(self) -> None:
        """Frames per second the output received since the last measurement (at most once a
        second), for the worker's next heartbeat."""
        now = time.monotonic()
        elapsed = now - self._measured_at
        if elapsed < MEASURE_EVERY_S:
            return
        sent = self._frames_out()
        self.ctx.measured(fps=round((sent - self._measured_frames) / elapsed, 2))
        self._measured_frames, self._measured_at = sent, now

    def _report(self, source: ScriptSource) -> None:
        self._measure()
        note = self.program.tally.note
        error = getattr(source, "error", "")
        if error:
            note = f"{note}; {error}"
        if note != self._note:
            self._note = note
            self.ctx.progress(self.position / self.total, f"on air: {note}")
        if time.monotonic() - self._reported_at >= REPORT_EVERY_S:
            self._usage()
            self.ctx.progress(self.position / self.total, f"on air: {note}")

    def _usage(self) -> None:
        """Stream-minutes and GPU-seconds since the previous report (deltas)."""
        now = time.monotonic()
        frames = min(self.position, self.total) - self._reported_frames
        seconds = now - self._reported_at
        if frames <= 0 and seconds <= 0:
            return
        self.ctx.usage(
            contracts.Usage(
                stream_minutes=frames / self.fps / 60, gpu_seconds=seconds * self.ctx.gpus
            )
        )
        self._reported_frames += frames
        self._reported_at = now

    def _close(self, completed: bool) -> None:
        """End the outputs; a cancelled stream's playlist is ended cleanly too (what was on air
        stays playable)."""
        try:
            if self.hls is not None:
                if completed:
                    self.hls.close()
                else:
                    with contextlib.suppress(Exception):  # already failing; keep that error
                        self.hls.close()
        finally:
            if self.rtmp is not None:
                self.rtmp.close()

    def result(self, device: str) -> dict[str, Any]:
        hls_frames = self.hls.frames_written if self.hls is not None else None
        if self.rtmp is not None:
            sent = self.rtmp.frames_sent
            gaps = self.late + self.rtmp.gaps
        else:
            sent = hls_frames or 0
            gaps = list(self.late)
        gaps.sort(key=lambda gap: gap.start_frame)
        outputs: dict[str, Any] = {}
        if self.hls is not None:
            outputs["hls"] = {"playlist": str(self.hls.playlist), "frames_sent": hls_frames}
        if self.rtmp is not None:
            outputs["rtmp"] = {
                "url": redact(self.rtmp.url),
                "frames_sent": self.rtmp.frames_sent,
                "reconnects": self.rtmp.reconnects,
            }
        tally = self.program.tally
        return {
            "frames_total": self.total,
            "frames_sent": sent,
            "frames_dropped": self.total - sent,
            "frames_late": sum(gap.frames for gap in self.late),
            "gaps": [gap.to_json(self.fps) for gap in gaps],
            "reconnects": self.rtmp.reconnects if self.rtmp is not None else 0,
            "segments_spoken": tally.segments_spoken,
            "segments_skipped": tally.segments_skipped,
            "segments_by_version": dict(tally.by_version),
            "script_version": tally.version,
            "duration_s": self.spec.duration_s,
            "fps": self.fps,
            "size": self.spec.size,
            "device": device,
            "outputs": outputs,
        }
