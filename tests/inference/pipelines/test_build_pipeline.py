"""The build pipeline from footage to the bundle's parts, as a worker runs it.

Real: the footage (video made by tests/avatars/media.py with PyAV: a real photograph of a face and
a voice-like sound of known pitch), OpenCV's face cascade, the voice analysis, the PNG and JSON
parts, and the worker's transfer helpers with their retries and refusals. Simulated: the worker
around the pipeline (a WorkloadContext whose reports the test collects) and the control plane's
file endpoints (`LocalControl` copies files between folders; the endpoints have their own tests
in tests/inference/test_worker_artifacts.py, and the end-to-end test runs the whole path).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inference import contracts
from inference.pipelines import build
from inference.worker import artifacts
from inference.worker.client import Backoff, ControlPlaneUnavailable, ProtocolError
from inference.worker.pipelines import PipelineFailed, WorkloadContext, WorkloadStopped
from tests.avatars import media
from tests.inference.pipelines.controls import LocalControl


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    """Retries back off by no time at all (their schedule is the worker's own Backoff)."""
    monkeypatch.setattr(artifacts, "Backoff", lambda **_kwargs: Backoff(base_s=0.0, cap_s=0.0))


def _spec(path: Path, **footage: Any) -> dict[str, Any]:
    described = {"sha256": media.sha256_of(path), "bytes": path.stat().st_size, **footage}
    return {"build": "b-1", "avatar": "a-1", "inputs": {"footage": described}}


def _context(spec: dict[str, Any], control: Any, on_report=None) -> tuple[WorkloadContext, list]:
    reports: list[tuple[str, dict[str, Any]]] = []
    assignment = contracts.Assignment("w-build", 2, "build", "build", 1, spec)

    def emit(kind: str, data: dict[str, Any]) -> None:
        reports.append((kind, data))
        if on_report is not None:
            on_report(ctx, kind, data)

    ctx = WorkloadContext(assignment, gpus=1, emit=emit, control=control)
    return ctx, reports


def _run(clip: media.Clip) -> tuple[dict[str, Any], list, LocalControl]:
    path = media.media_file(clip)
    control = LocalControl({"footage": path})
    ctx, reports = _context(_spec(path), control)
    return build.run(ctx), reports, control


def test_footage_becomes_the_portrait_and_voice_parts_delivered_with_progress_by_stage():
    output, reports, control = _run(media.SHORT_FOOTAGE)

    assert set(control.outputs) == {"portrait.png", "voice.json"}
    for name, described in output["files"].items():
        delivered = control.outputs[name]
        assert described == {
            "sha256": hashlib.sha256(delivered).hexdigest(),
            "bytes": len(delivered),
        }
    portrait = cv2.imdecode(
        np.frombuffer(control.outputs["portrait.png"], np.uint8), cv2.IMREAD_COLOR
    )
    assert portrait.shape[:2] == (360, 640)
    assert (output["portrait"]["width"], output["portrait"]["height"]) == (640, 360)
    face = output["portrait"]["face"]
    assert abs(face["x"] + face["width"] / 2 - 320) < 60  # the astronaut, in the middle
    assert json.loads(control.outputs["voice.json"]) == output["voice"]
    assert output["voice"]["pitch_hz"] == pytest.approx(media.PITCH_HZ, abs=5)
    # The transfers name this attempt; the footage came down once, each part went up once.
    assert control.calls == [
        ("download", "footage", 2),
        ("upload", "portrait.png", 2),
        ("upload", "voice.json", 2),
    ]
    progress = [(data["message"], data["progress"]) for kind, data in reports if kind == "progress"]
    stages = [stage for stage, _fraction in progress]
    assert sorted(set(stages), key=stages.index) == ["footage", "portrait", "voice", "bundle"]
    fractions = [fraction for _stage, fraction in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 0.9
    assert len(progress) <= 110  # at most one report a percent, however many frames
    assert reports[-1][0] == "usage"
    assert reports[-1][1]["usage"].gpu_seconds > 0  # the time this one-GPU worker spent


@pytest.mark.parametrize(
    ("clip", "code", "words"),
    [
        (media.NO_FACE, "no_face", "No frontal face was found in the footage"),
        (media.BLURRED, "too_blurry", "The sharpest frame of the face is blurred"),
        (dataclasses.replace(media.SHORT_FOOTAGE, audio=False), "no_audio", "no sound"),
    ],
)
def test_footage_that_cannot_make_an_avatar_fails_with_a_code_and_what_to_film(clip, code, words):
    with pytest.raises(PipelineFailed, match=words) as failed:
        _run(clip)

    assert failed.value.code == code
    assert failed.value.output["code"] == code


def test_a_blurred_face_says_how_sharp_it_was_and_how_sharp_it_must_be():
    with pytest.raises(PipelineFailed) as failed:
        _run(media.BLURRED)

    details = failed.value.details
    assert details["minimum"] == build.MIN_SHARPNESS
    assert 0 <= details["sharpness"] < build.MIN_SHARPNESS


@pytest.mark.parametrize(
    ("samples", "code"),
    [
        (np.zeros(1000, np.float32), "voice_too_short"),  # a sixteenth of a second
        (np.zeros(3 * build.SAMPLE_RATE, np.float32), "no_speech"),  # three seconds of silence
    ],
)
def test_sound_without_a_voice_to_hear_fails_with_a_code(samples, code):
    with pytest.raises(PipelineFailed) as failed:
        build.analyse_voice(samples)

    assert failed.value.code == code


def test_a_file_that_is_not_video_fails_saying_it_cannot_be_decoded(tmp_path):
    junk = tmp_path / "footage.mp4"
    junk.write_bytes(b"this is not a video at all" * 100)
    ctx, reports = _context(_spec(junk), LocalControl({"footage": junk}))

    with pytest.raises(PipelineFailed, match="cannot be decoded") as failed:
        build.run(ctx)

    assert failed.value.code == "footage_unreadable"
    assert reports[-1][0] == "usage"  # the time spent still counts


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({}, "names no footage"),
        ({"inputs": {"footage": "uploads/x"}}, "names no footage"),
        ({"inputs": {"footage": {"sha256": "not-hex"}}}, "64 hex digits"),
        ({"inputs": {"footage": {"bytes": -1}}}, "whole number"),
    ],
)
def test_a_spec_without_usable_footage_fails_before_any_transfer(spec, words):
    control = LocalControl({})
    ctx, _reports = _context(spec, control)

    with pytest.raises(PipelineFailed, match=words):
        build.run(ctx)

    assert control.calls == []


