"""The build pipeline: footage of a person becomes the parts of an avatar bundle.

Runs in a worker (no Django). Spec: `{"inputs": {"footage": {"sha256": str, "bytes": int}},
"build": str, "avatar": str}` — the footage is fetched from the control plane as the workload's
input `footage` (no shared file system between the web and the GPU pods), and the parts are
delivered back as the workload's outputs `portrait.png` and `voice.json`. The control plane
writes the manifest once it knows the version number (`write_manifest`).

- portrait: sampled frames are searched for a frontal face (OpenCV's Haar cascade); each
  candidate is scored by sharpness (variance of the Laplacian of the face), face size and
  centring; the best frame is kept as a PNG;
- voice: the audio, as 16 kHz mono, gives the median pitch (normalised autocorrelation over
  voiced frames), the loudness of speech, and a speaking rate (syllable-like energy peaks per
  second of speech).

Footage that cannot make an avatar fails the workload with `PipelineFailed` whose `code` says
what is wrong (`no_video`, `no_face`, `too_blurry`, `no_audio`, `voice_too_short`, `no_speech`,
`footage_unreadable`), so the control plane can say it again in the reader's language.
Progress is reported per stage (`footage`, `portrait`, `voice`, `bundle`) and a cancel stops the
work at the next frame.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from inference import contracts
from inference.pipelines import face as face_finder
from inference.worker import artifacts
from inference.worker.pipelines import PipelineFailed, WorkloadContext

Progress = Callable[[float], None]  # called with the fraction of the step done, 0.0 to 1.0

PORTRAIT_CANDIDATES = 36  # frames sampled evenly over the footage
DETECTION_WIDTH = 640  # frames are scaled down to this width to look for faces
MIN_FACE_SHARE = 0.12  # of the frame's short side: a smaller face makes no portrait
MIN_SHARPNESS = 10.0  # variance of the Laplacian of a 256×256 face: below it, a blur

SAMPLE_RATE = 16_000
FRAME_SECONDS = 0.04  # analysis window: several periods of the lowest voices
HOP_SECONDS = 0.01
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 400.0
VOICING_THRESHOLD = 0.6  # normalised autocorrelation at the pitch period
SPEECH_RANGE_DB = 25.0  # quieter than the loud end of speech by more than this: a pause
SILENCE_DBFS = -55.0
SYLLABLE_DIP_DB = 2.0  # two peaks count as two syllables when the energy dips this much between
SYLLABLE_MIN_GAP_SECONDS = 0.1
MIN_VOICED_SECONDS = 1.0


BUNDLE_PARTS = ("portrait.png", "voice.json")
# Where each stage's progress lies in the whole (fractions of the build).
STAGES = {"footage": (0.0, 0.1), "portrait": (0.1, 0.6), "voice": (0.6, 0.9), "bundle": (0.9, 1.0)}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class FootageInput:
    """What the spec says of the footage: its SHA-256 (empty when unknown) and size."""

    sha256: str
    size: int | None


def run(ctx: WorkloadContext) -> dict[str, Any]:
    footage = parse_spec(ctx.spec)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ironbowl-build-") as scratch:
            folder = Path(scratch)
            ctx.progress(STAGES["footage"][0], "footage")
            path = artifacts.fetch_input(
                ctx, "footage", folder / "footage", sha256=footage.sha256, size=footage.size
            )
            portrait = _decoding(pick_portrait, path, _Span(ctx, "portrait"))
            voice = _decoding(voice_profile, path, _Span(ctx, "voice"))
            ctx.progress(STAGES["bundle"][0], "bundle")
            parts = folder / "bundle"
            write_parts(parts, portrait, voice)
            files = {
                name: artifacts.deliver_output(ctx, name, parts / name) for name in BUNDLE_PARTS
            }
    finally:
        # Also when stopped or failed: the time until then was really used.
        elapsed = time.monotonic() - started
        ctx.usage(contracts.Usage(gpu_seconds=elapsed * ctx.gpus))
    return {
        "files": files,
        "portrait": describe_portrait(portrait),
        "voice": voice,
        "build_seconds": round(elapsed, 3),
    }


def parse_spec(spec: dict[str, Any]) -> FootageInput:
    inputs = spec.get("inputs")
    footage = inputs.get("footage") if isinstance(inputs, dict) else None
    if not isinstance(footage, dict):
        raise PipelineFailed("invalid build spec: it names no footage (inputs.footage)")
    sha256 = footage.get("sha256") or ""
    if not isinstance(sha256, str) or (sha256 and not _SHA256.match(sha256)):
        raise PipelineFailed("invalid build spec: the footage's sha256 must be 64 hex digits")
    size = footage.get("bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise PipelineFailed("invalid build spec: the footage's bytes must be a whole number")
    return FootageInput(sha256, size)


class _Span:
    """Progress of one stage, mapped onto its share of the build. Reports only when the whole
    percentage moves (a step may call it for every frame), and stops the work once the workload
    is stopped."""

    def __init__(self, ctx: WorkloadContext, stage: str) -> None:
        self.ctx = ctx
        self.stage = stage
        self.start, self.end = STAGES[stage]
        self.reported = int(self.start * 100)
        ctx.progress(self.start, stage)

    def __call__(self, fraction: float) -> None:
        self.ctx.check_stopped()
        done = self.start + (self.end - self.start) * min(1.0, max(0.0, fraction))
        percent = int(done * 100)
        if percent > self.reported:
            self.reported = percent
            self.ctx.progress(done, self.stage)


def _decoding(step: Callable[[Path, Progress], Any], path: Path, on_progress: Progress) -> Any:
    """Run a step that decodes the footage; a file FFmpeg cannot read fails with what it said."""
    try:
        return step(path, on_progress)
    except av.FFmpegError as error:
        raise PipelineFailed(
            f"The footage cannot be decoded ({error}); upload it again.",
            code="footage_unreadable",
            details={"detail": str(error)[:200]},
        ) from error


# --- Portrait -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Portrait:
    image: npt.NDArray[np.uint8]  # RGB, full resolution
    time_s: float
    face: tuple[int, int, int, int]  # x, y, width, height in the image
    sharpness: float
    score: float


def _largest_face(
    cascade: cv2.CascadeClassifier, gray: npt.NDArray[np.uint8]
) -> tuple[int, int, int, int] | None:
    height, width = gray.shape
    scale = min(1.0, DETECTION_WIDTH / width)
    small = cv2.resize(gray, (round(width * scale), round(height * scale))) if scale < 1 else gray
    min_side = max(24, round(min(small.shape) * MIN_FACE_SHARE))
    faces = cascade.detectMultiScale(
        cv2.equalizeHist(small), scaleFactor=1.15, minNeighbors=5, minSize=(min_side, min_side)
    )
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda face: int(face[2]) * int(face[3]))
    return (round(x / scale), round(y / scale), round(w / scale), round(h / scale))


def score_frame(
    gray: npt.NDArray[np.uint8], face: tuple[int, int, int, int]
) -> tuple[float, float]:
    """(sharpness, score) of a frame with a face: sharp, large enough and central is best."""
    x, y, w, h = face
    crop = cv2.resize(gray[y : y + h, x : x + w], (256, 256), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(crop, cv2.CV_64F).var())
    frame_h, frame_w = gray.shape
    size = min(1.0, (h / min(frame_h, frame_w)) / 0.25)
    off_x = abs(x + w / 2 - frame_w / 2) / (frame_w / 2)
    off_y = abs(y + h / 2 - frame_h / 2) / (frame_h / 2)
    centring = max(0.0, 1.0 - (off_x + off_y) / 2)
    return sharpness, math.log1p(sharpness) * (0.5 + 0.5 * size) * (0.5 + 0.5 * centring)


def pick_portrait(path: Path, on_progress: Progress) -> Portrait:
    """The best frame with a frontal face, from frames sampled evenly over the footage."""
    classifier = face_finder.cascade(face_finder.FACE_CASCADE)
    best: Portrait | None = None
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise PipelineFailed("The footage has no pictures.", code="no_video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        duration = float(container.duration or 0) / av.time_base
        total = stream.frames or max(1, round(duration * rate))
        step = max(1, total // PORTRAIT_CANDIDATES)
        for index, frame in enumerate(container.decode(stream)):
            if index % step:
                continue
            image = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
            face = _largest_face(classifier, gray)
            if face is not None:
                sharpness, score = score_frame(gray, face)
                if best is None or score > best.score:
                    time_s = float(frame.time) if frame.time is not None else index / rate
                    best = Portrait(image, round(time_s, 3), face, round(sharpness, 1), score)
            on_progress(min(1.0, (index + 1) / total))
    if best is None:
        raise PipelineFailed(
            "No frontal face was found in the footage; film the person facing the camera.",
            code="no_face",
        )
    if best.sharpness < MIN_SHARPNESS:
        raise PipelineFailed(
            f"The sharpest frame of the face is blurred (sharpness {best.sharpness:.0f}, at least "
            f"{MIN_SHARPNESS:.0f} needed); film in focus, with more light and a steady camera.",
            code="too_blurry",
            details={"sharpness": best.sharpness, "minimum": MIN_SHARPNESS},
        )
    return best


# --- Voice ----------------------------------------------------------------------------------------


def read_audio(path: Path, on_progress: Progress) -> npt.NDArray[np.float32]:
    """The first audio track as 16 kHz mono samples in -1..1."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise PipelineFailed("The footage has no sound.", code="no_audio")
        stream = container.streams.audio[0]
        duration = float(container.duration or 0) / av.time_base
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pieces: list[npt.NDArray[np.float32]] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                pieces.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))
            if duration and frame.time is not None:
                on_progress(min(1.0, frame.time / duration))
        for out in resampler.resample(None):
            pieces.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _frames(samples: npt.NDArray[np.float32], size: int, hop: int) -> npt.NDArray[np.float32]:
    count = 1 + (len(samples) - size) // hop
    return np.lib.stride_tricks.as_strided(
        samples, shape=(count, size), strides=(samples.strides[0] * hop, samples.strides[0])
    )


