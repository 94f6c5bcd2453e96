"""The talent market preview's rendered sample: rendering one, following it, watching it.

Real: the Django stack (sessions, middleware, templates, htmx markup), the avatars sample service,
inference's submit, admission and reconcile pass, the worker protocol's reports and its file
endpoints (the portrait fetched and the video delivered over HTTP with a worker's token), files
under a MEDIA_ROOT of the test's own. Simulated: the cluster (a fake backend "starts" the worker)
and the GPU worker at its boundary: the test makes the requests a worker makes, and the MP4 it
"rendered" is a few bytes the test writes where a local worker writes its video (MEDIA_ROOT/
renders/) or uploads through the output endpoint, as a worker that delivers it would.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from avatars import samples
from inference import contracts
from inference import services as inference
from inference.admission import admit
from inference.models import WorkerPool, Workload, WorkloadState
from inference.pools import EMBEDDED_POOLS, sync_pools
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories
from tests.avatars import factories as af
from tests.console.conftest import submit_token
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker, report
from tests.support import require_tool

pytestmark = pytest.mark.django_db

# What the test's "worker" rendered: not a real MP4, served back byte for byte.
VIDEO = b"\x00\x00\x00\x20ftypisom pretend sample video " * 400


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def pools(db) -> None:
    sync_pools(EMBEDDED_POOLS)  # render-cpu among them, as `make run` has


# --- helpers ------------------------------------------------------------------------------------


def url(name: str, org, *args) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


def html_of(response) -> str:
    """The page, its entities unescaped (the words as a person reads them)."""
    return html.unescape(response.content.decode())


def market_avatar(**fields):
    """A published avatar of a vendor, with a stored portrait."""
    vendor = factories.OrganizationFactory(slug=f"v-{uuid.uuid4().hex[:8]}", kind="vendor")
    fields.setdefault("name_zh", "政策讲解员")
    return af.with_portrait(af.ready_avatar(organization=vendor, visibility="public", **fields))


def render(client, org, avatar, token: str | None = None):
    """Press "Render a sample" on the preview (its form's token, unless one is given)."""
    if token is None:
        token = submit_token(sample_part(client.get(url("market-avatar", org, avatar.pk))))
    return client.post(url("sample-render", org, avatar.pk), {"submit_token": token})


def sample_part(response) -> str:
    match = re.search(r'<section id="sample".*?</section>', html_of(response), re.S)
    assert match, "the page has no sample part"
    return match.group(0)


def renders_of(org) -> list[Workload]:
    return list(Workload.objects.for_organization(org).filter(kind="render"))


def the_sample(org) -> Workload:
    (workload,) = renders_of(org)
    return workload


def finish_locally(workload: Workload, data: bytes = VIDEO) -> None:
    """A local worker's end of a render: the MP4 in its output folder (MEDIA_ROOT/renders/, see
    inference.backends), then its result report, as the render pipeline makes it."""
    name = f"{workload.pk}.mp4"
    folder = Path(settings.MEDIA_ROOT) / samples.RENDERS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    report(workload, "result", status="succeeded", output={"video": name, "duration_s": 2.4})


def placed(workload: Workload):
    """The workload admitted and placed on a worker the fake cluster started; the worker's
    HTTP client (its own token)."""
    client, _token = place_on_new_worker(FakeBackend(), workload, "render")
    return client


# --- rendering ----------------------------------------------------------------------------------


def test_rendering_queues_one_render_of_a_greeting_with_the_versions_portrait(
    org_a, console_a, owner_a, pools
):
    avatar = market_avatar(languages=["yue-HK", "zh-CN"])

    response = render(console_a, org_a, avatar)

    preview = url("market-avatar", org_a, avatar.pk)
    assert response.status_code == 302 and response["Location"] == f"{preview}#sample"
    workload = the_sample(org_a)
    spec = workload.spec
    assert (workload.kind, workload.state) == ("render", WorkloadState.QUEUED)
    assert spec["language"] == "yue" and "政策讲解员" in spec["text"]  # its first language
    assert spec["sample"]["version"] == str(avatar.current_version_id)
    audit = AuditEntry.objects.for_organization(org_a).filter(action="workload.submit")
    assert audit.get().actor_user_id == owner_a.user_id
    # The worker it is placed on fetches the portrait over the worker file endpoint: the
    # vendor's portrait, copied into this organization's media.
    worker = placed(workload)
    fetched = worker.get(
        contracts.INPUT_PATH.format(workload=workload.pk, name="portrait"),
        {"attempt": 1},
    )
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == af.PORTRAIT_PNG
    assert spec["inputs"]["portrait"]["media"].startswith(f"portraits/{org_a.pk}/")
    assert spec["inputs"]["portrait"]["sha256"] == hashlib.sha256(af.PORTRAIT_PNG).hexdigest()


def test_a_double_submit_and_a_second_click_while_it_renders_queue_one_render(
    org_a, console_a, pools
):
    avatar = market_avatar()
    token = submit_token(sample_part(console_a.get(url("market-avatar", org_a, avatar.pk))))

    first = render(console_a, org_a, avatar, token)
    again = render(console_a, org_a, avatar, token)  # the same form sent twice
    other_tab = render(console_a, org_a, avatar, "a-token-from-another-tab")

    assert first.status_code == again.status_code == other_tab.status_code == 302
    assert len(renders_of(org_a)) == 1


def test_while_it_renders_the_preview_polls_its_status_every_2s_showing_state_and_progress(
    org_a, console_a, pools
):
    avatar = market_avatar()
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    status = url("sample-status", org_a, avatar.pk, workload.pk)

    queued = sample_part(console_a.get(url("market-avatar", org_a, avatar.pk)))
    placed(workload)
    report(workload, "progress", progress=0.4, message="rendering")
    running = console_a.get(status, headers={"HX-Request": "true"})

    assert f'hx-get="{status}"' in queued and 'hx-trigger="every 2s"' in queued
    assert "Queued" in queued and "Queued: waiting for a GPU worker." in queued
    assert 'data-testid="render-sample"' not in queued  # one at a time
    part = html_of(running)
    assert running.status_code == 200 and part.lstrip().startswith("<section")
    assert "Running" in part and 'data-testid="sample-percent">40%' in part
    assert '<progress max="100" value="40">' in part
    assert 'hx-trigger="every 2s"' in part


def test_a_wait_for_quota_is_said_in_plain_words(org_a, console_a):
    """Trial plans include no H200 slots: admission keeps the render waiting for quota."""
    WorkerPool.objects.create(
        name="render-h200", pipeline="render", gpu_class="h200", slots_per_worker=4,
        image="ghcr.io/ironbowl/worker:1", maximum=4,
    )  # fmt: skip
    avatar = market_avatar()
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)

    admit()
    part = html_of(console_a.get(url("sample-status", org_a, avatar.pk, workload.pk)))

    assert Workload.objects.for_organization(org_a).get().reason_code == "quota"
    assert "Waiting for a GPU slot within your plan's limit." in part
    assert 'hx-trigger="every 2s"' in part