def test_footage_that_arrives_damaged_is_fetched_again_then_fails():
    path = media.media_file(media.SHORT_FOOTAGE)
    control = LocalControl({"footage": path})
    ctx, _reports = _context(_spec(path, sha256="0" * 64), control)

    with pytest.raises(PipelineFailed, match="arrived damaged 3 times"):
        build.run(ctx)

    assert control.calls == [("download", "footage", 2)] * artifacts.DAMAGED_TRIES


def test_transfers_retry_through_an_outage():
    path = media.media_file(media.SHORT_FOOTAGE)
    control = LocalControl({"footage": path})
    control.refuse = {
        "footage": [ControlPlaneUnavailable("connection refused")] * 2,
        "voice.json": [ControlPlaneUnavailable("503")],
    }
    ctx, _reports = _context(_spec(path), control)

    output = build.run(ctx)

    assert set(output["files"]) == {"portrait.png", "voice.json"}
    assert [call for call in control.calls if call[0] == "download"] == [
        ("download", "footage", 2)
    ] * 3


def test_an_outage_that_outlasts_the_retries_fails_the_workload(monkeypatch):
    path = media.media_file(media.SHORT_FOOTAGE)
    control = LocalControl({"footage": path})
    control.refuse = {"footage": [ControlPlaneUnavailable("connection refused")] * 1000}
    monkeypatch.setattr(artifacts, "RETRY_FOR_S", 0.0)
    ctx, _reports = _context(_spec(path), control)

    with pytest.raises(PipelineFailed, match="control plane stayed unreachable"):
        build.run(ctx)


def test_a_delivery_refused_because_the_workload_moved_on_stops_the_work():
    path = media.media_file(media.SHORT_FOOTAGE)
    control = LocalControl({"footage": path})
    control.refuse = {"portrait.png": [ProtocolError("409 stale_attempt", 409)]}
    ctx, reports = _context(_spec(path), control)

    with pytest.raises(WorkloadStopped):
        build.run(ctx)

    assert control.outputs == {}
    assert reports[-1][0] == "usage"


def test_an_input_the_control_plane_does_not_have_fails_saying_which():
    path = media.media_file(media.SHORT_FOOTAGE)
    control = LocalControl({"footage": path})
    control.refuse = {"footage": [ProtocolError("404 input_not_found", 404)]}
    ctx, _reports = _context(_spec(path), control)

    with pytest.raises(PipelineFailed, match=r"Could not fetch the input 'footage'.*404"):
        build.run(ctx)


def test_a_stop_while_the_portrait_is_picked_ends_the_work_at_the_next_frame():
    """The worker is told to stop (a cancel at its heartbeat) when the portrait stage reports;
    the pipeline stops there: no voice analysis, nothing delivered, its time still counted."""
    path = media.media_file(media.SHORT_FOOTAGE)
    control = LocalControl({"footage": path})

    def stop_at_portrait(ctx, kind, data):
        if kind == "progress" and data["message"] == "portrait":
            ctx.stop()

    ctx, reports = _context(_spec(path), control, on_report=stop_at_portrait)

    with pytest.raises(WorkloadStopped):
        build.run(ctx)

    assert "voice" not in [data.get("message") for _kind, data in reports]
    assert control.outputs == {}
    assert reports[-1][0] == "usage"


def test_a_worker_without_a_control_plane_connection_fails_clearly():
    path = media.media_file(media.SHORT_FOOTAGE)
    ctx, _reports = _context(_spec(path), None)

    with pytest.raises(PipelineFailed, match="no connection to the control plane"):
        build.run(ctx)


def test_the_manifest_describes_the_parts_with_their_sha256(tmp_path):
    output, _reports, control = _run(media.SHORT_FOOTAGE)
    for name, data in control.outputs.items():
        (tmp_path / name).write_bytes(data)

    manifest = build.write_manifest(tmp_path, output["portrait"], {"version": 3})

    assert manifest == json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == "ironbowl.avatar-bundle/1"
    assert manifest["version"] == 3
    assert manifest["files"] == output["files"]
    assert manifest["portrait"] == output["portrait"]


def test_the_worker_registers_the_build_pipeline():
    from inference.worker.pipelines import default_registry

    assert default_registry().get("build") is build.run
