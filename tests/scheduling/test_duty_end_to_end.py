"""A scheduled live shift on the local backend: warming → on duty → ended, with HLS on disk, the
avatar's portrait fetched by the worker through the protocol.

Real: Django serving the API and the worker protocol (pytest-django's live server), the
embedded `live-cpu` pool, the duty tick (played here as beat would, between orchestrator
passes), the reconcile pass with the local backend, a `python -m inference.worker` subprocess
running the live pipeline (espeak-ng speech, the torch renderer on one CPU thread, PyAV writing
HLS in real time), the worker fetching the avatar's portrait (a real face) as the workload's input
into its own temporary folder, the worker's reports reaching the shift through
`workload_changed`, and ffprobe reading what was streamed. Nothing is simulated; the test drives
the loop (one reconcile pass and one tick per step). No timing bounds: the shift is long enough
for a slow machine's worker to come up, and the checks wait on conditions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone
from skimage import data

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
from tests.support import require_tool

pytestmark = pytest.mark.slow

SHIFT_S = 40  # the worker's start (imports, models) happens within it, then seconds on air


@pytest.fixture
def local(org_a, live_server, settings, tmp_path):
    require_tool("ffprobe", "ffmpeg")
    settings.INFERENCE_CONTROL_URL = live_server.url
    settings.INFERENCE_HEARTBEAT_INTERVAL_S = 0.5  # the end of the shift's way to the worker
    sync_pools([pool for pool in EMBEDDED_POOLS if pool["name"] == "live-cpu"])
    settings.MEDIA_ROOT = tmp_path / "media"
    renders, worker_tmp = tmp_path / "renders", tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    backend = LocalBackend(
        tmp_path / "workers",
        grace_s=5.0,
        extra_env={
            render.ENV_OUTPUT_DIR: str(renders),
            render.ENV_TORCH_THREADS: "1",
            "TMPDIR": str(worker_tmp),
        },
    )
    yield Reconciler(backend), backend, renders, worker_tmp
    backend.stop_all()


def _face_portrait(employment) -> bytes:
    """A real face (the public-domain astronaut) stored as the hire's portrait, where a build
    stores it: under MEDIA_ROOT, in the market avatar's vendor's folder."""
    version = employment.avatar_version
    relative = f"avatars/{version.organization_id}/{version.avatar_id}/v1/portrait.png"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True)
    cv2.imwrite(str(path), np.asarray(data.astronaut())[:, :, ::-1])
    version.portrait = relative
    version.save(update_fields=["portrait"])
    return path.read_bytes()


def test_a_scheduled_live_shift_goes_on_air_streams_hls_and_ends(org_a, local):
    reconciler, backend, renders, worker_tmp = local
    starts_at = timezone.now()
    employment = world.hire(org_a)
    portrait = _face_portrait(employment)
    plan = world.schedule(
        employment,
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
    # The spec named no path on the control plane's disk: the worker fetched the portrait
    # through the protocol into its own temporary folder, and animated it.
    assert str(settings.MEDIA_ROOT) not in str(workload.spec)
    digest = hashlib.sha256(portrait).hexdigest()
    assert workload.spec["inputs"]["portrait"]["sha256"] == digest
    assert (worker_tmp / render.PORTRAIT_CACHE / digest).read_bytes() == portrait

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
