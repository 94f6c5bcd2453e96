"""The render pipeline from script to MP4, as a worker runs it.

Real: espeak-ng speech (with pypinyin for Mandarin), the mouth track, the torch renderer on CPU,
the label, PyAV encoding and ffprobe reading the result, the worker's transfer helpers fetching
a portrait. Simulated: the worker around it (a WorkloadContext whose reports are collected by the
test instead of sent over HTTP) and the control plane's file endpoint (`LocalControl`).
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from inference import contracts
from inference.pipelines import render
from inference.pipelines.encode import probe
from inference.worker.pipelines import PipelineFailed, WorkloadContext
from tests.inference.pipelines.controls import LocalControl
from tests.support import require_tool

FPS = 25


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv(render.ENV_OUTPUT_DIR, str(tmp_path))
    monkeypatch.setenv(render.ENV_TORCH_THREADS, "1")
    (tmp_path / "worker-tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "worker-tmp"))  # the worker's portrait cache
    monkeypatch.setattr("tempfile.tempdir", None)
    torch.set_num_threads(1)


def _run(spec: dict, workload_id: str = "w-render", control=None) -> tuple[dict, list]:
    reports: list = []
    assignment = contracts.Assignment(workload_id, 1, "render", "render", 1, spec)
    ctx = WorkloadContext(
        assignment,
        gpus=0,
        emit=lambda kind, data: reports.append((kind, data)),
        control=control,
    )
    return render.run(ctx), reports


def _portrait_input(path: Path) -> dict:
    """How the control plane names a portrait: the workload's input `portrait`."""
    data = path.read_bytes()
    return {
        "portrait": {
            "media": "avatars/o/a/v1/portrait.png",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    }


def _face(path: Path) -> Path:
    """A portrait of a real face (the public-domain astronaut), its colours swapped so that it is
    not the reference portrait."""
    import cv2
    from skimage import data

    cv2.imwrite(str(path), np.asarray(data.astronaut()))  # RGB written as BGR: blue skin
    return path


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("zh", "您好，欢迎来到清河人民医院健康直播间。今天聊聊冬季如何预防流感。"),
        ("yue", "你好，歡迎嚟到消費者服務台，有咩可以幫到你？"),
        ("en", "Good evening. Tonight we talk about healthy sleep and why it matters."),
    ],
)
def test_a_script_becomes_an_mp4_whose_audio_and_video_agree(language, text, tmp_path):
    require_tool("ffprobe", "ffmpeg")
    output, reports = _run({"text": text, "language": language, "portrait": "reference"})
    path = tmp_path / output["video"]
    probed = probe(path)
    video = next(s for s in probed["streams"] if s["type"] == "video")
    audio = next(s for s in probed["streams"] if s["type"] == "audio")
    assert (video["codec"], audio["codec"]) == ("h264", "aac")
    assert (video["width"], video["height"]) == (512, 512)
    assert video["duration_s"] > 1.0
    assert abs(video["duration_s"] - audio["duration_s"]) <= 1 / FPS
    assert output["frames"] == video["frames"]
    kinds = [kind for kind, _data in reports]
    assert kinds.count("progress") >= 1 and kinds[-1] == "usage"
    (usage,) = [data["usage"] for kind, data in reports if kind == "usage"]
    assert usage.rendered_seconds == pytest.approx(output["duration_s"])


