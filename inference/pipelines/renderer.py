"""Frames of a talking portrait: the mouth follows an openness track, eyes blink, the head sways.

No lip-sync model ships in any package we may use (FIELD_NOTES.md), so the animation is a
hand-made warp, all in torch and batched over frames:

- mouth: a `grid_sample` warp of a crop around the face; the lower lip and jaw move down with
  openness and the upper lip a little up; the band the lips open onto is the lip line itself,
  stretched and darkened, so the mouth's inside shows. Every weight falls off smoothly, so no seam
  shows where the crop is pasted back;
- blinks: every 3–5 s (drawn from the seed), 150 ms long, the eye is squeezed towards its lower lid
  so the skin above covers it;
- idle motion: a slow, small sway of the whole picture (translation ±1–2 %, rotation under 1°)
  about the neck. It and the blinks are functions of the absolute frame number, so a live stream
  rendered in chunks (`start_frame`) joins without a jump.

Construct one `PortraitRenderer` per (portrait, size, device): the portrait, the warp profiles and
the base grids are computed once and kept on the device.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from inference.pipelines.face import Box, FaceLayout, check_portrait, locate_face
from inference.pipelines.types import StageError

FRAME_RATE = 25
BATCH_FRAMES = 16  # frames warped at once: bounds memory (~3 MB a frame at 512×512 in float32)

FACE_SHARE_MIN = 1 / 6  # the face is at least this share of the frame's side after cropping
FACE_CENTRE_Y = 0.42  # where the face's centre sits in the frame, from the top (head room above)

# Mouth, in shares of the mouth box's height (`mh`) and width (`mw`).
LIP_LINE = 0.45  # the lips meet this far down the mouth box
MOUTH_DROP = 0.35  # how far the lower lip moves down at openness 1
UPPER_LIP_LIFT = 0.15  # of MOUTH_DROP: how far the upper lip moves up
LIP_RAMP = (
    0.5  # half-width of the band that stretches open; ≥ ~1.1 × drop keeps the warp folding-free
)
JAW_FADE = (0.6, 2.0)  # below the lip line the jaw's motion fades out between these
MOUTH_SPREAD = 0.75  # horizontal half-width of the motion, corners move a quarter as much
MOUTH_SHADE = 0.45  # darkening of the mouth's inside when fully open
MOUTH_SHADE_BAND = 0.12  # the source band (around the lip line) that is darkened

# Blinks.
BLINK_PERIOD_S = 4.0  # one blink in each period, anywhere in its first second: 3–5 s apart
BLINK_CLOSING_S, BLINK_CLOSED_S, BLINK_OPENING_S = 0.05, 0.04, 0.06  # 150 ms; ≥ 1 frame closed
EYE_LID_LINE = 0.62  # of the eye box's height: the lower lid, where the eye closes to
EYE_SQUEEZE = 0.3  # of the eye box's height: how far the skin above slides down
EYE_SQUEEZE_SHARPNESS = 0.05  # of the eye box's height: the closed eye's remaining slit
EYE_FADE = 0.5  # of the eye box's height: vertical spread of the motion
EYE_SPREAD = 0.5  # of the eye box's width: horizontal spread of the motion
EYE_SHADE = 0.2  # darkening of the lash line of a closed eye

# Idle motion: sums of two slow sines each, periods in seconds.
SWAY_X = (0.012, (7.3, 3.1))  # share of the frame side
SWAY_Y = (0.008, (6.1, 2.7))
SWAY_ROTATION_DEG = (0.8, (5.9, 2.3))


def _smoothstep(edge0: float, edge1: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def blink_closure(frames: npt.NDArray[np.int64], *, seed: int, fps: int = FRAME_RATE) -> np.ndarray:
    """How closed the eyes are (0 open … 1 closed) at each absolute frame number.

    Each `BLINK_PERIOD_S` window holds one blink whose start is drawn from (seed, window), so the
    answer for a frame does not depend on which chunk it is rendered in.
    """
    times = frames.astype(np.float64) / fps
    closure = np.zeros(len(times))
    if len(times) == 0:
        return closure
    first = max(0, math.floor(times.min() / BLINK_PERIOD_S) - 1)
    last = math.floor(times.max() / BLINK_PERIOD_S)
    for window in range(first, last + 1):
        rng = np.random.default_rng([seed & 0xFFFFFFFF, window])
        start = window * BLINK_PERIOD_S + float(rng.uniform(0.0, 1.0))
        tau = times - start
        closing = np.clip(tau / BLINK_CLOSING_S, 0.0, 1.0)
        opening = np.clip(
            (BLINK_CLOSING_S + BLINK_CLOSED_S + BLINK_OPENING_S - tau) / BLINK_OPENING_S, 0.0, 1.0
        )
        shape = np.minimum(closing, opening)
        closure = np.maximum(closure, shape * shape * (3.0 - 2.0 * shape))
    return closure


def sway(
    frames: npt.NDArray[np.int64], *, seed: int, fps: int = FRAME_RATE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Idle motion at each absolute frame: (x shift, y shift) as shares of the side, rotation in
    radians. Smooth in time; the phases come from the seed so avatars side by side differ."""
    times = frames.astype(np.float64) / fps
    phases = np.random.default_rng([seed & 0xFFFFFFFF, 0x5A7]).uniform(0, 2 * math.pi, size=6)

    def wave(amplitude: float, periods: tuple[float, float], phase: int) -> np.ndarray:
        slow, quick = periods
        return amplitude * np.asarray(
            0.6 * np.sin(2 * math.pi * times / slow + phases[phase])
            + 0.4 * np.sin(2 * math.pi * times / quick + phases[phase + 1])
        )

    return (
        wave(SWAY_X[0], SWAY_X[1], 0),
        wave(SWAY_Y[0], SWAY_Y[1], 2),
        np.radians(wave(SWAY_ROTATION_DEG[0], SWAY_ROTATION_DEG[1], 4)),
    )


