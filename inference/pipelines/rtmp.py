"""RTMP push of a live stream (FLV, H.264/AAC, with PyAV) that survives the server going away.

Why a thread of its own: the live clock must never wait on the network. The live loop hands each
chunk to `RtmpPush.send`, which only queues it; a sender thread encodes and writes. While the
server is unreachable the thread keeps taking chunks off the queue and counts them as a gap
(frames the station did not receive), and reconnects with exponential backoff (0.25 s doubling
to a 4 s cap) — so the clock runs on, the gap is counted, and nothing fails. A sender that
falls behind (slow network, a write that hangs) fills the queue; the chunks that do not fit
are counted as a gap too, instead of stalling the renderer.

Each connection is a new RTMP publish: a fresh FLV muxer whose timestamps start at 0 (servers
such as nginx-rtmp record every publish as its own file). PyAV connects lazily, at the first
packet written, so a refused connection shows up as the first write failing. A chunk written
into the socket just before the server died can be lost without an error (the kernel accepted
it); detection comes with the next write, so a gap may start up to one chunk late.
"""

from __future__ import annotations

import dataclasses
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from inference.pipelines.encode import AvWriter, VideoSettings

BACKOFF_FIRST_S = 0.25
BACKOFF_CAP_S = 4.0
QUEUE_CHUNKS = 4  # chunks waiting for the sender; beyond this they count as a gap
CONNECT_TIMEOUT_S = 2.0
CLOSE_WAIT_S = 10.0  # how long `close` waits for the sender to flush


def samples_at(frame: int, *, fps: int, sample_rate: int) -> int:
    """Audio samples that end where `frame` video frames end (AvWriter's own rounding)."""
    return (frame * sample_rate + fps // 2) // fps


def fit_audio(
    audio: np.ndarray, *, first_frame: int, frames: int, fps: int, rate: int
) -> np.ndarray:
    """The chunk's audio trimmed or padded with silence to exactly what `frames` frames cover
    when the writer has `first_frame` frames behind it. A writer given more audio than its frames
    cover would hold the last frame to play it out (an extra frame); the difference is at most a
    sample or two of rounding, so trimming loses nothing audible."""
    need = samples_at(first_frame + frames, fps=fps, sample_rate=rate) - samples_at(
        first_frame, fps=fps, sample_rate=rate
    )
    if len(audio) >= need:
        return audio[:need]
    return np.concatenate([audio, np.zeros(need - len(audio), dtype=np.float32)])


def redact(url: str) -> str:
    """The URL without its path and credentials: RTMP stream keys are secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


@dataclasses.dataclass
class Gap:
    """Frames of the stream (numbered from its start) that did not reach an output."""

    output: str
    start_frame: int
    frames: int
    reason: str

    def to_json(self, fps: int) -> dict[str, Any]:
        return {
            "output": self.output,
            "start_s": round(self.start_frame / fps, 3),
            "end_s": round((self.start_frame + self.frames) / fps, 3),
            "frames": self.frames,
            "reason": self.reason,
        }


Opener = Callable[[str], Any]


def _open_flv(url: str) -> Any:
    return av.open(url, "w", format="flv")


class RtmpPush:
    """Pushes chunks of frames and audio to one RTMP URL; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        fps: int,
        sample_rate: int,
        video: VideoSettings | None = None,
        keyframe_interval_s: float = 2.0,
        opener: Opener = _open_flv,
    ) -> None:
        self.url = url
        self.fps = fps
        self.sample_rate = sample_rate
        self._video = video or VideoSettings()
        self._keyframe_interval = max(1, round(keyframe_interval_s * fps))
        self._opener = opener
        self._queue: queue.Queue[tuple[int, np.ndarray, np.ndarray] | None] = queue.Queue(
            maxsize=QUEUE_CHUNKS
        )
        self._lock = threading.Lock()
        self._gaps: list[Gap] = []
        self._writer: AvWriter | None = None
        self._connected_once = False
        self._backoff = BACKOFF_FIRST_S
        self._next_attempt = 0.0
        self.frames_sent = 0
        self.reconnects = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="rtmp-push", daemon=True)
        self._thread.start()

    @property
    def gaps(self) -> list[Gap]:
        with self._lock:
            return list(self._gaps)

    def send(self, start_frame: int, frames: np.ndarray, audio: np.ndarray) -> None:
        """Queue one chunk (frames numbered from `start_frame` of the stream); never blocks."""
        try:
            self._queue.put_nowait((start_frame, frames, audio))
        except queue.Full:
            self._gap(start_frame, len(frames), "the RTMP sender fell behind the clock")

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Send what is queued, end the publish and stop the thread. A sender stuck on the
        network is left behind (daemon thread) after `timeout_s`."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    # -- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            start, frames, audio = item
            try:
                self._push(start, frames, audio)
            except Exception as error:  # a bug, not the network: counted, not lost silently
                reason = repr(error).replace(self.url, redact(self.url))
                self.last_error = f"RTMP push failed unexpectedly: {reason}"
                self._gap(start, len(frames), self.last_error)
                if self._writer is not None:
                    self._writer.abort()
                    self._writer = None
        if self._writer is not None:
            try:
                self._writer.close()
            except (av.FFmpegError, OSError):
                self._writer.abort()
            self._writer = None

    def _push(self, start: int, frames: np.ndarray, audio: np.ndarray) -> None:
        if self._writer is None:
            if time.monotonic() < self._next_attempt:
                self._gap(start, len(frames), self.last_error or "the RTMP server is unreachable")
                return
            try:
                self._check_reachable()
            except OSError as error:
                self._failed(start, len(frames), error)
                return
            self._writer = AvWriter(
                self._opener(self.url),
                fps=self.fps,
                sample_rate=self.sample_rate,
                keyframe_interval=self._keyframe_interval,
                video=self._video,
            )
        writer = self._writer
        fresh = writer.frames_written == 0
        try:
            writer.write(
                frames,
                fit_audio(
                    audio,
                    first_frame=writer.frames_written,
                    frames=len(frames),
                    fps=self.fps,
                    rate=self.sample_rate,
                ),
            )
        except (av.FFmpegError, OSError) as error:
            writer.abort()
            self._writer = None
            self._failed(start, len(frames), error)
            return
        if fresh:
            if self._connected_once:
                self.reconnects += 1
            self._connected_once = True
            self._backoff = BACKOFF_FIRST_S
        self.frames_sent += len(frames)

    def _check_reachable(self) -> None:
        """Connect to the server's port before opening the muxer. PyAV connects only when the
        first packet is muxed, and x264 holds the first frames back, so without this a short
        chunk could "succeed" against a server that is down and count as a reconnect."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "rtmps" else 1935)
        socket.create_connection((parts.hostname or "", port), timeout=CONNECT_TIMEOUT_S).close()

    def _failed(self, start: int, frames: int, error: BaseException) -> None:
        """A failed write or connect: the chunk is a gap; the next try waits, backing off."""
        reason = str(error).replace(self.url, redact(self.url))  # the stream key is a secret
        self.last_error = f"RTMP push failed: {reason}"
        self._gap(start, frames, self.last_error)
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_CAP_S)

    def _gap(self, start: int, frames: int, reason: str) -> None:
        """Record undelivered frames, merged with the previous gap when they follow it."""
        with self._lock:
            last = self._gaps[-1] if self._gaps else None
            if last is not None and last.start_frame + last.frames == start:
                last.frames += frames
            else:
                self._gaps.append(Gap("rtmp", start, frames, reason))