@pytest.mark.parametrize("delivery", ["local worker folder", "output endpoint"])
def test_a_rendered_sample_plays_in_the_preview_from_this_organizations_url(
    org_a, console_a, pools, delivery
):
    avatar = market_avatar()
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    worker = placed(workload)
    if delivery == "local worker folder":
        finish_locally(workload)
    else:
        name, sha256 = f"{workload.pk}.mp4", hashlib.sha256(VIDEO).hexdigest()
        put = worker.generic(
            "PUT",
            contracts.OUTPUT_PATH.format(workload=workload.pk, name=name) + "?attempt=1",
            VIDEO,
            content_type="application/octet-stream",
            headers={contracts.SHA256_HEADER: sha256},
        )
        assert put.status_code in (200, 201), put.content
        report(workload, "result", status="succeeded", output={"video": name, "sha256": sha256})

    part = sample_part(console_a.get(url("market-avatar", org_a, avatar.pk)))
    video_url = url("sample-video", org_a, avatar.pk, workload.pk)
    video = console_a.get(video_url)
    ranged = console_a.get(video_url, headers={"Range": "bytes=100-199"})
    tail = console_a.get(video_url, headers={"Range": "bytes=-10"})
    past_the_end = console_a.get(video_url, headers={"Range": f"bytes={len(VIDEO)}-"})

    assert f'src="{video_url}"' in part and "<video" in part
    assert "hx-trigger" not in part and 'data-testid="render-sample"' not in part
    assert video.status_code == 200 and video["Content-Type"] == "video/mp4"
    assert video.content == VIDEO
    assert ranged.status_code == 206 and ranged.content == VIDEO[100:200]
    assert ranged["Content-Range"] == f"bytes 100-199/{len(VIDEO)}"
    assert tail.status_code == 206 and tail.content == VIDEO[-10:]
    assert past_the_end.status_code == 416
    # Rendering again answers with this sample: nothing more is queued.
    render(console_a, org_a, avatar, "another-token")
    assert len(renders_of(org_a)) == 1


