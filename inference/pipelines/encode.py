"""H.264/AAC encoding of rendered frames and speech with PyAV: an MP4 file, a fragmented MP4 in
memory, and HLS segments a caller can keep appending to (live).

Audio and video are kept in step chunk by chunk: whichever of the two is shorter is padded — the
video with its last frame, the audio with silence — so both end on the same frame boundary and
their durations agree within one frame (exactly, up to one audio sample, before the container's
own rounding). Audio keeps its sample rate when AAC supports it (the reference TTS gives 24 kHz,
which is kept); any other rate is resampled to 48 kHz by the encoder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypedDict

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from inference.pipelines.types import StageError

# Sampling rates the AAC bitstream can signal directly; anything else would be refused or
# mis-signalled, so it is resampled to FALLBACK_SAMPLE_RATE.
AAC_SAMPLE_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
)
FALLBACK_SAMPLE_RATE = 48000
MAX_FPS = 120


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """x264 settings: `veryfast` keeps a 512×512 stream well above real time on one CPU core;
    CRF 23 is x264's default quality. `threads=0` lets x264 choose; a worker running several
    slots on few cores should pass 1 or 2."""

    crf: int = 23
    preset: str = "veryfast"
    threads: int = 0


@dataclasses.dataclass(frozen=True)
class EncodedInfo:
    """What was written, after padding (counted by the encoder, not read back from the file)."""

    duration_s: float
    video_frames: int
    video_duration_s: float
    audio_duration_s: float
    size_bytes: int


def audio_rate_for(sample_rate: int) -> int:
    """The AAC stream's rate for speech at `sample_rate`."""
    return sample_rate if sample_rate in AAC_SAMPLE_RATES else FALLBACK_SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class _Streams:
    video: VideoStream
    audio: AudioStream


class _ClosedOnExit:
    """`with writer:` closes it, or aborts it (discarding the output) when the block raised."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()


class AvWriter(_ClosedOnExit):
    """Encodes chunks of RGB frames and mono speech into one open PyAV container.

    Each `write` is one chunk: frames are consumed lazily (a generator from the renderer is
    fine) and the chunk's audio is interleaved frame by frame, so memory stays at one frame and
    the muxer never buffers much. At the end of the chunk the shorter side is padded (see the
    module docstring), so chunk boundaries stay in sync and a live stream never drifts.
    The streams are created at the first frame, when the frame size is known.
    """

    def __init__(
        self,
        container: OutputContainer,
        *,
        fps: int,
        sample_rate: int,
        keyframe_interval: int | None = None,
        video: VideoSettings | None = None,
    ) -> None:
        _check_fps(fps)
        _check_sample_rate(sample_rate)
        self._container = container
        self.fps = fps
        self.sample_rate = sample_rate
        self._keyframe_interval = keyframe_interval
        self._settings = video or VideoSettings()
        self._opened: _Streams | None = None
        self.frames_written = 0
        self.samples_written = 0
        self._closed = False

    @property
    def video_duration_s(self) -> float:
        return self.frames_written / self.fps

    @property
    def audio_duration_s(self) -> float:
        return self.samples_written / self.sample_rate

    def write(self, frames: Iterable[np.ndarray] | np.ndarray, audio: np.ndarray) -> None:
        """Encode one chunk: `frames` are (height, width, 3) uint8 RGB, `audio` float32 mono in
        [-1, 1] at `sample_rate`. Raises StageError for an empty chunk or malformed input."""
        if self._closed:
            raise StageError("this encoder is closed; start a new one to write more")
        samples = _check_audio(audio)
        chunk_start = self.samples_written
        sent = 0  # of this chunk's samples
        last: np.ndarray | None = None
        for frame in _iter_frames(frames):
            self._encode_frame(frame)
            last = frame
            sent = self._encode_audio(samples, sent)
        if last is None:
            raise StageError("no frames to encode: the renderer produced an empty video")
        # Audio longer than the video: hold the last frame until the audio's last sample.
        while self._samples_at(self.frames_written) - chunk_start < len(samples):
            self._encode_frame(last)
            sent = self._encode_audio(samples, sent)
        # Audio shorter than the video, or ending mid-frame: silence to the frame boundary.
        self._encode_audio(samples, sent, pad=True)

    def close(self) -> None:
        """Flush both encoders and finish the container (writes the MP4 index / HLS ENDLIST)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._opened is not None:
                self._container.mux(self._opened.video.encode())
                self._container.mux(self._opened.audio.encode())
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close without flushing, after a failure; the output is not meant to be used."""
        if self._closed:
            return
        self._closed = True
        # A container with no streams or a half-written header cannot write a trailer; the
        # caller is discarding the output anyway.
        with contextlib.suppress(av.FFmpegError, ValueError):
            self._container.close()

    # -- internals ------------------------------------------------------------------------

    def _samples_at(self, frames: int) -> int:
        """Audio samples that end where `frames` video frames end (since the stream began)."""
        return (frames * self.sample_rate + self.fps // 2) // self.fps

    def _encode_audio(self, samples: np.ndarray, sent: int, *, pad: bool = False) -> int:
        """Encode the chunk's audio up to the end of the frames written so far; returns how many
        of the chunk's samples are now sent. With `pad`, silence fills up to that point."""
        wanted = self._samples_at(self.frames_written) - self.samples_written
        piece = samples[sent : sent + max(wanted, 0)]
        sent += len(piece)
        if pad and len(piece) < wanted:
            piece = np.concatenate([piece, np.zeros(wanted - len(piece), dtype=np.float32)])
        if len(piece) == 0:
            return sent
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(piece).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.sample_rate
        frame.time_base = Fraction(1, self.sample_rate)
        frame.pts = self.samples_written
        self._container.mux(self._streams().audio.encode(frame))
        self.samples_written += len(piece)
        return sent

    def _encode_frame(self, frame: np.ndarray) -> None:
        if self._opened is None:
            self._opened = self._open_streams(frame)
        elif frame.shape[:2] != (self._opened.video.height, self._opened.video.width):
            height, width = self._opened.video.height, self._opened.video.width
            raise StageError(
                f"frame {self.frames_written} is {frame.shape[1]}×{frame.shape[0]} but the "
                f"video is {width}×{height}; every frame of a stream must have the same size"
            )
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = Fraction(1, self.fps)
        self._container.mux(self._streams().video.encode(video_frame))
        self.frames_written += 1

    def _streams(self) -> _Streams:
        if self._opened is None:
            raise RuntimeError("streams are opened by the first frame")  # a bug, not bad input
        return self._opened

    def _open_streams(self, frame: np.ndarray) -> _Streams:
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            raise StageError(
                f"frames are {width}×{height}; H.264 in yuv420p needs an even width and "
                "height — crop or pad the portrait by one pixel"
            )
        options = {"crf": str(self._settings.crf), "preset": self._settings.preset}
        if self._keyframe_interval is not None:
            # Fixed GOP with no scene-cut keyframes: HLS segments and MP4 fragments are cut at
            # keyframes, so this makes them regular.
            options |= {
                "g": str(self._keyframe_interval),
                "keyint_min": str(self._keyframe_interval),
                "sc_threshold": "0",
            }
        video = self._container.add_stream("libx264", rate=self.fps, options=options)
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = self._settings.threads
        audio = self._container.add_stream("aac", rate=audio_rate_for(self.sample_rate))
        audio.layout = "mono"
        return _Streams(video, audio)


