"""A scheduled live shift on the local backend: warming → on duty → ended, with HLS on disk.

Real: Django serving the API and the worker protocol (pytest-django's live server), the
embedded `live-cpu` pool, the duty tick (played here as beat would, between orchestrator
passes), the reconcile pass with the local backend, a `python -m inference.worker` subprocess
running the live pipeline (espeak-ng speech, the torch renderer on one CPU thread, PyAV writing
HLS in real time), the worker's reports reaching the shift through `workload_changed`, and
ffprobe reading what was streamed. Nothing is simulated; the test drives the loop (one
reconcile pass and one tick per step). No timing bounds: the shift is long enough for a slow
machine's worker to come up, and the checks wait on conditions.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from django.utils import timezone

from inference.backends.local import LocalBackend
from inference.models import Reservation, Worker, WorkloadState
from inference.pipelines import render
from inference.pipelines.encode import probe
from inference.pools import EMBEDDED_POOLS, sync_pools
from inference.reconcile import Reconciler
from scheduling import duty, materialise
from scheduling.models import ShiftState
from tests.inference.test_end_to_end import _drive
from tests.scheduling import duty_world as world

pytestmark = pytest.mark.slow

SHIFT_S = 40  # the worker's start (imports, models) happens within it, then seconds on air


@pytest.fixture
def local(org_a, live_server, settings, tmp_path):
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe (Debian package ffmpeg) is not installed")
    settings.INFERENCE_CONTROL_URL = live_server.url
    settings.INFERENCE_HEARTBEAT_INTERVAL_S = 0.5  # the end of the shift's way to the worker
    sync_pools([pool for pool in EMBEDDED_POOLS if pool["name"] == "live-cpu"])
    renders = tmp_path / "renders"
    backend = LocalBackend(
        tmp_path / "workers",
        grace_s=5.0,
        extra_env={render.ENV_OUTPUT_DIR: str(renders), render.ENV_TORCH_THREADS: "1"},
    )
    yield Reconciler(backend), backend, renders
    backend.stop_all()


def test_a_scheduled_live_shift_goes_on_air_streams_hls_and_ends(org_a, local):
    reconciler, backend, renders = local
    starts_at = timezone.now()
    plan = world.schedule(
        world.hire(org_a),
        world.station(org_a, name="Health live room"),
        segments=[{"text": "Good evening, welcome to the health channel.", "language": "en"}],
    )
    shift = world.shift(plan, starts_at, minutes=1)
    shift.ends_at = starts_at + dt.timedelta(seconds=SHIFT_S)
    shift.save()
    world.reserve(shift)

    def shift_state() -> str:
        duty.tick()  # as beat does every minute; here every step
        return world.fresh(shift).state

    # Due at once (its warm-up began minutes ago): the stream is requested.
    assert shift_state() == ShiftState.WARMING
    workload = world.fresh(shift).workload

    # The worker starts, takes the stream, reports it running: the shift is on duty.
    _drive(reconciler, lambda: shift_state() != ShiftState.WARMING, timeout=SHIFT_S + 120)
    on_air = world.fresh(shift)
    assert on_air.state == ShiftState.ON_DUTY, on_air.reason
    assert on_air.on_duty_at is not None

    # At its end the tick ends the shift and stops the stream; the idle worker goes away.
    _drive(reconciler, lambda: shift_state() != ShiftState.ON_DUTY, timeout=SHIFT_S + 120)
    ended = world.fresh(shift)
    assert ended.state == ShiftState.ENDED, ended.reason
    assert ended.ended_at >= ended.ends_at
    _drive(reconciler, lambda: Worker.objects.for_organization(org_a).get().state == "gone")
    _drive(reconciler, lambda: not backend.observe())
    workload.refresh_from_db()
    assert workload.state in (WorkloadState.CANCELLED, WorkloadState.SUCCEEDED)
    held = Reservation.objects.for_organization(org_a).filter(
        holder=materialise.holder_of(shift.pk)
    )
    assert not held.exists()

    # The stream is on disk as HLS, in the station's folder: an ended playlist and its segments.
    playlist = renders / f"station-{plan.station_id}" / "index.m3u8"
    text = playlist.read_text()
    assert "#EXT-X-ENDLIST" in text
    segments = sorted(playlist.parent.glob("segment_*.ts"))
    assert segments and all(segment.name in text for segment in segments)
    video = next(s for s in probe(playlist)["streams"] if s["type"] == "video")
    assert (video["codec"], video["width"]) == ("h264", 256)
    assert video["frames"] > 0
