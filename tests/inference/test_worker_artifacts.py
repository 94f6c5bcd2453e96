"""The worker protocol's file endpoints: a workload's inputs down, its outputs up.

Real: Django's URL routing, the body-limit middleware, the DRF views with the worker-token
authentication, the database, files under a MEDIA_ROOT of the test's own. Simulated: the worker
(requests are made by the test client with a worker's token) and the cluster (a fake backend
"starts" workers; other workers are rows with tokens of their own).

Tenancy: only the worker a workload is placed on may move its files. Another organization's
worker, another worker of the same organization and a made-up id all get the same 404, and
nothing is read or written.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.test import APIClient

from inference import artifacts, contracts, services
from inference.models import Worker, WorkerPool, WorkloadState
from inference.reconcile import Reconciler
from inference.tokens import hash_token, new_token
from tenants.errors import DomainError
from tests.inference.fakes import FakeBackend
from tests.support import database_rows

FOOTAGE = b"\x00\x00\x00\x18ftypmp42 pretend footage " * 1000


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def build_pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="build-cpu", pipeline="build", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=1, image="local", maximum=2, batch=True,
    )  # fmt: skip


def _stored(media: Path, organization, name: str = "footage.mp4", data: bytes = FOOTAGE) -> str:
    relative = f"uploads/{organization.pk}/{name}"
    (media / relative).parent.mkdir(parents=True, exist_ok=True)
    (media / relative).write_bytes(data)
    return relative


def _input(relative: str, data: bytes = FOOTAGE) -> dict:
    return artifacts.media_input(relative, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _worker_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _place(organization, pool, spec, kind="build"):
    """Submit a workload, let the reconcile pass start a worker and place it there; the
    workload and the client of that (registered) worker."""
    workload, _ = services.submit(organization, kind=kind, spec=spec, pool_name=pool.name)
    backend = FakeBackend()
    reconciler = Reconciler(backend)
    reconciler.run_once()
    (worker_id,) = backend.specs
    client = _worker_client(backend.specs[worker_id].token)
    registration = contracts.Registration(contracts.PROTOCOL_VERSION, pool.slots_per_worker, ())
    assert (
        client.post(contracts.REGISTER_PATH, registration.to_json(), format="json").status_code
        == 200
    )
    backend.set_phase(worker_id, "running")
    reconciler.run_once()
    workload.refresh_from_db()
    assert workload.state == WorkloadState.PLACED
    return workload, client


@pytest.fixture
def placed(org_a, build_pool, media):
    """A build workload naming stored footage, placed on a registered worker; that worker's
    client."""
    return _place(org_a, build_pool, {"inputs": {"footage": _input(_stored(media, org_a))}})


def _stranger(organization, pool) -> APIClient:
    """A ready worker of `organization` with a token of its own, never given the workload."""
    token = new_token()
    Worker.objects.create(
        organization=organization,
        backend_id=f"ibw-stranger-{uuid.uuid4().hex[:8]}",
        pool=pool,
        state="ready",
        slots=1,
        token_hash=hash_token(token),
    )
    return _worker_client(token)


def _download(client, workload_id, name="footage", attempt=1):
    path = contracts.INPUT_PATH.format(workload=workload_id, name=name)
    return client.get(f"{path}?attempt={attempt}")


def _upload(client, workload_id, name, data, attempt=1, sha256=None, **extra):
    path = contracts.OUTPUT_PATH.format(workload=workload_id, name=name)
    digest = hashlib.sha256(data).hexdigest() if sha256 is None else sha256
    return client.generic(
        "PUT",
        f"{path}?attempt={attempt}",
        data,
        content_type="application/octet-stream",
        HTTP_X_CONTENT_SHA256=digest,
        **extra,
    )


def _outputs(media: Path, workload) -> list[str]:
    folder = media / "inference" / str(workload.organization_id) / str(workload.pk)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- What the placed worker may do ----------------------------------------------------------------


def test_the_worker_downloads_the_input_its_workload_names(placed):
    workload, client = placed

    response = _download(client, workload.pk)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert b"".join(response.streaming_content) == FOOTAGE


def test_the_worker_uploads_an_output_and_a_retry_replaces_it(placed, media):
    workload, client = placed
    portrait = b"\x89PNG pretend portrait" * 500

    first = _upload(client, workload.pk, "portrait.png", portrait)
    again = _upload(client, workload.pk, "portrait.png", portrait)
    changed = _upload(client, workload.pk, "portrait.png", portrait + b"!")

    digest = hashlib.sha256(portrait).hexdigest()
    assert first.status_code == 200, first.content
    assert first.json() == {"name": "portrait.png", "sha256": digest, "bytes": len(portrait)}
    assert again.json() == first.json()
    assert changed.json()["sha256"] == hashlib.sha256(portrait + b"!").hexdigest()
    assert _outputs(media, workload) == ["1/portrait.png"]  # one file, of attempt 1
    stored = artifacts.output_file(workload, "portrait.png", changed.json()["sha256"])
    assert stored is not None and stored.read_bytes() == portrait + b"!"
    assert artifacts.output_file(workload, "portrait.png", digest) is None  # replaced


def test_discarding_outputs_removes_every_attempts_files(placed, media):
    workload, client = placed
    _upload(client, workload.pk, "voice.json", b"{}")

    artifacts.discard_outputs(workload)

    assert _outputs(media, workload) == []


# --- Refusals -------------------------------------------------------------------------------------


def _probes(workload_id, attempt=1):
    return {
        "input": lambda client: _download(client, workload_id, attempt=attempt),
        "output": lambda client: _upload(client, workload_id, "voice.json", b"{}", attempt=attempt),
    }


@pytest.mark.parametrize("endpoint", ["input", "output"])
@pytest.mark.parametrize("who", ["another organization's worker", "another worker", "made-up id"])
def test_only_the_worker_it_is_placed_on_may_move_its_files(
    placed, org_a, org_b, build_pool, media, endpoint, who
):
    workload, _client = placed
    random_id = uuid.uuid4()
    if who == "another organization's worker":
        client, target = _stranger(org_b, build_pool), workload.pk
    elif who == "another worker":
        client, target = _stranger(org_a, build_pool), workload.pk
    else:
        client, target = _client, random_id
    before = database_rows()

    response = _probes(target)[endpoint](client)
    unknown = _probes(random_id)[endpoint](client)

    assert response.status_code == unknown.status_code == 404
    assert response.json()["code"] == unknown.json()["code"] == "workload_not_found"
    # "Not yours" reads exactly like "does not exist".
    assert response.json()["detail"].replace(str(target), "ID") == unknown.json()["detail"].replace(
        str(random_id), "ID"
    )
    assert database_rows() == before
    assert _outputs(media, workload) == []


@pytest.mark.parametrize("endpoint", ["input", "output"])
def test_an_attempt_the_workload_moved_on_from_is_a_conflict_and_changes_nothing(
    placed, media, endpoint
):
    workload, client = placed
    services.cancel(workload, "Stopped by an operator.")

    response = _probes(workload.pk)[endpoint](client)
    other_attempt = _probes(workload.pk, attempt=2)[endpoint](client)

    assert response.status_code == other_attempt.status_code == 409
    assert response.json()["code"] == "stale_attempt"
    assert "stop working on it" in response.json()["detail"]
    assert _outputs(media, workload) == []


@pytest.mark.parametrize("attempt", ["", "0", "one", "-1"])
def test_the_attempt_must_be_named(placed, attempt):
    workload, client = placed
    path = contracts.INPUT_PATH.format(workload=workload.pk, name="footage")

    response = client.get(f"{path}?attempt={attempt}")

    assert response.status_code == 400
    assert response.json()["code"] == "attempt_required"


def test_a_worker_token_is_required(placed, api_a):
    workload, _client = placed

    assert _download(APIClient(), workload.pk).status_code == 401
    assert _download(api_a, workload.pk).status_code in (401, 403)  # a member is no worker


def test_an_input_the_spec_does_not_name_is_not_found(placed):
    workload, client = placed

    response = _download(client, workload.pk, name="consent-clip")

    assert response.status_code == 404
    assert response.json()["code"] == "input_not_found"


@pytest.mark.parametrize(
    "media_path",
    [
        "uploads/{other}/footage.mp4",  # another organization's file
        "uploads/{mine}/../{other}/footage.mp4",  # climbing out of the organization's folder
        "../secret_key",
        "uploads/{mine}/missing.mp4",  # gone from storage
    ],
)
def test_a_spec_cannot_make_a_worker_read_files_outside_its_organization(
    org_a, org_b, build_pool, media, media_path
):
    """Members submit workloads with specs of their own: an input naming a file that is not the
    organization's own (or not there) is "not found", and its bytes are never served."""
    _stored(media, org_b, data=b"the other organization's footage")
    (media / "secret_key").write_text("not for workers")
    relative = media_path.format(mine=org_a.pk, other=org_b.pk)
    spec = {"inputs": {"footage": {"media": relative, "sha256": "", "bytes": 1}}}
    workload, client = _place(org_a, build_pool, spec)

    response = _download(client, workload.pk)

    assert response.status_code == 404
    assert response.json()["code"] == "input_not_found"


