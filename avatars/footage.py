"""What is in a media file, read with PyAV, and whether it makes usable footage or consent clip.

Footage for a custom avatar is 2 to 3 minutes of the person (a few seconds' tolerance), at least
720p, with sound, at a frame rate between 15 and 60. Each failed check gives its own message with
the measured value, so the person filming knows what to change.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from django.utils.translation import gettext as _

FOOTAGE_MIN_SECONDS = 120
FOOTAGE_MAX_SECONDS = 180
FOOTAGE_TOLERANCE_SECONDS = 5
FOOTAGE_MIN_SHORT_SIDE = 720
FOOTAGE_MIN_FPS = 15
FOOTAGE_MAX_FPS = 60


class NotMedia(Exception):
    """The file is no audio or video that FFmpeg can read."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """Measured properties of a media file (stored on the upload as `media_info`)."""

    format: str
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _duration(container: Any, streams: list[Any]) -> float:
    if container.duration:
        return float(container.duration) / av.time_base
    durations = [
        float(stream.duration * stream.time_base)
        for stream in streams
        if stream.duration and stream.time_base
    ]
    if durations:
        return max(durations)
    # Some containers (WebM from browsers) carry no duration: read the packets' timestamps.
    end = 0.0
    for packet in container.demux(*streams):
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def _frame_rate(stream: Any) -> float | None:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
    return round(float(rate), 3) if rate else None


def probe(path: Path) -> MediaInfo:
    """Read the container's streams without decoding the pictures; NotMedia if it is none."""
    try:
        with av.open(str(path), mode="r") as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            streams = [s for s in (video, audio) if s is not None]
            if not streams:
                raise NotMedia(_("it holds neither pictures nor sound"))
            return MediaInfo(
                format=container.format.name,
                duration_s=round(_duration(container, streams), 3),
                has_video=video is not None,
                has_audio=audio is not None,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                fps=_frame_rate(video) if video is not None else None,
                video_codec=video.codec_context.name if video is not None else None,
                audio_codec=audio.codec_context.name if audio is not None else None,
                audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
                audio_channels=audio.codec_context.channels if audio is not None else None,
            )
    except av.FFmpegError as error:
        raise NotMedia(str(getattr(error, "strerror", None) or error)) from None


def _number(value: float) -> str:
    return f"{value:.0f}" if math.isclose(value, round(value), abs_tol=0.005) else f"{value:.2f}"


def footage_problems(info: MediaInfo) -> list[str]:
    """Everything that keeps this file from being footage for a build; empty when it is fine."""
    if not info.has_video:
        return [_("The file has no video track; upload a video of the person.")]
    problems = []
    low = FOOTAGE_MIN_SECONDS - FOOTAGE_TOLERANCE_SECONDS
    high = FOOTAGE_MAX_SECONDS + FOOTAGE_TOLERANCE_SECONDS
    if not low <= info.duration_s <= high:
        problems.append(
            _("The footage is %(seconds)s s long; it needs 2 to 3 minutes.")
            % {"seconds": _number(round(info.duration_s))}
        )
    width, height = info.width or 0, info.height or 0
    if min(width, height) < FOOTAGE_MIN_SHORT_SIDE:
        problems.append(
            _(
                "The footage is %(width)d×%(height)d pixels; it needs at least 720p "
                "(720 pixels on the short side)."
            )
            % {"width": width, "height": height}
        )
    if not info.has_audio:
        problems.append(
            _("The footage has no audio track; film the person speaking, with the sound on.")
        )
    if info.fps is None or not FOOTAGE_MIN_FPS <= info.fps <= FOOTAGE_MAX_FPS:
        problems.append(
            _("The footage runs at %(fps)s frames per second; it needs 15 to 60.")
            % {"fps": _number(info.fps) if info.fps is not None else _("an unknown number of")}
        )
    return problems


def consent_clip_problems(info: MediaInfo) -> list[str]:
    """A recorded consent must let people hear the person say it."""
    if not info.has_audio:
        return [_("The consent clip has no sound; record the person saying their consent.")]
    return []
