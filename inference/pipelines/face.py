"""Where the face, mouth and eyes are in a portrait, so the renderer knows what to move.

OpenCV's bundled Haar cascades (frontal face, eyes) find the face and eyes; the mouth is taken as
the centred lower third of the face box, which is where a frontal cascade puts it. An avatar
bundle may carry the boxes instead (`FaceLayout.from_json`), e.g. hand-corrected ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from inference.pipelines.types import StageError

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

DETECTION_SIDE = 640  # portraits are scaled down to this long side to look for faces
MIN_FACE_SHARE = 0.08  # of the short side: a smaller face is too small to animate
MOUTH_WIDTH_SHARE = 0.5  # of the face box width
# Where a frontal Haar box puts the eyes when the eye cascade finds no pair (shares of the box).
EYE_CENTRE_Y = 0.4
EYE_CENTRE_X = (0.3, 0.7)
EYE_SIDE = 0.25

FACE_CASCADE = "haarcascade_frontalface_default.xml"
_EYE_CASCADE = "haarcascade_eye.xml"


@dataclasses.dataclass(frozen=True)
class FaceLayout:
    """Boxes in the portrait's pixels. `left_eye` is the eye on the image's left (the person's
    right eye)."""

    face: Box
    mouth: Box
    left_eye: Box
    right_eye: Box

    def to_json(self) -> dict[str, list[int]]:
        """A JSON-ready dict, for an avatar bundle's manifest."""
        return {field.name: list(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Any) -> FaceLayout:
        """The layout a bundle carries; `StageError` when a box is missing or malformed."""
        if not isinstance(data, dict):
            raise StageError("the face layout must be an object with face, mouth and eye boxes")
        boxes: dict[str, Box] = {}
        for field in dataclasses.fields(cls):
            value = data.get(field.name)
            if (
                not isinstance(value, list | tuple)
                or len(value) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                or value[2] <= 0
                or value[3] <= 0
            ):
                raise StageError(
                    f"the face layout's {field.name!r} must be [x, y, width, height] "
                    "in whole pixels with a positive width and height"
                )
            boxes[field.name] = (value[0], value[1], value[2], value[3])
        return cls(**boxes)

    def mapped(self, offset_x: float, offset_y: float, scale: float) -> FaceLayout:
        """The same boxes after cropping at (offset_x, offset_y) and scaling by `scale`."""

        def move(box: Box) -> Box:
            x, y, w, h = box
            return (
                round((x - offset_x) * scale),
                round((y - offset_y) * scale),
                max(1, round(w * scale)),
                max(1, round(h * scale)),
            )

        return FaceLayout(
            move(self.face), move(self.mouth), move(self.left_eye), move(self.right_eye)
        )


def cascade(name: str) -> cv2.CascadeClassifier:
    """One of the Haar cascades OpenCV ships (its data folder), loaded."""
    classifier = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))  # type: ignore[attr-defined]
    if classifier.empty():
        raise RuntimeError(f"OpenCV's {name} could not be loaded")
    return classifier


def check_portrait(portrait: np.ndarray) -> npt.NDArray[np.uint8]:
    """The portrait as an RGB uint8 HxWx3 array (an alpha channel is dropped)."""
    if portrait.dtype != np.uint8 or portrait.ndim != 3 or portrait.shape[2] not in (3, 4):
        raise StageError(
            "the portrait must be an RGB image (height × width × 3, 8 bits a channel); "
            f"got shape {portrait.shape} of {portrait.dtype}"
        )
    if min(portrait.shape[:2]) < 64:
        raise StageError("the portrait is too small; use a photo at least 256 pixels high")
    return np.ascontiguousarray(portrait[:, :, :3], dtype=np.uint8)


def locate_face(portrait: np.ndarray) -> FaceLayout:
    """The largest frontal face and its mouth and eyes; `StageError` when there is no face."""
    image = check_portrait(portrait)
    height, width = image.shape[:2]
    scale = min(1.0, DETECTION_SIDE / max(height, width))
    if scale < 1:
        size = (round(width * scale), round(height * scale))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    gray = np.asarray(cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)), dtype=np.uint8)
    min_side = max(24, round(min(gray.shape) * MIN_FACE_SHARE))
    faces = cascade(FACE_CASCADE).detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    if len(faces) == 0:
        raise StageError(
            "no face found in the portrait; use a frontal photo of one person, face unobstructed "
            "and well lit, at least a tenth of the picture's height"
        )
    fx, fy, fw, fh = (int(v) for v in max(faces, key=lambda face: int(face[2]) * int(face[3])))
    left, right = _eyes(gray[fy : fy + fh, fx : fx + fw])
    face: Box = (fx, fy, fw, fh)
    mouth_w = round(fw * MOUTH_WIDTH_SHARE)
    mouth: Box = (fx + (fw - mouth_w) // 2, fy + round(fh * 2 / 3), mouth_w, round(fh / 3))
    layout = FaceLayout(
        face=face,
        mouth=mouth,
        left_eye=(fx + left[0], fy + left[1], left[2], left[3]),
        right_eye=(fx + right[0], fy + right[1], right[2], right[3]),
    )
    return layout.mapped(0, 0, 1 / scale) if scale < 1 else layout


def _eyes(face: npt.NDArray[np.uint8]) -> tuple[Box, Box]:
    """Eye boxes inside the face crop: the largest detection in each upper half, or where a
    frontal face box usually has them."""
    fh, fw = face.shape
    side = max(8, fw // 10)
    found = cascade(_EYE_CASCADE).detectMultiScale(
        face[: round(fh * 0.6)], scaleFactor=1.1, minNeighbors=3, minSize=(side, side)
    )
    best: list[Box | None] = [None, None]
    for x, y, w, h in (tuple(int(v) for v in eye) for eye in found):
        half = 0 if x + w / 2 < fw / 2 else 1
        current = best[half]
        if current is None or w * h > current[2] * current[3]:
            best[half] = (x, y, w, h)
    eye_side = round(fw * EYE_SIDE)
    guessed = [
        (
            round(fw * centre_x - eye_side / 2),
            round(fh * EYE_CENTRE_Y - eye_side / 2),
            eye_side,
            eye_side,
        )
        for centre_x in EYE_CENTRE_X
    ]
    if best[0] is None or best[1] is None:  # one eye alone may be a nostril or an eyebrow
        return guessed[0], guessed[1]
    return best[0], best[1]