def encode_mp4(
    path: Path,
    frames: Iterable[np.ndarray] | np.ndarray,
    *,
    fps: int,
    audio: np.ndarray,
    sample_rate: int,
    video: VideoSettings | None = None,
) -> EncodedInfo:
    """Write an H.264/AAC MP4 with its index up front (`+faststart`, so a browser can start
    playing before the download ends). A failed encode leaves no file behind."""
    path = Path(path)
    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    writer = AvWriter(container, fps=fps, sample_rate=sample_rate, video=video)
    try:
        with writer:
            writer.write(frames, audio)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    video_s, audio_s = writer.video_duration_s, writer.audio_duration_s
    return EncodedInfo(
        duration_s=max(video_s, audio_s),
        video_frames=writer.frames_written,
        video_duration_s=video_s,
        audio_duration_s=audio_s,
        size_bytes=path.stat().st_size,
    )


def encode_fragmented_mp4(
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: int,
    audio: np.ndarray,
    sample_rate: int,
    *,
    keyframe_interval_s: float = 1.0,
    video: VideoSettings | None = None,
) -> bytes:
    """A fragmented MP4 (ftyp + empty moov, then one moof/mdat per keyframe) built in memory,
    for sending a chunk over a websocket or to Media Source Extensions."""
    buffer = io.BytesIO()
    container = av.open(
        buffer,
        "w",
        format="mp4",
        options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    )
    with AvWriter(
        container,
        fps=fps,
        sample_rate=sample_rate,
        keyframe_interval=_frames_per(keyframe_interval_s, fps),
        video=video,
    ) as writer:
        writer.write(frames, audio)
    return buffer.getvalue()


