"""Encoding rendered frames and speech to MP4, fragmented MP4 and HLS.

Real: PyAV with its bundled libx264 and AAC encoders, and Debian's `ffprobe` reading the output
back as an independent check. Simulated: the frames (synthetic 512×512 images with a moving bar)
and the speech (a sine tone), both generated here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inference.pipelines.encode import (
    HlsWriter,
    ProbedStream,
    encode_fragmented_mp4,
    encode_mp4,
    probe,
    write_hls,
)
from inference.pipelines.types import StageError
from tests.support import require_tool

FPS = 25
RATE = 24000  # what the reference TTS gives; AAC carries it as is


@pytest.fixture(autouse=True)
def _ffprobe_available() -> None:
    require_tool("ffprobe", "ffmpeg")


def frames(count: int, width: int = 512, height: int = 512) -> Iterator[np.ndarray]:
    """A generator, as the renderer gives them: the encoder must not need them all at once."""
    for index in range(count):
        frame = np.full((height, width, 3), 40, dtype=np.uint8)
        left = (index * 6) % (width - 32)
        frame[:, left : left + 32] = (230, 180, 60)
        yield frame


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


def streams_by_type(path: Path) -> dict[str, ProbedStream]:
    return {stream["type"]: stream for stream in probe(path)["streams"]}


def durations(streams: dict[str, ProbedStream]) -> tuple[float, float]:
    """ffprobe's (video, audio) stream durations; an MP4 stream always has one."""
    video_s, audio_s = streams["video"]["duration_s"], streams["audio"]["duration_s"]
    assert video_s is not None and audio_s is not None
    return video_s, audio_s


def test_a_three_second_clip_becomes_an_h264_aac_mp4_of_three_seconds(tmp_path):
    """75 frames and 3.0 s of audio → an MP4 ffprobe reads as H.264 (yuv420p, 512×512, 75
    frames) and AAC at 24 kHz, each lasting 3.0 s within one frame."""
    path = tmp_path / "clip.mp4"

    info = encode_mp4(path, frames(75), fps=FPS, audio=tone(3.0), sample_rate=RATE)

    report = probe(path)
    streams = streams_by_type(path)
    assert streams["video"]["codec"] == "h264"
    assert streams["video"]["pix_fmt"] == "yuv420p"
    assert (streams["video"]["width"], streams["video"]["height"]) == (512, 512)
    assert streams["video"]["frames"] == 75
    assert streams["audio"]["codec"] == "aac"
    assert streams["audio"]["sample_rate"] == RATE
    assert report["duration_s"] == pytest.approx(3.0, abs=1 / FPS)
    assert streams["video"]["duration_s"] == pytest.approx(3.0, abs=1 / FPS)
    assert streams["audio"]["duration_s"] == pytest.approx(3.0, abs=1 / FPS)
    assert info.video_frames == 75
    assert info.size_bytes == path.stat().st_size


def test_the_faststart_index_comes_before_the_media(tmp_path):
    """`+faststart` moves the moov box ahead of mdat so playback starts before the download
    ends; read from the real file's top-level boxes."""
    path = tmp_path / "clip.mp4"
    encode_mp4(path, frames(25), fps=FPS, audio=tone(1.0), sample_rate=RATE)

    boxes = [kind for kind, _ in top_level_boxes(path.read_bytes())]

    assert boxes.index("moov") < boxes.index("mdat")


def test_longer_audio_holds_the_last_frame_until_the_audio_ends(tmp_path):
    """3.1 s of speech over 3.0 s of frames: the video is extended with its last frame (to 78
    frames, the first frame boundary after 3.1 s) and the audio padded with silence to that
    boundary, so ffprobe's durations agree within one frame and nothing is cut."""
    path = tmp_path / "clip.mp4"

    info = encode_mp4(path, frames(75), fps=FPS, audio=tone(3.1), sample_rate=RATE)

    streams = streams_by_type(path)
    video_s, audio_s = durations(streams)
    assert streams["video"]["frames"] == 78
    assert audio_s >= 3.1
    assert abs(video_s - audio_s) <= 1 / FPS
    assert abs(info.video_duration_s - info.audio_duration_s) <= 1 / FPS


def test_shorter_audio_is_padded_with_silence_to_the_video(tmp_path):
    """2.5 s of speech over 3.0 s of frames: all 75 frames are kept and the audio stream lasts
    as long as the video (silence at the end)."""
    path = tmp_path / "clip.mp4"

    encode_mp4(path, frames(75), fps=FPS, audio=tone(2.5), sample_rate=RATE)

    streams = streams_by_type(path)
    video_s, audio_s = durations(streams)
    assert streams["video"]["frames"] == 75
    assert abs(video_s - audio_s) <= 1 / FPS


def test_a_rate_aac_cannot_carry_is_resampled_to_48_khz(tmp_path):
    """Speech at 37 kHz (not an AAC rate) is written as 48 kHz AAC of the same duration."""
    path = tmp_path / "clip.mp4"

    encode_mp4(path, frames(50), fps=FPS, audio=tone(2.0, 37000), sample_rate=37000)

    streams = streams_by_type(path)
    assert streams["audio"]["sample_rate"] == 48000
    assert streams["audio"]["duration_s"] == pytest.approx(2.0, abs=1 / FPS)


