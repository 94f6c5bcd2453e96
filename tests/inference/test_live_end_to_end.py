"""A live workload end to end on the local backend, with a script update while it is on air.

Real: Django serving the API and the worker protocol (pytest-django's live server), the
embedded `live-cpu` pool, the reconcile pass with the local backend, a `python -m
inference.worker` subprocess running the live pipeline (espeak-ng speech, the torch renderer on
one CPU thread animating the public-domain reference portrait, PyAV writing HLS in real time),
the script update sent by an operator through the API and delivered in a heartbeat's reply,
usage reports, the drain and exit of the idle worker, and ffprobe reading what was streamed.
Nothing is simulated; the orchestrator loop is driven by the test (one `run_once` per step).
No timing bounds: a slow machine drops frames, and the checks allow for it (every frame of the
shift is either sent or counted as dropped).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from inference.backends.local import LocalBackend
from inference.models import FINAL_STATES, UsageReport, Worker, Workload, WorkloadState
from inference.pipelines import render
from inference.pipelines.encode import probe
from inference.pools import EMBEDDED_POOLS, sync_pools
from inference.reconcile import Reconciler
from tenants.roles import Role
from tests.inference.test_end_to_end import _drive, _state
from tests.support import require_tool

pytestmark = pytest.mark.slow

DURATION_S = 20  # long enough for the update to reach the worker and be spoken before the end
FPS = 25
OPENING = [{"text": "Good evening, welcome to the health channel.", "language": "en"}]
UPDATE = [
    {"text": "A doctor answers your questions at eight.", "language": "en"},
    {"text": "今晚八点医生在线答疑。", "language": "zh"},
]


@pytest.fixture
def on_air(org_a, live_server, settings, tmp_path, member_factory):
    require_tool("ffprobe", "ffmpeg")
    settings.INFERENCE_CONTROL_URL = live_server.url
    settings.INFERENCE_HEARTBEAT_INTERVAL_S = 0.5  # the update's way to the worker
    sync_pools([pool for pool in EMBEDDED_POOLS if pool["name"] == "live-cpu"])
    renders = tmp_path / "renders"
    backend = LocalBackend(
        tmp_path / "workers",
        grace_s=5.0,
        extra_env={render.ENV_OUTPUT_DIR: str(renders), render.ENV_TORCH_THREADS: "1"},
    )
    operator = APIClient()
    operator.force_authenticate(user=member_factory(org_a, Role.OPERATOR).user)
    yield Reconciler(backend), backend, operator, renders
    backend.stop_all()


def _go_live(operator, org_a, **spec) -> Workload:
    """The operator submits a live shift through the API, speaking OPENING into HLS."""
    submitted = operator.post(
        f"/api/v1/orgs/{org_a.slug}/workloads/",
        {
            "kind": "live",
            "pool": "live-cpu",
            "spec": {
                "segments": OPENING,
                "portrait": "reference",
                "size": 256,
                "outputs": {"hls_dir": "health-room"},
                **spec,
            },
        },
        format="json",
    )
    assert submitted.status_code == 201, submitted.content
    return Workload.objects.for_organization(org_a).get(id=submitted.json()["id"])


def test_a_live_workload_goes_on_air_takes_a_script_update_and_ends_cleanly(org_a, on_air):
    reconciler, backend, operator, renders = on_air
    workloads = f"/api/v1/orgs/{org_a.slug}/workloads/"
    workload = _go_live(operator, org_a, duration_s=DURATION_S, idle_between_s=0.5, fps=FPS)

    # On air: the first report of the stream moves it to running.
    _drive(reconciler, lambda: _state(workload) == WorkloadState.RUNNING, timeout=180)
    updated = operator.post(
        f"{workloads}{workload.id}/script/", {"segments": UPDATE, "base_version": 1}, format="json"
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["spec"]["script_version"] == 2

    # It ends at the end of its shift, and the idle worker is drained and goes away.
    _drive(reconciler, lambda: _state(workload) in FINAL_STATES, timeout=DURATION_S + 180)
    assert workload.state == WorkloadState.SUCCEEDED, workload.reason
    _drive(reconciler, lambda: Worker.objects.for_organization(org_a).get().state == "gone")
    _drive(reconciler, lambda: not backend.observe())

    # The new script went on air at a segment boundary: the opening was spoken, then the update.
    result = workload.result
    assert workload.progress == 1.0
    assert result["script_version"] == 2
    assert result["segments_by_version"]["1"] >= 1
    assert result["segments_by_version"]["2"] >= 1
    assert result["frames_total"] == DURATION_S * FPS
    assert result["frames_sent"] + result["frames_dropped"] == result["frames_total"]

    # The stream is on disk as HLS: an ended playlist, its segments, H.264 and AAC.
    playlist = renders / "health-room" / "index.m3u8"
    assert result["outputs"]["hls"]["playlist"] == str(playlist)
    assert "#EXT-X-ENDLIST" in playlist.read_text()
    segments = sorted(playlist.parent.glob("segment_*.ts"))
    assert len(segments) >= 2
    assert all(segment.name in playlist.read_text() for segment in segments)
    probed = probe(playlist)
    video = next(s for s in probed["streams"] if s["type"] == "video")
    audio = next(s for s in probed["streams"] if s["type"] == "audio")
    assert (video["codec"], audio["codec"]) == ("h264", "aac")
    assert (video["width"], video["height"]) == (256, 256)
    assert abs(video["frames"] - result["frames_sent"]) <= 2

    # Usage: stream-minutes for the whole shift (dropped frames were on air time too),
    # reported in deltas while on air and at the end.
    usage = UsageReport.objects.for_organization(org_a).filter(workload=workload)
    assert usage.count() >= 2
    assert sum(row.stream_minutes for row in usage) == pytest.approx(DURATION_S / 60)
    assert all(row.gpu_class == "cpu" and row.gpu_seconds == 0 for row in usage)


def test_a_live_workload_cancelled_on_air_stops_its_stream_and_still_reports_its_time(
    org_a, on_air
):
    """The operator ends the shift early: the worker stops the stream at its next heartbeat,
    the playlist is ended (what was on air stays playable), the time on air is still billed."""
    reconciler, backend, operator, renders = on_air
    workloads = f"/api/v1/orgs/{org_a.slug}/workloads/"
    workload = _go_live(operator, org_a, duration_s=3600)
    playlist = renders / "health-room" / "index.m3u8"
    _drive(reconciler, lambda: _state(workload) == WorkloadState.RUNNING, timeout=180)
    _drive(reconciler, lambda: playlist.exists() and "segment_" in playlist.read_text())

    cancelled = operator.post(f"{workloads}{workload.id}/cancel/", {}, format="json")
    assert cancelled.status_code == 200, cancelled.content
    _drive(reconciler, lambda: Worker.objects.for_organization(org_a).get().state == "gone")
    _drive(reconciler, lambda: not backend.observe())

    workload.refresh_from_db()
    assert workload.state == WorkloadState.CANCELLED
    assert workload.result == {}  # a cancelled stream reports no result
    assert "#EXT-X-ENDLIST" in playlist.read_text()
    video = next(s for s in probe(playlist)["streams"] if s["type"] == "video")
    assert 0 < video["frames"] < 3600 * FPS
    minutes = sum(
        row.stream_minutes
        for row in UsageReport.objects.for_organization(org_a).filter(workload=workload)
    )
    assert minutes * 60 * FPS >= video["frames"]  # at least what reached the station's output
    assert minutes < 60