def _pitch_track(
    frames: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per frame: (pitch in Hz, normalised autocorrelation at that period)."""
    size = frames.shape[1]
    min_lag = int(SAMPLE_RATE / PITCH_MAX_HZ)
    max_lag = int(SAMPLE_RATE / PITCH_MIN_HZ)
    fft_size = 1 << (2 * size - 1).bit_length()
    pitches = np.zeros(len(frames))
    strengths = np.zeros(len(frames))
    for start in range(0, len(frames), 2048):  # in blocks: bounded memory for long footage
        block = frames[start : start + 2048].astype(np.float64)
        block = block - block.mean(axis=1, keepdims=True)
        spectrum = np.fft.rfft(block, fft_size)
        acf = np.fft.irfft(spectrum * np.conj(spectrum), fft_size)[:, : max_lag + 2]
        # Normalised cross-correlation of the frame with itself shifted by each lag: ~1 at the
        # period for a periodic sound, whatever the lag (the plain autocorrelation shrinks).
        energy = np.cumsum(block**2, axis=1)  # energy[:, i] = sum of x[0..i]²
        width = max_lag + 2
        head = energy[:, ::-1][:, :width]  # sum of x[0 .. N-1-k]²
        before = np.concatenate([np.zeros((len(block), 1)), energy[:, : width - 1]], axis=1)
        tail = energy[:, -1:] - before  # sum of x[k .. N-1]²
        nccf = acf / np.sqrt(np.maximum(head * tail, 1e-12))
        window = nccf[:, min_lag - 1 : max_lag + 2]
        inner = window[:, 1:-1]
        peak = inner.max(axis=1)
        is_peak = (inner >= window[:, :-2]) & (inner > window[:, 2:])
        # The shortest-lag peak nearly as strong as the best: octave errors go the other way.
        strong = is_peak & (inner >= (0.9 * peak)[:, None])
        lag = np.where(strong.any(axis=1), strong.argmax(axis=1), inner.argmax(axis=1)) + min_lag
        rows = np.arange(len(block))
        left, mid, right = nccf[rows, lag - 1], nccf[rows, lag], nccf[rows, lag + 1]
        bend = left - 2 * mid + right
        offset = np.where(bend < 0, 0.5 * (left - right) / np.where(bend < 0, bend, -1.0), 0.0)
        pitches[start : start + len(block)] = SAMPLE_RATE / (lag + np.clip(offset, -0.5, 0.5))
        strengths[start : start + len(block)] = mid
    return pitches, strengths


def _syllable_peaks(
    level_db: npt.NDArray[np.float64], voiced: npt.NDArray[np.bool_], min_gap: int
) -> int:
    """Count energy peaks that stand out from their neighbours by a dip, at voiced frames."""
    inner = level_db[1:-1]
    maxima = np.flatnonzero((inner >= level_db[:-2]) & (inner > level_db[2:])) + 1
    candidates = [int(i) for i in maxima if voiced[max(0, i - 2) : i + 3].any()]
    kept: list[int] = []
    for index in sorted(candidates, key=lambda i: -level_db[i]):  # strongest first
        if all(abs(index - other) >= min_gap for other in kept):
            kept.append(index)
    kept.sort()
    peaks: list[int] = []
    for index in kept:
        if peaks:
            previous = peaks[-1]
            dip = level_db[previous : index + 1].min()
            if min(level_db[previous], level_db[index]) - dip < SYLLABLE_DIP_DB:
                if level_db[index] > level_db[previous]:
                    peaks[-1] = index  # one syllable: keep its stronger peak
                continue
        peaks.append(index)
    return len(peaks)


def analyse_voice(samples: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Pitch, loudness and speaking rate of recorded speech (16 kHz mono)."""
    size, hop = round(FRAME_SECONDS * SAMPLE_RATE), round(HOP_SECONDS * SAMPLE_RATE)
    if len(samples) < size * 10:
        raise PipelineFailed(
            "The footage's sound is too short to hear the voice.", code="voice_too_short"
        )
    frames = _frames(np.ascontiguousarray(samples, dtype=np.float32), size, hop)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    level_db = 20 * np.log10(np.maximum(rms, 1e-9))
    loud_end = float(np.percentile(level_db, 95))
    speaking = (level_db > loud_end - SPEECH_RANGE_DB) & (level_db > SILENCE_DBFS)
    pitches, strengths = _pitch_track(frames)
    voiced = speaking & (strengths >= VOICING_THRESHOLD)
    voiced_seconds = float(voiced.sum() * HOP_SECONDS)
    if voiced_seconds < MIN_VOICED_SECONDS:
        raise PipelineFailed(
            "No speech was found in the footage's sound; film the person speaking clearly.",
            code="no_speech",
        )
    voiced_pitch = pitches[voiced]
    # A 50 ms moving average of the energy: one bump per syllable nucleus, not per period.
    kernel = np.ones(5) / 5
    smooth_db = 10 * np.log10(np.maximum(np.convolve(rms**2, kernel, mode="same"), 1e-18))
    syllables = _syllable_peaks(smooth_db, voiced, round(SYLLABLE_MIN_GAP_SECONDS / HOP_SECONDS))
    speaking_seconds = float(speaking.sum() * HOP_SECONDS)
    return {
        "pitch_hz": round(float(np.median(voiced_pitch)), 1),
        "pitch_range_hz": [
            round(float(np.percentile(voiced_pitch, 10)), 1),
            round(float(np.percentile(voiced_pitch, 90)), 1),
        ],
        "loudness_dbfs": round(float(10 * np.log10(np.mean(rms[speaking] ** 2))), 1),
        "syllables_per_second": round(syllables / speaking_seconds, 2),
        "speaking_seconds": round(speaking_seconds, 2),
        "voiced_seconds": round(voiced_seconds, 2),
        "analysed_seconds": round(len(samples) / SAMPLE_RATE, 2),
        "method": "nccf-pitch/energy-peaks@16kHz",
    }


def voice_profile(path: Path, on_progress: Progress) -> dict[str, Any]:
    return analyse_voice(read_audio(path, on_progress))


# --- Bundle ---------------------------------------------------------------------------------------


def write_parts(directory: Path, portrait: Portrait, voice: dict[str, Any]) -> None:
    """portrait.png and voice.json (`BUNDLE_PARTS`); the manifest follows once the version number
    is known."""
    directory.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", cv2.cvtColor(portrait.image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    (directory / "portrait.png").write_bytes(png.tobytes())
    (directory / "voice.json").write_text(json.dumps(voice, indent=2, sort_keys=True) + "\n")


def describe_portrait(portrait: Portrait) -> dict[str, Any]:
    """The manifest's account of the portrait: its size, where in the footage, the face box."""
    height, width = portrait.image.shape[:2]
    x, y, w, h = portrait.face
    return {
        "width": width,
        "height": height,
        "time_s": portrait.time_s,
        "face": {"x": x, "y": y, "width": w, "height": h},
        "sharpness": portrait.sharpness,
    }


def write_manifest(
    directory: Path, portrait: dict[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    """manifest.json beside the parts: what the bundle holds, with each file's SHA-256.
    `portrait` is `describe_portrait`'s account."""
    manifest = {
        "format": "ironbowl.avatar-bundle/1",
        **details,
        "files": {
            name: {
                "sha256": artifacts.file_sha256(directory / name),
                "bytes": (directory / name).stat().st_size,
            }
            for name in BUNDLE_PARTS
        },
        "portrait": portrait,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