def test_a_failed_render_says_why_and_another_can_be_rendered(org_a, console_a, pools):
    avatar = market_avatar()
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    placed(workload)
    report(workload, "result", status="failed", reason="espeak-ng could not be started.")

    part = sample_part(console_a.get(url("market-avatar", org_a, avatar.pk)))
    again = render(console_a, org_a, avatar)

    assert "The render failed." in part and "espeak-ng could not be started." in part
    assert 'data-testid="render-sample"' in part and "hx-trigger" not in part
    assert again.status_code == 302
    assert len(renders_of(org_a)) == 2
    newest = Workload.objects.for_organization(org_a).exclude(pk=workload.pk).get()
    assert newest.state == WorkloadState.QUEUED
    assert console_a.get(url("sample-video", org_a, avatar.pk, workload.pk)).status_code == 404


def test_a_refused_render_says_why_in_plain_words_and_queues_nothing(org_a, console_a):
    """No pool renders videos (none is defined): inference cannot take the work."""
    avatar = market_avatar()

    response = render(console_a, org_a, avatar)
    page = html_of(console_a.get(response["Location"]))

    assert response.status_code == 302
    assert "No GPU pool renders videos at the moment, so the sample cannot be queued" in page
    assert renders_of(org_a) == []
    assert "No rendered sample yet." in page


def test_an_avatar_without_portrait_or_speakable_language_is_not_rendered(org_a, console_a, pools):
    no_portrait = af.ready_avatar(
        organization=factories.OrganizationFactory(slug="v-plain", kind="vendor"),
        visibility="public",
    )
    french = market_avatar(name_zh="法语讲解员", languages=["fr-FR"])

    refused = [
        html_of(console_a.get(render(console_a, org_a, avatar)["Location"]))
        for avatar in (no_portrait, french)
    ]

    assert "has no portrait to animate yet, so no sample can be rendered." in refused[0]
    assert "speaks none of the languages samples are rendered in" in refused[1]
    assert renders_of(org_a) == []


# --- rights and tenancy -------------------------------------------------------------------------


def test_an_analyst_watches_the_sample_but_cannot_render_one(
    org_a, console_a, console_for, member_factory, pools
):
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    avatar = market_avatar()

    preview = sample_part(analyst.get(url("market-avatar", org_a, avatar.pk)))
    refused = analyst.post(url("sample-render", org_a, avatar.pk), {"submit_token": "t"})
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    placed(workload)
    finish_locally(workload)
    watched = analyst.get(url("sample-video", org_a, avatar.pk, workload.pk))

    assert "No rendered sample yet." in preview and 'data-testid="render-sample"' not in preview
    assert refused.status_code == 403
    assert len(renders_of(org_a)) == 1  # the owner's, not the analyst's
    assert watched.status_code == 200 and watched.content == VIDEO


