"""A custom-avatar build end to end on the local backend: footage uploaded through the API
becomes a published avatar version, built by a real worker process.

Real: the upload API (chunks, checks, SHA-256), the build API, Django serving the worker protocol
(pytest-django's live server), the reconcile pass with the local backend, a `python -m
inference.worker` subprocess running the build pipeline — it downloads the footage and uploads
the bundle's parts over HTTP, sharing no files with the web — and the avatars side publishing
the bundle when the workload's result commits. Nothing simulated; the orchestrator loop is driven
by the test (one `run_once` per step). The footage is the 2-minute 720p clip of
tests/avatars/media.py (a real photograph of a face, a voice of known pitch).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from avatars.models import Avatar, AvatarBuild
from inference.backends.local import LocalBackend
from inference.models import UsageReport, WorkerPool, Workload
from inference.reconcile import Reconciler
from tests.avatars import media
from tests.avatars.factories import AvatarFactory, ConsentFactory
from tests.avatars.test_uploads_footage import upload_file

pytestmark = pytest.mark.slow


def test_uploaded_footage_becomes_a_published_avatar_version_built_by_a_worker_process(
    org_a, api_a, live_server, settings, tmp_path
):
    settings.INFERENCE_CONTROL_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path / "media"
    WorkerPool.objects.create(
        name="build-cpu", pipeline="build", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=1, image="local", maximum=1, batch=True,
    )  # fmt: skip
    footage_path = media.media_file(media.VALID_FOOTAGE)
    uploaded = upload_file(api_a, org_a, footage_path)
    assert uploaded.status_code == 200, uploaded.content
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    started = api_a.post(
        f"/api/v1/orgs/{org_a.slug}/builds/",
        {"avatar": str(avatar.pk), "footage": uploaded.json()["id"], "consent": str(consent.pk)},
        format="json",
    )
    assert started.status_code == 201, started.content
    build_url = f"/api/v1/orgs/{org_a.slug}/builds/{started.json()['id']}/"
    # The worker's own scratch space: nothing of MEDIA_ROOT reaches it but through HTTP.
    backend = LocalBackend(
        tmp_path / "workers", grace_s=5.0, extra_env={"TMPDIR": str(tmp_path / "scratch")}
    )
    (tmp_path / "scratch").mkdir()
    reconciler = Reconciler(backend)
    seen = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            reconciler.run_once()
            shown = api_a.get(build_url).json()
            seen.add((shown["status"], shown["stage"]))
            if shown["status"] not in ("queued", "running"):
                break
            time.sleep(0.3)
    finally:
        backend.stop_all()

    assert shown["status"] == "succeeded", shown
    assert (shown["progress"], shown["stage"]) == (100, "done")
    assert ("running", "portrait") in seen or ("running", "voice") in seen  # it followed along
    build = AvatarBuild.objects.for_organization(org_a).get(pk=shown["id"])
    workload = Workload.objects.for_organization(org_a).get(pk=build.workload_id)
    assert (workload.kind, workload.state, workload.attempts) == ("build", "succeeded", 1)
    avatar = Avatar.objects.for_organization(org_a).get(pk=avatar.pk)
    version = avatar.current_version
    assert (avatar.status, version.number, version.build_id) == ("ready", 1, build.pk)
    assert version.voice_profile["pitch_hz"] == pytest.approx(media.PITCH_HZ, abs=5)
    bundle = Path(settings.MEDIA_ROOT) / version.bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["portrait.png", "voice.json"]
    for name, described in manifest["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == described["sha256"]
    assert manifest["footage"]["sha256"] == media.sha256_of(footage_path)
    assert manifest["portrait"]["width"] == 1280
    # The worker's copies were taken into the bundle and let go; its usage was recorded.
    assert not list((Path(settings.MEDIA_ROOT) / "inference").rglob("*.png"))
    assert UsageReport.objects.for_organization(org_a).filter(workload=workload).exists()