def test_mouth_movement_in_the_video_follows_the_audio_energy(tmp_path):
    """Decoded from the MP4 itself: how far the mouth region is from the shut mouth, frame by
    frame, against the loudness of the decoded audio in that frame."""
    require_tool("ffprobe", "ffmpeg")
    text = "今天我们讲讲高血压。每天少吃盐，多运动，按时吃药，定期测量血压。"
    output, _ = _run({"text": text, "language": "zh", "portrait": "reference", "ai_label": False})
    renderer = render.portrait_renderer("reference", 512, "cpu")
    x, y, w, h = renderer.layout.mouth
    x0, y0, x1, y1 = x - w // 2, y - h // 2, x + w + w // 2, y + h + h // 2  # lips and jaw
    video_path = str(tmp_path / output["video"])
    with av.open(video_path) as container:
        frames = [
            frame.to_ndarray(format="rgb24")[y0:y1, x0:x1].astype(np.float32)
            for frame in container.decode(video=0)
        ]
    with av.open(video_path) as container:
        samples = np.concatenate(
            [frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)]
        )
    # The decoded audio spread evenly over the video's frames (they agree within one frame).
    bounds = np.linspace(0, len(samples), len(frames) + 1).astype(int)
    energy = np.array([np.sqrt(np.mean(samples[a:b] ** 2)) for a, b in itertools.pairwise(bounds)])
    # The same frames with the mouth shut (same head sway and blinks), straight from the renderer:
    # what differs in the mouth box is the mouth.
    shut = renderer.render(np.zeros(len(frames)), start_frame=0, seed=0)[:, y0:y1, x0:x1]
    movement = np.array(
        [
            np.abs(frame - closed.astype(np.float32)).mean()
            for frame, closed in zip(frames, shut, strict=True)
        ]
    )
    correlation = np.corrcoef(movement, energy)[0, 1]
    assert correlation > 0.5, correlation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"text": "   ", "portrait": "reference"}, "script is empty"),
        ({"text": "hi", "language": "fr", "portrait": "reference"}, "not supported"),
        ({"text": "hi", "language": "en"}, "No portrait"),
        ({"text": "hi", "language": "en", "portrait_path": "/etc/hostname"}, "not read"),
        ({"text": "hi", "inputs": {"portrait": {"sha256": "x", "bytes": 1}}}, "64 hex digits"),
        ({"text": "hi", "inputs": {"portrait": {"sha256": "0" * 64}}}, "bytes"),
        ({"text": "hi", "language": "en", "portrait": "reference", "size": 511}, "even"),
        ({"text": "x" * 20_000, "language": "en", "portrait": "reference"}, "long"),
    ],
)
def test_bad_specs_fail_the_workload_with_a_reason(spec, message):
    with pytest.raises(PipelineFailed, match=message):
        _run(spec)


def test_a_portrait_without_a_face_is_refused(tmp_path):
    import cv2

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((256, 256, 3), 200, np.uint8))
    spec = {"text": "hello", "language": "en", "inputs": _portrait_input(blank)}
    with pytest.raises(PipelineFailed, match="face"):
        _run(spec, control=LocalControl({"portrait": blank}))


def test_the_portrait_comes_through_the_control_plane_once_per_content_and_is_animated(tmp_path):
    """The worker shares no disk with the control plane: it fetches the input, keeps it by its
    SHA-256 for the next workload, and animates it (not the reference portrait)."""
    require_tool("ffprobe", "ffmpeg")
    portrait = _face(tmp_path / "sent.png")
    control = LocalControl({"portrait": portrait})
    spec = {"text": "Hello.", "language": "en", "size": 128, "ai_label": False}
    spec["inputs"] = _portrait_input(portrait)

    first, _ = _run(spec, "w-1", control)
    second, _ = _run(spec, "w-2", control)

    # The second used the worker's copy of the portrait; each MP4 went back to the control
    # plane as its workload's output, named in the result with its SHA-256.
    assert control.calls == [
        ("download", "portrait", 1),
        ("upload", "w-1.mp4", 1),
        ("upload", "w-2.mp4", 1),
    ]
    assert first["sha256"] == hashlib.sha256((tmp_path / first["video"]).read_bytes()).hexdigest()
    kept = list((tmp_path / "worker-tmp").rglob(hashlib.sha256(portrait.read_bytes()).hexdigest()))
    assert [path.read_bytes() for path in kept] == [portrait.read_bytes()]
    with av.open(str(tmp_path / second["video"])) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    blue, red = frame[..., 2].mean(), frame[..., 0].mean()
    reference = render.portrait_renderer("reference", 128, "cpu").render(
        np.zeros(1), start_frame=0, seed=0
    )[0]
    assert blue > red  # the swapped colours, where the reference astronaut is warmer
    assert reference[..., 0].mean() > reference[..., 2].mean()
    assert first["frames"] == second["frames"]


def test_a_portrait_that_arrives_damaged_fails_the_workload(tmp_path):
    portrait = _face(tmp_path / "sent.png")
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(portrait.read_bytes()[:-10])
    spec = {"text": "Hello.", "language": "en", "inputs": _portrait_input(portrait)}
    with pytest.raises(PipelineFailed, match="damaged"):
        _run(spec, control=LocalControl({"portrait": damaged}))
    assert not list(
        (tmp_path / "worker-tmp").rglob(hashlib.sha256(portrait.read_bytes()).hexdigest())
    )