@pytest.mark.parametrize(
    ("name", "data", "sha256", "code"),
    [
        ("voice.json", b"{}", "0" * 64, "sha256_mismatch"),
        ("voice.json", b"{}", "", "sha256_required"),
        ("voice.json", b"{}", "not-a-digest", "sha256_required"),
        ("..", b"{}", None, "invalid_name"),
        (".hidden", b"{}", None, "invalid_name"),
        ("a" * 101, b"{}", None, "invalid_name"),
    ],
)
def test_a_bad_upload_is_refused_and_nothing_is_stored(placed, media, name, data, sha256, code):
    workload, client = placed

    response = _upload(client, workload.pk, name, data, sha256=sha256)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert _outputs(media, workload) == []


def test_an_upload_cut_short_is_refused(placed, media):
    """A connection that drops mid-body gives fewer bytes than announced (the service is fed a
    short stream directly: the test client cannot send less than it announces)."""
    workload, _client = placed
    worker = Worker.objects.unscoped_dangerously().get(pk=workload.worker_id)
    digest = hashlib.sha256(b"{}").hexdigest()

    with pytest.raises(DomainError) as refused:
        artifacts.store_output(worker, workload, 1, "voice.json", io.BytesIO(b"{}"), 10, digest)

    assert refused.value.code == "incomplete_output"
    assert _outputs(media, workload) == []