def test_another_organizations_sample_is_not_found_and_not_shown(
    org_a, org_b, console_a, console_b, pools
):
    avatar = market_avatar()
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    placed(workload)
    finish_locally(workload)

    probes = [
        console_b.get(url(name, org, avatar.pk, workload.pk))
        for name in ("sample-status", "sample-video")
        for org in (org_a, org_b)  # A's slug, and its own slug with A's workload id
    ]
    preview_b = html_of(console_b.get(url("market-avatar", org_b, avatar.pk)))

    assert [probe.status_code for probe in probes] == [404, 404, 404, 404]
    assert str(workload.pk) not in preview_b and "<video" not in preview_b
    assert "No rendered sample yet." in preview_b
    assert renders_of(org_b) == []


def test_only_a_sample_of_this_avatar_is_found_under_it(org_a, console_a, pools):
    avatar, other = market_avatar(), market_avatar(name_zh="健康主播")
    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    diagnostic, _ = inference.submit(
        org_a, kind="render", spec={"seconds": 1.0}, pool_name="diagnostic-cpu"
    )

    under_other = console_a.get(url("sample-status", org_a, other.pk, workload.pk))
    not_a_sample = console_a.get(url("sample-video", org_a, avatar.pk, diagnostic.pk))
    made_up = console_a.get(url("sample-status", org_a, avatar.pk, uuid.uuid4()))

    assert [under_other.status_code, not_a_sample.status_code, made_up.status_code] == [
        404,
        404,
        404,
    ]


# --- the whole way, with a real worker ----------------------------------------------------------


@pytest.mark.slow
def test_a_real_local_worker_renders_the_sample_and_the_preview_plays_it(
    org_a, console_a, live_server, settings, tmp_path, media
):
    """Nothing simulated past the cluster: the local backend starts a real worker process, which
    fetches the vendor's portrait (a real face) over the worker file endpoint, speaks the
    greeting with espeak-ng, animates it with torch and encodes the MP4 into MEDIA_ROOT/renders/
    as `make run` does; the console then serves that file."""
    import cv2
    import numpy as np
    from skimage import data

    from inference.backends.local import LocalBackend
    from inference.pipelines.encode import probe
    from inference.reconcile import Reconciler

    require_tool("espeak-ng", "espeak-ng")
    settings.INFERENCE_CONTROL_URL = live_server.url
    sync_pools(EMBEDDED_POOLS)
    avatar = market_avatar(languages=["en-US"], name_en="Grace")
    portrait = media / avatar.current_version.portrait
    cv2.imwrite(str(portrait), np.asarray(data.astronaut())[:, :, ::-1])
    backend = LocalBackend(
        tmp_path / "workers",
        grace_s=5.0,
        extra_env={
            "IRONBOWL_OUTPUT_DIR": str(media / samples.RENDERS_FOLDER),
            "IRONBOWL_TORCH_THREADS": "1",
            "TMPDIR": str(tmp_path),
        },
    )
    reconciler = Reconciler(backend)

    render(console_a, org_a, avatar)
    workload = the_sample(org_a)
    try:
        deadline = time.monotonic() + 180
        while workload.state not in ("succeeded", "failed") and time.monotonic() < deadline:
            reconciler.run_once()
            time.sleep(0.3)
            workload.refresh_from_db()
    finally:
        backend.stop_all()

    assert workload.state == WorkloadState.SUCCEEDED, workload.reason
    part = sample_part(console_a.get(url("market-avatar", org_a, avatar.pk)))
    video_url = url("sample-video", org_a, avatar.pk, workload.pk)
    assert f'src="{video_url}"' in part
    served = console_a.get(video_url)
    stored = media / samples.RENDERS_FOLDER / f"{workload.pk}.mp4"
    assert served.status_code == 200 and served.content == stored.read_bytes()
    probed = probe(stored)
    assert [s["codec"] for s in probed["streams"]] == ["h264", "aac"]
    assert 1.0 < probed["duration_s"] < 10.0  # a few seconds
