"""The visible "AI-generated" badge burnt into every frame (live-commerce rules require one).

A semi-transparent dark badge with white text in a corner. OpenCV's Hershey fonts have ASCII
glyphs only, and the worker image carries no font packages, so the text must be ASCII: a Chinese
label ("AI生成") needs a font file and a text renderer, which this module does not have.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import numpy.typing as npt

from inference.pipelines.types import StageError

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
BADGE_OPACITY = 0.6  # of the dark badge; the text is opaque
MARGIN_SHARE = 0.025  # of the frame's short side, between the badge and the frame's edges
TEXT_HEIGHT_SHARE = 0.03  # of the frame's short side: cap height of the text


def burn_label(
    frames: np.ndarray, text: str = "AI-generated", corner: str = "bottom-right"
) -> npt.NDArray[np.uint8]:
    """A copy of RGB uint8 frames (n, h, w, 3) or one frame (h, w, 3) with the badge burnt in;
    only the badge's rectangle differs from the input."""
    if corner not in CORNERS:
        raise StageError(f"the label corner must be one of {', '.join(CORNERS)}; got {corner!r}")
    if not text or not text.isascii() or not text.isprintable():
        raise StageError(
            "the label text must be printable ASCII (the frame fonts have no other glyphs), "
            f"e.g. 'AI-generated'; got {text!r}"
        )
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise StageError(f"frames must be RGB uint8 (n, h, w, 3); got {frames.shape}")
    height, width = frames.shape[-3:-1]
    x, y, alpha, ink = _badge(height, width, text, corner)
    out = frames.copy()
    h, w = alpha.shape[:2]
    region = out[..., y : y + h, x : x + w, :].astype(np.float32)
    out[..., y : y + h, x : x + w, :] = np.rint(region * (1 - alpha) + ink * alpha).astype(np.uint8)
    return out


@functools.lru_cache(maxsize=16)
def _badge(
    height: int, width: int, text: str, corner: str
) -> tuple[int, int, npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Where the badge goes, its per-pixel opacity (h, w, 1) and colour (h, w, 3), drawn once for
    each frame size."""
    short = min(height, width)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, unit_height), _ = cv2.getTextSize("A", font, 1.0, 1)
    scale = max(0.3, TEXT_HEIGHT_SHARE * short / unit_height)
    thickness = max(1, round(scale * 1.5))
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = max(2, round(text_h * 0.5))
    badge_w = min(width, text_w + 2 * pad)
    badge_h = min(height, text_h + baseline + 2 * pad)
    margin = round(MARGIN_SHARE * short)
    x = margin if corner.endswith("left") else max(0, width - margin - badge_w)
    y = margin if corner.startswith("top") else max(0, height - margin - badge_h)
    mask = np.zeros((badge_h, badge_w), dtype=np.uint8)
    cv2.putText(mask, text, (pad, pad + text_h), font, scale, 255, thickness, cv2.LINE_AA)
    text_alpha = (mask.astype(np.float32) / 255)[:, :, None]
    alpha = BADGE_OPACITY + (1 - BADGE_OPACITY) * text_alpha
    # Over the dark badge (black at BADGE_OPACITY), white text: the colour where alpha applies.
    ink = 255 * text_alpha / alpha * np.ones((1, 1, 3), dtype=np.float32)
    return x, y, alpha.astype(np.float32), ink.astype(np.float32)