def frame_portrait(
    portrait: npt.NDArray[np.uint8], layout: FaceLayout, size: int
) -> tuple[npt.NDArray[np.uint8], FaceLayout]:
    """A size×size picture around the face, and the layout in its pixels.

    A square of the portrait's short side (smaller when the face is tiny, so the face is at least
    `FACE_SHARE_MIN` of the frame), with the face centred across and a little above the middle.
    """
    height, width = portrait.shape[:2]
    fx, fy, fw, fh = layout.face
    side = min(height, width, round(max(fw, fh) / FACE_SHARE_MIN))
    left = min(max(0, round(fx + fw / 2 - side / 2)), width - side)
    top = min(max(0, round(fy + fh / 2 - side * FACE_CENTRE_Y)), height - side)
    crop = portrait[top : top + side, left : left + side]
    scale = size / side
    if side != size:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        crop = np.asarray(
            cv2.resize(crop, (size, size), interpolation=interpolation), dtype=np.uint8
        )
    return np.ascontiguousarray(crop), layout.mapped(left, top, scale)


class PortraitRenderer:
    """Animates one portrait at one size on one device; `render` turns an openness track (one
    value a frame, 0 closed … 1 open) into RGB frames."""

    def __init__(
        self,
        portrait: np.ndarray,
        *,
        size: int = 512,
        device: str | torch.device = "cpu",
        layout: FaceLayout | None = None,
        half: bool | None = None,
        fps: int = FRAME_RATE,
        head_motion: bool = True,
    ) -> None:
        """`layout` is in the portrait's pixels (found with `locate_face` when not given); `half`
        defaults to half precision on CUDA and full precision elsewhere; `head_motion=False`
        keeps the head still (for comparisons)."""
        if size < 64:
            raise StageError("the frame size must be at least 64 pixels")
        image = check_portrait(portrait)
        found = layout if layout is not None else locate_face(image)
        self.device = torch.device(device)
        self.half = self.device.type == "cuda" if half is None else half
        if self.half and self.device.type != "cuda":
            raise ValueError("half precision is for CUDA devices only")
        self.size = size
        self.fps = fps
        self.head_motion = head_motion
        self.portrait, self.layout = frame_portrait(image, found, size)
        self._dtype = torch.float16 if self.half else torch.float32
        with torch.inference_mode():
            self._prepare()

    def _prepare(self) -> None:
        size = self.size
        fx, fy, fw, fh = self.layout.face
        boxes = (self.layout.face, self.layout.mouth, self.layout.left_eye, self.layout.right_eye)
        # The region that moves: the face, widened for the jaw and eyelids, inside the frame.
        x0 = max(0, min(round(fx - 0.25 * fw), *(b[0] - b[2] // 2 for b in boxes[1:])))
        x1 = min(size, max(round(fx + 1.25 * fw), *(b[0] + b[2] * 3 // 2 for b in boxes[1:])))
        y0 = max(0, min(round(fy - 0.15 * fh), *(b[1] - b[3] for b in boxes[1:])))
        y1 = min(size, max(round(fy + 1.6 * fh), *(b[1] + b[3] * 3 for b in boxes[1:])))
        if x1 - x0 < 4 or y1 - y0 < 4:
            raise StageError("the face is outside the picture; check the face layout")
        self._region = (x0, y0, x1, y1)
        xs = torch.arange(x0, x1, dtype=torch.float32, device=self.device) + 0.5
        ys = torch.arange(y0, y1, dtype=torch.float32, device=self.device) + 0.5
        self._ys = ys[:, None].expand(len(ys), len(xs))
        # Base sampling grid of the region, in grid_sample's coordinates of the whole frame.
        self._grid_x = (2 * xs / size - 1)[None, :].expand(len(ys), len(xs))
        self._grid_y = 2 * self._ys / size - 1

        self._mouth_field, self._mouth_spread, self._lip_line = self._mouth(xs, ys)
        self._eye_field = torch.zeros_like(self._ys)
        self._eye_shade = torch.zeros_like(self._ys)
        for eye in (self.layout.left_eye, self.layout.right_eye):
            field, shade = self._eye(eye, xs, ys)
            self._eye_field += field
            self._eye_shade += shade

        picture = torch.from_numpy(self.portrait).to(self.device)
        self._image = picture.permute(2, 0, 1)[None].to(self._dtype).contiguous()
        pivot_x = (fx + fw / 2) / size * 2 - 1  # the neck: the head sways about it
        pivot_y = min(size, fy + 1.3 * fh) / size * 2 - 1
        self._pivot = (pivot_x, pivot_y)

    def _mouth(
        self, xs: torch.Tensor, ys: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Downward displacement (pixels, at openness 1) of each region pixel, the horizontal
        weight, and the lip line's row."""
        mx, my, mw, mh = self.layout.mouth
        lip_line = my + LIP_LINE * mh
        ramp = LIP_RAMP * mh
        t = (ys - lip_line)[:, None]
        opening = _smoothstep(-ramp, ramp, t)
        lower = opening * (1 - _smoothstep(JAW_FADE[0] * mh, JAW_FADE[1] * mh, t))
        upper = _smoothstep(-ramp - 0.3 * mh, -ramp, t) * (1 - opening)
        across = ((xs - (mx + mw / 2)).abs() / (MOUTH_SPREAD * mw)).clamp(max=1.0)
        spread = torch.cos(across * (math.pi / 2))[None, :] ** 2
        field = MOUTH_DROP * mh * (lower - UPPER_LIP_LIFT * upper) * spread
        return field, spread.expand_as(field), lip_line

    def _eye(
        self, eye: Box, xs: torch.Tensor, ys: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Displacement away from the lid line (pixels, fully closed) and lash-line shading."""
        ex, ey, ew, eh = eye
        t = (ys - (ey + EYE_LID_LINE * eh))[:, None]
        across = torch.exp(-(((xs - (ex + ew / 2)) / (EYE_SPREAD * ew)) ** 4))[None, :]
        fade = torch.exp(-0.5 * (t / (EYE_FADE * eh)) ** 2)
        slit = EYE_SQUEEZE_SHARPNESS * eh
        field = EYE_SQUEEZE * eh * torch.tanh(t / slit) * fade * across
        shade = EYE_SHADE * torch.exp(-((t / (1.5 * slit)) ** 2)) * across
        return field, shade

    def render(self, openness: np.ndarray, *, start_frame: int = 0, seed: int = 0) -> np.ndarray:
        """uint8 frames (n, size, size, 3) for openness values (n,), the first being frame
        number `start_frame` of the stream: blinks and sway depend on it and on `seed`."""
        track = np.asarray(openness, dtype=np.float64)
        if track.ndim != 1 or not np.isfinite(track).all():
            raise StageError("the mouth track must be one finite openness value per frame")
        if start_frame < 0:
            raise ValueError("start_frame must not be negative")
        numbers = np.arange(start_frame, start_frame + len(track), dtype=np.int64)
        closure = blink_closure(numbers, seed=seed, fps=self.fps)
        shift_x, shift_y, rotation = sway(numbers, seed=seed, fps=self.fps)
        out = np.empty((len(track), self.size, self.size, 3), dtype=np.uint8)
        with torch.inference_mode():
            for first in range(0, len(track), BATCH_FRAMES):
                part = slice(first, first + BATCH_FRAMES)
                frames = self._animate_face(np.clip(track[part], 0.0, 1.0), closure[part])
                if self.head_motion:
                    frames = self._sway(frames, shift_x[part], shift_y[part], rotation[part])
                pixels = frames.round_().clamp_(0, 255).to(torch.uint8)
                out[part] = pixels.permute(0, 2, 3, 1).cpu().numpy()
        return out

    def _animate_face(self, openness: np.ndarray, closure: np.ndarray) -> torch.Tensor:
        """Whole frames (n, 3, size, size) in the working dtype, with the face region warped."""
        n = len(openness)
        o = torch.from_numpy(openness).to(self.device, torch.float32)[:, None, None]
        c = torch.from_numpy(closure).to(self.device, torch.float32)[:, None, None]
        shift = c * self._eye_field - o * self._mouth_field  # source row minus output row, pixels
        source_y = self._ys + shift
        grid = torch.stack(
            (self._grid_x.expand_as(shift), self._grid_y + shift * (2 / self.size)), dim=-1
        )
        inside = torch.exp(
            -(((source_y - self._lip_line) / (MOUTH_SHADE_BAND * self.layout.mouth[3])) ** 2)
        )
        shade = (1 - MOUTH_SHADE * o * self._mouth_spread * inside) * (1 - c * self._eye_shade)
        image = self._image.expand(n, -1, -1, -1)
        face = F.grid_sample(
            image, grid.to(self._dtype), mode="bilinear", padding_mode="border", align_corners=False
        )
        x0, y0, x1, y1 = self._region
        frames = image.clone()
        frames[:, :, y0:y1, x0:x1] = face * shade[:, None].to(self._dtype)
        return frames

    def _sway(
        self, frames: torch.Tensor, shift_x: np.ndarray, shift_y: np.ndarray, rotation: np.ndarray
    ) -> torch.Tensor:
        """The whole picture turned and shifted a little about the neck."""
        cos, sin = np.cos(rotation), np.sin(rotation)
        px, py = self._pivot
        theta = np.empty((len(rotation), 2, 3))
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin, cos
        # source = R (p - pivot) + pivot - shift; a share of the side spans 2 in grid units.
        theta[:, 0, 2] = px - (cos * px - sin * py) - 2 * shift_x
        theta[:, 1, 2] = py - (sin * px + cos * py) - 2 * shift_y
        affine = torch.from_numpy(theta).to(self.device, torch.float32)
        grid = F.affine_grid(affine, list(frames.shape), align_corners=False)
        return F.grid_sample(
            frames,
            grid.to(self._dtype),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