def test_outputs_over_the_size_limit_are_refused_before_they_are_read(placed, media, monkeypatch):
    workload, client = placed
    too_large = str(artifacts.OUTPUT_MAX_BYTES + 1)

    announced = _upload(client, workload.pk, "voice.json", b"{}", CONTENT_LENGTH=too_large)
    monkeypatch.setattr(artifacts, "OUTPUT_MAX_BYTES", 1)  # the endpoint's own bound
    checked = _upload(client, workload.pk, "voice.json", b"{}")

    assert announced.status_code == 413
    assert announced.json()["code"] == "body_too_large"  # the middleware, before any read
    assert checked.status_code == 413
    assert checked.json()["code"] == "output_too_large"
    assert _outputs(media, workload) == []


def test_an_attempt_delivers_a_bounded_number_of_outputs(placed, media, monkeypatch):
    workload, client = placed
    monkeypatch.setattr(artifacts, "OUTPUTS_PER_ATTEMPT", 2)
    for name in ("a.json", "b.json"):
        assert _upload(client, workload.pk, name, b"{}").status_code == 200

    third = _upload(client, workload.pk, "c.json", b"{}")
    replaced = _upload(client, workload.pk, "a.json", b"[]")

    assert third.status_code == 400
    assert third.json()["code"] == "too_many_outputs"
    assert replaced.status_code == 200
    assert _outputs(media, workload) == ["1/a.json", "1/b.json"]


def test_a_workload_kind_other_than_build_moves_files_the_same_way(org_a, media, pool):
    """The endpoints belong to the protocol, not to builds: any placed workload may use them."""
    spec = {"inputs": {"script": _input(_stored(media, org_a, "script.txt", b"hello"), b"hello")}}
    workload, client = _place(org_a, pool, spec, kind="live")

    response = _download(client, workload.pk, name="script")

    assert b"".join(response.streaming_content) == b"hello"


def test_under_asgi_the_input_is_streamed_block_by_block(placed):
    """Production serves ASGI. There the input goes out through an asynchronous iterator:
    Django reads a synchronous one whole into memory first, and says so with a warning (which
    fails this test: warnings are errors here)."""
    workload, client = placed
    path = contracts.INPUT_PATH.format(workload=workload.pk, name="footage")
    token = client._credentials["HTTP_AUTHORIZATION"]

    async def fetch():
        response = await AsyncClient().get(
            path, query_params={"attempt": "1"}, headers={"authorization": token}
        )
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(fetch)()

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(FOOTAGE))
    assert b"".join(chunks) == FOOTAGE
