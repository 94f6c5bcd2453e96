"""Real media files for the upload, validation and build tests, made with PyAV.

The picture is a real photograph of a face (scikit-image's `astronaut`, public domain), centred on
a dark background, so that OpenCV's frontal-face cascade really finds it. The sound is a voice-like
signal of known properties: a harmonic-rich tone at 150 Hz whose loudness swells four times a
second, like syllables; the build must measure a pitch near 150 Hz and about 4 syllables a second.
The still picture is encoded with libx264 `ultrafast` at a low frame rate, so the valid 2-minute
720p file costs a few seconds once; files are cached under DATA_DIR/test-media by their settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from django.conf import settings

from avatars import uploads as upload_services
from avatars.models import Upload
from inference.worker.artifacts import file_sha256
from tests.avatars.factories import UploadFactory

PITCH_HZ = 150.0
SYLLABLES_PER_SECOND = 4.0
AUDIO_RATE = 16_000


@dataclasses.dataclass(frozen=True)
class Clip:
    """What to put in a test file."""

    width: int = 1280
    height: int = 720
    fps: int = 15
    seconds: float = 120.0
    audio: bool = True
    face: bool = True
    blur: int = 0  # Gaussian kernel size: a blurred picture
    container: str = "mp4"

    @property
    def name(self) -> str:
        key = hashlib.sha256(repr(dataclasses.astuple(self)).encode()).hexdigest()[:12]
        return f"{self.width}x{self.height}-{self.fps}fps-{self.seconds:g}s-{key}.{self.container}"


VALID_FOOTAGE = Clip()
# For tests about something other than the footage itself: a few small frames, face and voice.
SHORT_FOOTAGE = Clip(width=640, height=360, fps=4, seconds=4)
NO_FACE = dataclasses.replace(SHORT_FOOTAGE, face=False)
BLURRED = dataclasses.replace(SHORT_FOOTAGE, blur=31)


def picture(clip: Clip) -> np.ndarray:
    """The frame: the astronaut's portrait, as tall as the frame, or an even grey gradient."""
    canvas = np.zeros((clip.height, clip.width, 3), np.uint8)
    if not clip.face:
        canvas[:] = np.linspace(40, 200, clip.width, dtype=np.uint8)[None, :, None]
        return canvas
    import skimage.data  # a test dependency: the photograph ships inside scikit-image

    side = min(clip.width, clip.height)
    photo = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    top, left = (clip.height - side) // 2, (clip.width - side) // 2
    canvas[top : top + side, left : left + side] = photo
    if clip.blur:
        canvas = cv2.GaussianBlur(canvas, (clip.blur, clip.blur), 0)
    return canvas


def voice(seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """Mono float32 samples: 150 Hz with six overtones, swelling 4 times a second."""
    t = np.arange(int(seconds * rate)) / rate
    tone = sum((0.6 / k) * np.sin(2 * np.pi * PITCH_HZ * k * t) for k in range(1, 8))
    swell = 0.1 + 0.9 * np.maximum(0.0, np.sin(2 * np.pi * SYLLABLES_PER_SECOND * t)) ** 2
    return (0.3 * tone * swell).astype(np.float32)


def _write(path: Path, clip: Clip) -> None:
    codec = {"mp4": "libx264", "webm": "libvpx-vp9"}[clip.container]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=clip.fps)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "g": str(clip.fps * 2)}
        audio = None
        if clip.audio:
            audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        frame = av.VideoFrame.from_ndarray(picture(clip), format="rgb24")
        for index in range(round(clip.seconds * clip.fps)):
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            samples = voice(clip.seconds)
            for start in range(0, len(samples), 1024):
                piece = av.AudioFrame.from_ndarray(
                    samples[None, start : start + 1024], format="flt", layout="mono"
                )
                piece.sample_rate, piece.pts = AUDIO_RATE, start
                container.mux(audio.encode(piece))
            container.mux(audio.encode())


def media_file(clip: Clip) -> Path:
    """The file for `clip`, made once and kept under the tests' DATA_DIR."""
    folder = Path(settings.DATA_DIR) / "test-media"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / clip.name
    if not path.exists():
        partial = folder / f".{uuid.uuid4().hex}-{clip.name}"
        try:
            _write(partial, clip)
            os.replace(partial, path)  # atomic: a concurrent run never reads half a file
        finally:
            partial.unlink(missing_ok=True)
    return path


def audio_only(seconds: float = 3.0) -> Path:
    """An M4A with the voice and no picture (a consent clip recorded as sound only)."""
    folder = Path(settings.DATA_DIR) / "test-media"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"voice-{seconds:g}s.m4a"
    if not path.exists():
        partial = folder / f".{uuid.uuid4().hex}.m4a"
        with av.open(str(partial), "w", format="mp4") as container:
            audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
            samples = voice(seconds)
            for start in range(0, len(samples), 1024):
                piece = av.AudioFrame.from_ndarray(
                    samples[None, start : start + 1024], format="flt", layout="mono"
                )
                piece.sample_rate, piece.pts = AUDIO_RATE, start
                container.mux(audio.encode(piece))
            container.mux(audio.encode())
        os.replace(partial, path)
    return path


def sha256_of(path: Path) -> str:
    return file_sha256(path)


def stored_upload(organization: Any, source: Path, **fields: Any) -> Upload:
    """A complete upload whose bytes are `source`, stored where the service keeps them.

    Skips the chunked transfer and the content checks (tested on their own): for tests about
    what comes after an upload.
    """
    upload = UploadFactory(
        organization=organization,
        filename=source.name,
        size=source.stat().st_size,
        received=source.stat().st_size,
        sha256=sha256_of(source),
        **fields,
    )
    target = upload_services.path_of(upload)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return upload


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """Uploads and bundles of one test in a folder of its own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)
