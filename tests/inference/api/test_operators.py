"""The operators' API: platform staff see and steer every organization's GPU work; nobody else
gets in.

Real: the views, the model's validation of pools, inference.services.drain, the database, the
audit log. Simulated: workers are rows as the orchestrator would have written them (no backend).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from rest_framework.test import APIClient

from inference import capacity, services
from inference.models import Worker, WorkerPool
from tenants.models import AuditEntry
from tests import factories
from tests.support import database_rows

BASE = "/api/v1/platform/inference/"
VALID_POOL = {
    "name": "render-l4",
    "pipeline": "render",
    "gpu_class": "l4",
    "gpus_per_worker": 1,
    "slots_per_worker": 2,
    "image": "registry.example/worker:2",
    "maximum": 4,
    "node_selector": {"ironbowl.io/gpu": "l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture
def staff(db) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=factories.UserFactory(is_staff=True))
    return client


def _worker(organization, pool, state="ready") -> Worker:
    return Worker.objects.create(
        organization=organization,
        pool=pool,
        backend_id=f"w-{uuid.uuid4().hex[:12]}",
        state=state,
        slots=pool.slots_per_worker,
        token_hash="x" * 64,
    )


ROUTES = [
    ("get", "pools/"),
    ("post", "pools/"),
    ("get", "pools/live-h100/"),
    ("patch", "pools/live-h100/"),
    ("get", "workers/"),
    ("get", "workers/{worker}/"),
    ("post", "workers/{worker}/drain/"),
    ("get", "workloads/"),
    ("get", "calendar/"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_nobody_but_staff_gets_in(method, path, org_a, owner_a, client_for, pool):
    worker = _worker(org_a, pool)
    url = BASE + path.format(worker=worker.id)
    _key, token = factories.make_api_key(org_a, scopes=["workloads.view", "workloads.manage"])
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    before = database_rows()

    anonymous = getattr(APIClient(), method)(url, {}, format="json")
    owner = getattr(client_for(owner_a), method)(url, {}, format="json")
    with_key = getattr(keyed, method)(url, {}, format="json")

    assert anonymous.status_code in (401, 403)
    assert owner.status_code == 403
    assert owner.json()["code"] == "permission_denied"
    assert "operators" in owner.json()["detail"]
    assert with_key.status_code == 403
    assert database_rows() == {
        **before,
        "tenants.ApiKey": database_rows()["tenants.ApiKey"],  # its last use is noted
    }


def test_staff_create_and_change_a_pool(staff):
    created = staff.post(BASE + "pools/", VALID_POOL, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["is_active"] is True
    changed = staff.patch(
        BASE + "pools/render-l4/", {"maximum": 8, "is_active": False}, format="json"
    )
    assert changed.status_code == 200, changed.content
    pool = WorkerPool.objects.get(name="render-l4")
    assert (pool.maximum, pool.is_active) == (8, False)
    names = [row["name"] for row in staff.get(BASE + "pools/").json()["results"]]
    assert names == ["render-l4"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gpu_class": "cpu"}, "gpus_per_worker"),  # a CPU pool requests no GPUs
        ({"gpus_per_worker": 0}, "gpus_per_worker"),
        ({"warm_minimum": 9}, "warm_minimum"),  # 4 workers x 2 slots
        ({"node_selector": {"gpu": 1}}, "node_selector"),
        ({"tolerations": [{"key": "a", "seconds": "1"}]}, "tolerations"),
        ({"name": "Not A Label"}, "name"),
        ({"slots_per_worker": 0}, "slots_per_worker"),
        ({"replicas": 3}, "replicas"),  # unknown field
    ],
)
def test_an_invalid_pool_is_refused_with_the_field_and_nothing_written(staff, body, field):
    before = database_rows()

    response = staff.post(BASE + "pools/", {**VALID_POOL, **body}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    assert database_rows() == before


def test_an_invalid_change_to_a_pool_writes_nothing(staff, pool):
    before = database_rows()

    response = staff.patch(BASE + "pools/live-h100/", {"warm_minimum": 13}, format="json")
    renamed = staff.patch(BASE + "pools/live-h100/", {"name": "other"}, format="json")
    taken = staff.post(BASE + "pools/", {**VALID_POOL, "name": "live-h100"}, format="json")

    assert response.status_code == 400
    assert "warm_minimum" in response.json()["fields"]
    assert renamed.status_code == 400
    assert taken.status_code == 400
    assert "name" in taken.json()["fields"]
    assert database_rows() == before


def test_staff_list_and_drain_workers_across_organizations(staff, org_a, org_b, pool):
    mine, theirs = _worker(org_a, pool), _worker(org_b, pool, state="starting")

    everyone = staff.get(BASE + "workers/").json()["results"]
    of_b = staff.get(BASE + "workers/", {"organization": org_b.slug}).json()["results"]
    starting = staff.get(BASE + "workers/", {"state": "starting"}).json()["results"]
    elsewhere = staff.get(BASE + "workers/", {"pool": "other"}).json()["results"]
    drained = staff.post(BASE + f"workers/{mine.id}/drain/")

    assert {row["id"] for row in everyone} == {str(mine.id), str(theirs.id)}
    assert [row["id"] for row in of_b] == [str(theirs.id)]
    assert of_b[0]["organization"] == org_b.slug
    assert "token_hash" not in of_b[0]
    assert [row["id"] for row in starting] == [str(theirs.id)]
    assert elsewhere == []
    assert drained.status_code == 200, drained.content
    assert drained.json()["state"] == "draining"
    entry = AuditEntry.objects.for_organization(org_a).get(action="worker.drain")
    assert (entry.before["state"], entry.after["state"]) == ("ready", "draining")
    assert "token_hash" not in entry.after


def test_draining_a_gone_worker_changes_nothing(staff, org_a, pool):
    worker = _worker(org_a, pool, state="gone")
    before = database_rows()

    response = staff.post(BASE + f"workers/{worker.id}/drain/")

    assert response.status_code == 200
    assert response.json()["state"] == "gone"
    assert database_rows() == before


def test_staff_see_every_organizations_workloads_with_reasons(staff, org_a, org_b, pool):
    a, _ = services.submit(org_a, kind="live", spec={})
    b, _ = services.submit(org_b, kind="live", spec={}, public_service=True)

    every = staff.get(BASE + "workloads/").json()["results"]
    top = staff.get(BASE + "workloads/", {"priority": 50}).json()["results"]
    of_a = staff.get(BASE + "workloads/", {"organization": org_a.slug, "state": "queued"})

    assert [row["id"] for row in every] == [str(b.id), str(a.id)]
    assert every[0]["reason_code"] == "queued" and every[0]["reason"]
    assert [row["id"] for row in top] == [str(b.id)]
    assert [row["id"] for row in of_a.json()["results"]] == [str(a.id)]
    # What the organization submitted (its script, its result) is not the operators' to read.
    assert not {"spec", "result", "idempotency_key"} & set(every[0])
    assert every[0]["organization"] == org_b.slug


def test_the_platform_calendar_counts_every_organization_against_capacity(
    staff, org_a, org_b, pool
):
    start = dt.datetime(2030, 5, 6, 9, tzinfo=dt.UTC)
    for organization in (org_a, org_b):
        capacity.reserve(
            organization,
            gpu_class="h100",
            slots=2,
            starts_at=start,
            ends_at=start + dt.timedelta(hours=1),
            holder="shift:x",
        )

    body = staff.get(
        BASE + "calendar/",
        {"start": "2030-05-06T09:00:00Z", "end": "2030-05-06T11:00:00Z", "step": 3600},
    ).json()

    (h100,) = body["classes"]  # the only class with an active pool
    assert h100["limit"] == 12
    assert [(s["reserved"], s["available"]) for s in h100["steps"]] == [(4, 8), (0, 12)]
    assert h100["steps"][0]["starts_at"] == "2030-05-06T09:00:00Z"