class HlsWriter(_ClosedOnExit):
    """An HLS stream (MPEG-TS segments + an m3u8 playlist) that grows chunk by chunk, for a live
    room shown in the console; `close()` ends the playlist (EXT-X-ENDLIST). FFmpeg's `hls`
    muxer rewrites the playlist after each finished segment, so a player can follow it live."""

    def __init__(
        self,
        directory: Path,
        *,
        fps: int,
        sample_rate: int,
        segment_s: float = 2.0,
        playlist_name: str = "index.m3u8",
        video: VideoSettings | None = None,
    ) -> None:
        if not segment_s > 0:
            raise StageError(f"HLS segments must be longer than 0 s, got {segment_s}")
        _check_fps(fps)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.playlist = self.directory / playlist_name
        container = av.open(
            str(self.playlist),
            "w",
            format="hls",
            options={
                "hls_time": f"{segment_s:g}",
                "hls_list_size": "0",  # keep every segment in the playlist
                "hls_segment_type": "mpegts",
                "hls_segment_filename": str(self.directory / "segment_%05d.ts"),
            },
        )
        self._writer = AvWriter(
            container,
            fps=fps,
            sample_rate=sample_rate,
            keyframe_interval=_frames_per(segment_s, fps),
            video=video,
        )

    @property
    def frames_written(self) -> int:
        return self._writer.frames_written

    def write(self, frames: Iterable[np.ndarray] | np.ndarray, audio: np.ndarray) -> None:
        try:
            self._writer.write(frames, audio)
        except BaseException:
            self._writer.abort()
            raise

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.abort()


def write_hls(
    directory: Path,
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: int,
    audio: np.ndarray,
    sample_rate: int,
    segment_s: float = 2.0,
) -> Path:
    """Write one clip as HLS into `directory`; returns the playlist's path."""
    with HlsWriter(directory, fps=fps, sample_rate=sample_rate, segment_s=segment_s) as hls:
        hls.write(frames, audio)
    return hls.playlist


# -- probing -------------------------------------------------------------------------------


class ProbedStream(TypedDict):
    type: str  # "video" | "audio" | ...
    codec: str
    duration_s: float | None
    frames: int | None  # decoded frames (video) or audio frames (AAC: 1024 samples each)
    width: int | None
    height: int | None
    pix_fmt: str | None
    sample_rate: int | None


class Probe(TypedDict):
    format_name: str
    duration_s: float
    size_bytes: int | None
    streams: list[ProbedStream]


def probe(path: Path | str) -> Probe:
    """Read a media file (or an HLS playlist) with the `ffprobe` CLI — an independent reader,
    so tests and the end-to-end check do not trust our own writer's bookkeeping. Decodes every
    frame to count them. Raises RuntimeError when ffprobe is not installed and StageError when
    it cannot read the file."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise RuntimeError("ffprobe is not installed (Debian package `ffmpeg`)")
    command = [
        ffprobe,
        "-v",
        "error",
        "-count_frames",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        str(path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise StageError(f"ffprobe cannot read {path}: {result.stderr.strip()}")
    report: dict[str, Any] = json.loads(result.stdout)
    fmt: dict[str, Any] = report.get("format", {})
    return Probe(
        format_name=str(fmt.get("format_name", "")),
        duration_s=float(fmt.get("duration", "nan")),
        size_bytes=_int_or_none(fmt.get("size")),
        streams=[_probed_stream(stream) for stream in report.get("streams", [])],
    )


def _probed_stream(stream: dict[str, Any]) -> ProbedStream:
    duration = stream.get("duration")
    return ProbedStream(
        type=str(stream.get("codec_type", "")),
        codec=str(stream.get("codec_name", "")),
        duration_s=float(duration) if duration is not None else None,
        frames=_int_or_none(stream.get("nb_read_frames")),
        width=_int_or_none(stream.get("width")),
        height=_int_or_none(stream.get("height")),
        pix_fmt=stream.get("pix_fmt"),
        sample_rate=_int_or_none(stream.get("sample_rate")),
    )


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


# -- input checks --------------------------------------------------------------------------


def _check_fps(fps: object) -> None:
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
        raise StageError(
            f"frame rate must be a whole number of frames/s in 1..{MAX_FPS}, got {fps!r}"
        )


def _check_sample_rate(sample_rate: object) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
        raise StageError(f"audio sample rate must be a whole number ≥ 8000 Hz, got {sample_rate!r}")


def _check_audio(audio: np.ndarray) -> np.ndarray:
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise StageError(f"audio must be mono, shape (samples,); got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating):
        raise StageError(f"audio must be float samples in [-1, 1], got dtype {samples.dtype}")
    samples = samples.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise StageError("audio contains NaN or infinite samples")
    clipped: np.ndarray = np.clip(samples, -1.0, 1.0)
    return clipped


def _iter_frames(frames: Iterable[np.ndarray] | np.ndarray) -> Iterator[np.ndarray]:
    for index, frame in enumerate(frames):
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[2] != 3:
            raise StageError(
                f"frame {index} has shape {array.shape}; frames must be (height, width, 3) RGB"
            )
        if array.dtype != np.uint8:
            raise StageError(f"frame {index} is {array.dtype}; frames must be uint8 RGB")
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise StageError(f"frame {index} is empty ({array.shape[1]}×{array.shape[0]})")
        yield np.ascontiguousarray(array)


def _frames_per(seconds: float, fps: int) -> int:
    if not seconds > 0:
        raise StageError(f"a keyframe interval must be longer than 0 s, got {seconds}")
    return max(1, round(seconds * fps))
