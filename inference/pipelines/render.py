"""The render pipeline: a script becomes an MP4 of the avatar speaking it.

Spec: `{"text": str, "language": "zh" | "yue" | "en", "inputs": {"portrait": {"sha256": str,
"bytes": int, ...}}, "ai_label": bool, "size": int, "fps": int, "seed": int}`. The portrait is the
workload's input `portrait` (the avatar bundle's image), which the worker fetches from the control
plane — a GPU pod shares no disk with it — and keeps by its SHA-256 for the next workload;
`"portrait": "reference"` uses the public-domain portrait that ships with scikit-image instead
(demo and tests). A path on a disk (`portrait_path`) is not read. Writes
`<IRONBOWL_OUTPUT_DIR>/<workload id>.mp4` and, on a worker connected to the control plane,
uploads it as the workload's output of that name (the result's `sha256` says which file).

Speech and mouth track come first (fast), then frames are rendered in chunks and streamed into
the encoder, so memory stays flat, progress is reported per chunk and a cancel stops between
chunks. Models load once per worker process and are shared by its slots.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inference import contracts
from inference.pipelines import models
from inference.pipelines.types import SUPPORTED_LANGUAGES, StageError
from inference.worker import artifacts
from inference.worker.pipelines import PipelineFailed, WorkloadContext

ENV_OUTPUT_DIR = "IRONBOWL_OUTPUT_DIR"
ENV_TORCH_THREADS = "IRONBOWL_TORCH_THREADS"
CHUNK_FRAMES = 50
MAX_SIZE = 1024
REFERENCE = contracts.REFERENCE_PORTRAIT
PORTRAIT_INPUT = contracts.PORTRAIT_INPUT
PORTRAIT_MAX_BYTES = 32 * 1024 * 1024
PORTRAIT_CACHE = "ironbowl-portraits"  # under the worker's temporary folder
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class PortraitInput:
    """The workload's input `portrait`, as its spec describes it."""

    sha256: str
    size: int


# "reference", or the portrait the control plane sends.
Portrait = str | PortraitInput


def run(ctx: WorkloadContext) -> dict[str, Any]:
    try:
        return _render(ctx)
    except StageError as error:
        raise PipelineFailed(str(error)) from error


def _render(ctx: WorkloadContext) -> dict[str, Any]:
    import torch

    from inference.pipelines.encode import encode_mp4
    from inference.pipelines.label import burn_label
    from inference.pipelines.visemes import mouth_track

    spec = parse_spec(ctx.spec)
    output_dir = Path(os.environ.get(ENV_OUTPUT_DIR) or "renders")
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get(ENV_TORCH_THREADS, "1")))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.monotonic()

    speech = speech_engine().synthesize(spec["text"], spec["language"])
    ctx.check_stopped()
    openness = mouth_track(speech, spec["fps"])
    renderer = portrait_renderer(portrait_file(ctx, spec["portrait"]), spec["size"], device)
    total = len(openness)

    def frames() -> Iterator[np.ndarray]:
        for first in range(0, total, CHUNK_FRAMES):
            ctx.check_stopped()
            chunk = renderer.render(
                openness[first : first + CHUNK_FRAMES], start_frame=first, seed=spec["seed"]
            )
            if spec["ai_label"]:
                chunk = burn_label(chunk)
            yield from chunk
            ctx.progress(min(first + CHUNK_FRAMES, total) / total, "rendering")

    path = output_dir / f"{ctx.assignment.workload_id}.mp4"
    info = encode_mp4(
        path, frames(), fps=spec["fps"], audio=speech.samples, sample_rate=speech.sample_rate
    )
    delivered: dict[str, Any] = {}
    if ctx.control is not None:
        # A GPU pod shares no disk with the control plane: the MP4 is uploaded as the workload's
        # output of the same name (its SHA-256 in the result says which file is held there).
        from inference.worker.artifacts import deliver_output

        delivered = {"sha256": deliver_output(ctx, path.name, path)["sha256"]}
    elapsed = time.monotonic() - started
    ctx.usage(contracts.Usage(rendered_seconds=info.duration_s, gpu_seconds=elapsed * ctx.gpus))
    return {
        **delivered,
        "video": path.name,
        "duration_s": round(info.duration_s, 3),
        "frames": info.video_frames,
        "size_bytes": info.size_bytes,
        "language": spec["language"],
        "render_seconds": round(elapsed, 3),
        "device": device,
    }