def test_a_whole_array_of_frames_is_accepted(tmp_path):
    """Frames as one (n, h, w, 3) array instead of a generator encode the same way."""
    path = tmp_path / "clip.mp4"

    encode_mp4(path, np.stack(list(frames(10, 64, 48))), fps=FPS, audio=tone(0.4), sample_rate=RATE)

    assert streams_by_type(path)["video"]["frames"] == 10


def test_a_fragmented_mp4_is_built_in_memory(tmp_path):
    """The bytes begin with ftyp and an empty moov, then moof/mdat fragments (one per second
    at the default keyframe interval), and ffprobe decodes all 75 frames from them."""
    data = encode_fragmented_mp4(frames(75), FPS, tone(3.0), RATE)

    boxes = [kind for kind, _ in top_level_boxes(data)]
    assert boxes[:2] == ["ftyp", "moov"]
    assert boxes.count("moof") == 3
    assert boxes.count("mdat") == boxes.count("moof")
    path = tmp_path / "fragmented.mp4"
    path.write_bytes(data)
    streams = streams_by_type(path)
    assert (streams["video"]["codec"], streams["audio"]["codec"]) == ("h264", "aac")
    assert streams["video"]["frames"] == 75


def test_five_seconds_become_an_hls_playlist_of_two_second_segments(tmp_path):
    """5 s at segment_s=2 → a playlist of 3 MPEG-TS segments (2 + 2 + 1 s) ending with
    EXT-X-ENDLIST, which ffprobe reads as one 5 s H.264/AAC stream of 125 frames."""
    playlist = write_hls(tmp_path / "hls", frames(125), FPS, tone(5.0), RATE, segment_s=2.0)

    text = playlist.read_text()
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(segments) >= 2
    assert all((playlist.parent / name).is_file() for name in segments)
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    report = probe(playlist)
    streams = {stream["type"]: stream for stream in report["streams"]}
    assert (streams["video"]["codec"], streams["audio"]["codec"]) == ("h264", "aac")
    assert streams["video"]["frames"] == 125
    assert report["duration_s"] == pytest.approx(5.0, abs=1 / FPS)


def test_hls_grows_chunk_by_chunk_as_a_live_stream_does(tmp_path):
    """Three 2 s chunks appended one by one: after two, finished segments are listed and the
    playlist is still open (no ENDLIST); after close it is ended and holds all 150 frames."""
    writer = HlsWriter(tmp_path / "live", fps=FPS, sample_rate=RATE, segment_s=2.0)
    writer.write(frames(50), tone(2.0))
    writer.write(frames(50), tone(2.0))

    during = writer.playlist.read_text()
    assert "segment_00000.ts" in during
    assert "#EXT-X-ENDLIST" not in during

    writer.write(frames(50), tone(2.0))
    writer.close()

    assert writer.playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert streams_by_type(writer.playlist)["video"]["frames"] == 150


@pytest.mark.parametrize(
    ("bad_frames", "message"),
    [
        (iter([]), "no frames"),
        (frames(3, 511, 512), "even width and height"),
        ([np.zeros((64, 64, 3), np.uint8), np.zeros((64, 32, 3), np.uint8)], "same size"),
        ([np.zeros((64, 64), np.uint8)], "(height, width, 3)"),
        ([np.zeros((64, 64, 3), np.float32)], "uint8"),
    ],
    ids=["empty", "odd-size", "size-changes", "grey", "float"],
)
def test_bad_frames_are_refused_and_leave_no_file(tmp_path, bad_frames, message):
    """Each malformed input is a StageError saying what is wrong, and no half-written MP4 is
    left behind."""
    path = tmp_path / "clip.mp4"

    with pytest.raises(StageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        encode_mp4(path, bad_frames, fps=FPS, audio=tone(0.2), sample_rate=RATE)

    assert not path.exists()


@pytest.mark.parametrize("fps", [0, -25, 25.5, 1000])
def test_a_bad_frame_rate_is_refused(tmp_path, fps):
    """A frame rate that is not a whole number in 1..120 frames/s is a StageError."""
    with pytest.raises(StageError, match="frame rate"):
        encode_mp4(tmp_path / "clip.mp4", frames(2), fps=fps, audio=tone(0.1), sample_rate=RATE)


@pytest.mark.parametrize(
    "audio",
    [np.zeros((2, 100), np.float32), np.arange(100, dtype=np.int16), np.full(100, np.nan)],
    ids=["stereo", "integers", "nan"],
)
def test_bad_audio_is_refused(tmp_path, audio):
    """Audio must be mono float samples without NaN; anything else is a StageError."""
    with pytest.raises(StageError, match="audio"):
        encode_mp4(tmp_path / "clip.mp4", frames(2), fps=FPS, audio=audio, sample_rate=RATE)


def top_level_boxes(data: bytes) -> list[tuple[str, int]]:
    """The ISO-BMFF boxes at the top of an MP4 (kind, size), walked by their size fields."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        elif size == 0:
            size = len(data) - offset
        boxes.append((kind.decode("ascii"), size))
        offset += size
    assert offset == len(data), "the boxes do not add up to the file"
    return boxes