def parse_spec(spec: dict[str, Any]) -> dict[str, Any]:
    text = spec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise StageError("The script is empty: give the text to speak in `text`.")
    language = spec.get("language", "zh")
    if language not in SUPPORTED_LANGUAGES:
        raise StageError(
            f"Language {language!r} is not supported; use one of {', '.join(SUPPORTED_LANGUAGES)}."
        )
    size, fps, seed = spec.get("size", 512), spec.get("fps", 25), spec.get("seed", 0)
    for name, value, low, high in (("size", size, 64, MAX_SIZE), ("fps", fps, 1, 60)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise StageError(f"`{name}` must be a whole number from {low} to {high}.")
    if size % 2:
        raise StageError("`size` must be even (H.264 needs even dimensions).")
    return {
        "text": text,
        "language": language,
        "size": size,
        "fps": fps,
        "seed": int(seed) if isinstance(seed, int) else 0,
        "ai_label": bool(spec.get("ai_label", True)),
        "portrait": parse_portrait(spec),
    }


def parse_portrait(spec: dict[str, Any]) -> Portrait:
    """The spec's portrait: the reference one, or the input `portrait` with its SHA-256 and size.
    A path is refused: the worker has no disk in common with the control plane, and one that had
    would read whatever file a spec named."""
    if spec.get("portrait") == REFERENCE:
        return REFERENCE
    if "portrait_path" in spec:
        raise StageError(
            "`portrait_path` is not read: a worker reads no file a spec names; name the portrait "
            "as the input `inputs.portrait`."
        )
    inputs = spec.get("inputs")
    entry = inputs.get(PORTRAIT_INPUT) if isinstance(inputs, dict) else None
    if entry is None:
        raise StageError("No portrait: the avatar has no portrait image to animate.")
    sha256 = entry.get("sha256") if isinstance(entry, dict) else None
    size = entry.get("bytes") if isinstance(entry, dict) else None
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise StageError("`inputs.portrait.sha256` must be the portrait's SHA-256, 64 hex digits.")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= PORTRAIT_MAX_BYTES:
        raise StageError(
            f"`inputs.portrait.bytes` must be the portrait's size, 1 to {PORTRAIT_MAX_BYTES}."
        )
    return PortraitInput(sha256, size)


def portrait_file(ctx: WorkloadContext, portrait: Portrait) -> str:
    """Where the portrait is on this worker: "reference", or the input fetched from the control
    plane into the worker's temporary folder, named by its SHA-256 so that the next workload with
    it (and the renderer made from it) finds it there. A copy that no longer matches its name is
    fetched again."""
    if not isinstance(portrait, PortraitInput):
        return portrait
    folder = Path(tempfile.gettempdir()) / PORTRAIT_CACHE
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / portrait.sha256
    if kept.is_file() and artifacts.file_sha256(kept) == portrait.sha256:
        return str(kept)
    # Fetched under a name of its own: slots fetching the same portrait at once do not collide.
    arriving = folder / f".{uuid.uuid4().hex}.arriving"
    try:
        artifacts.fetch_input(
            ctx, PORTRAIT_INPUT, arriving, sha256=portrait.sha256, size=portrait.size
        )
        arriving.replace(kept)
    finally:
        arriving.unlink(missing_ok=True)
    return str(kept)


def speech_engine() -> Any:
    import inference.pipelines.reference  # noqa: F401 - registers the reference backends

    return models.shared(("tts", "espeak"), lambda: models.create("tts", "espeak"))


def portrait_renderer(portrait: str, size: int, device: str) -> Any:
    import inference.pipelines.reference  # noqa: F401 - registers the reference backends

    def load() -> Any:
        pixels = _portrait_pixels(portrait)
        return models.create("renderer", "portrait", portrait=pixels, size=size, device=device)

    return models.shared(("renderer", portrait, size, device), load)


def _portrait_pixels(portrait: str) -> np.ndarray:
    if portrait == REFERENCE:
        from skimage import data

        return np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    import cv2

    image = cv2.imread(portrait, cv2.IMREAD_COLOR)
    if image is None:
        raise StageError(f"The portrait {portrait} is not an image this worker can read.")
    return np.ascontiguousarray(image[:, :, ::-1])
