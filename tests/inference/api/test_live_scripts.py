"""Updating a live workload's script through the API, and its delivery in heartbeat replies.

Real: the views, serializers, inference.services, the worker protocol's heartbeat view, the
database and the audit log. Simulated: no orchestrator runs, so a workload stays queued unless a
test moves it (through the lifecycle's own `transition`, or a fake backend's worker registering
over HTTP as a real worker would); the worker's side of the heartbeat is the test client.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from inference import contracts, services
from inference.lifecycle import transition
from inference.models import WorkerPool, Workload, WorkloadState
from inference.pipelines.script import MAX_SEGMENTS, parse_script
from inference.pipelines.types import StageError
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker
from tests.support import database_rows

REPO = Path(__file__).resolve().parents[3]
FIRST = [{"text": "欢迎来到直播间。", "language": "zh"}]
SECOND = [
    {"text": "Flash sale at eight tonight.", "language": "en"},
    {"text": "今晚八点限时优惠。"},  # the language defaults to Mandarin, as the pipeline's does
]


def _url(org, workload, rest: str = "script/") -> str:
    return f"/api/v1/orgs/{org.slug}/workloads/{workload.id}/{rest}"


def _live(org, pool, **spec) -> Workload:
    workload, _ = services.submit(
        org, kind="live", spec={"segments": FIRST, "duration_s": 3600, **spec}, pool_name=pool.name
    )
    return workload


def _update(client, org, workload, segments, **extra):
    return client.post(_url(org, workload), {"segments": segments, **extra}, format="json")


def test_an_operator_replaces_the_script_and_its_version_goes_up(org_a, member_factory, pool):
    operator = member_factory(org_a, Role.OPERATOR)
    client = APIClient()
    client.force_authenticate(user=operator.user)
    workload = _live(org_a, pool, station="lobby")

    response = _update(client, org_a, workload, SECOND)

    assert response.status_code == 200, response.content
    spec = response.json()["spec"]
    assert spec["script_version"] == 2  # a spec without a version holds version 1
    assert spec["segments"] == [
        {"text": "Flash sale at eight tonight.", "language": "en"},
        {"text": "今晚八点限时优惠。", "language": "zh"},
    ]
    assert spec["station"] == "lobby" and spec["duration_s"] == 3600  # the rest is kept
    entry = AuditEntry.objects.for_organization(org_a).get(action="workload.script")
    assert entry.actor_label == operator.user.email
    assert entry.before["spec"]["segments"] == FIRST
    assert entry.after["spec"]["script_version"] == 2
    workload.refresh_from_db()
    assert workload.spec == spec


def test_sending_the_same_script_again_changes_nothing(org_a, api_a, pool):
    workload = _live(org_a, pool)
    first = _update(api_a, org_a, workload, SECOND)
    before = database_rows()

    again = _update(api_a, org_a, workload, SECOND)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["spec"] == first.json()["spec"]
    assert database_rows() == before  # no new version, no second audit entry


def test_the_script_it_already_has_changes_nothing_either(org_a, api_a, pool):
    workload = _live(org_a, pool, script_version=7)
    before = database_rows()

    response = _update(api_a, org_a, workload, FIRST)

    assert response.status_code == 200
    assert response.json()["spec"]["script_version"] == 7
    assert database_rows() == before


def test_a_base_version_guards_against_overwriting_someone_elses_update(org_a, api_a, pool):
    workload = _live(org_a, pool)
    assert _update(api_a, org_a, workload, SECOND, base_version=1).status_code == 200
    before = database_rows()

    late = _update(
        api_a, org_a, workload, [{"text": "Stale edit.", "language": "en"}], base_version=1
    )
    retried = _update(api_a, org_a, workload, SECOND, base_version=1)  # the first, retried

    assert late.status_code == 409, late.content
    assert late.json()["code"] == "script_changed"
    assert "version 2, not 1" in late.json()["detail"]
    assert "base_version" in late.json()["fields"]
    assert retried.status_code == 200 and retried.json()["spec"]["script_version"] == 2
    assert database_rows() == before


def test_a_running_workloads_script_can_change(org_a, api_a, pool):
    workload = _live(org_a, pool)
    for state in (WorkloadState.ADMITTED, WorkloadState.PLACED, WorkloadState.RUNNING):
        transition(workload, state, state, "Moved by the test.")

    response = _update(api_a, org_a, workload, SECOND)

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "running"
    assert response.json()["spec"]["script_version"] == 2


@pytest.mark.parametrize(
    "state", [WorkloadState.SUCCEEDED, WorkloadState.FAILED, WorkloadState.CANCELLED]
)
def test_a_finished_workloads_script_cannot_change(org_a, api_a, pool, state):
    workload = _live(org_a, pool)
    transition(workload, state, "done", "Ended by the test.")
    before = database_rows()

    response = _update(api_a, org_a, workload, SECOND)

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "workload_ended"
    assert "has ended" in response.json()["detail"]
    assert database_rows() == before


def test_only_a_live_workload_has_a_script(org_a, api_a):
    render_pool = WorkerPool.objects.create(
        name="render-cpu", pipeline="render", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=1, image="local", maximum=1, batch=True,
    )  # fmt: skip
    workload, _ = services.submit(
        org_a, kind="render", spec={"text": "Hello."}, pool_name=render_pool.name
    )
    before = database_rows()

    response = _update(api_a, org_a, workload, SECOND)

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "not_live"
    assert "render workload" in response.json()["detail"]
    assert database_rows() == before


# Each refused by the live pipeline's own `parse_script` too: the API holds the same rules.
BAD_SCRIPTS = [
    pytest.param([], id="no segments"),
    pytest.param([{"text": "", "language": "en"}], id="empty text"),
    pytest.param([{"text": "   ", "language": "en"}], id="blank text"),
    pytest.param([{"language": "en"}], id="no text"),
    pytest.param([{"text": "Hola.", "language": "es"}], id="unsupported language"),
    pytest.param(["just a string"], id="not an object"),
    pytest.param([{"text": 42, "language": "en"}], id="text not a string"),
    pytest.param([{"text": "Hi.", "language": "en"}] * (MAX_SEGMENTS + 1), id="too many"),
    pytest.param("Welcome!", id="not a list"),
]


@pytest.mark.parametrize("segments", BAD_SCRIPTS)
def test_a_script_the_pipeline_would_refuse_is_refused_and_nothing_changes(
    org_a, api_a, pool, segments
):
    workload = _live(org_a, pool)
    with pytest.raises(StageError):
        parse_script(2, segments)
    before = database_rows()

    response = _update(api_a, org_a, workload, segments)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert "segments" in response.json()["fields"], response.json()
    assert database_rows() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "segments"),
        ({"segments": SECOND, "version": 9}, "version"),  # the server numbers versions
        ({"segments": [{"text": "Hi.", "language": "en", "voice": "x"}]}, "segments"),
        ({"segments": SECOND, "base_version": -1}, "base_version"),
    ],
)
def test_bad_fields_are_refused_with_the_field(org_a, api_a, pool, body, field):
    workload = _live(org_a, pool)
    before = database_rows()

    response = api_a.post(_url(org_a, workload), body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    assert database_rows() == before


def test_a_script_that_makes_the_spec_too_large_is_refused(org_a, api_a, pool):
    workload = _live(org_a, pool, notes="x" * (services.SPEC_MAX_BYTES - 1000))
    before = database_rows()

    response = _update(api_a, org_a, workload, [{"text": "y" * 2000, "language": "en"}])

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "spec_too_large"
    assert "segments" in response.json()["fields"]
    assert database_rows() == before


def test_another_organizations_workload_is_not_there(org_a, org_b, api_b, pool):
    workload = _live(org_a, pool)
    before = database_rows()

    response = _update(api_b, org_b, workload, SECOND)

    assert response.status_code == 404
    assert database_rows() == before


# -- delivery: the heartbeat's reply -------------------------------------------------------


@pytest.fixture
def on_worker(org_a, pool):
    """A live workload placed on a worker that registered over HTTP, and that worker's client."""
    workload = _live(org_a, pool)
    client, _token = place_on_new_worker(FakeBackend(), workload, "live")
    return workload, client


def _beat(client, running, scripts=None):
    body = contracts.Heartbeat(1, tuple(str(w.id) for w in running), scripts or {}).to_json()
    response = client.post(contracts.HEARTBEAT_PATH, body, format="json")
    assert response.status_code == 200, response.content
    return contracts.HeartbeatReply.from_json(response.json())


def test_a_worker_holding_an_older_script_gets_the_new_one_in_the_heartbeat_reply(
    org_a, api_a, on_worker
):
    workload, worker = on_worker
    key = str(workload.id)
    assert _beat(worker, [workload], {key: 1}).scripts == {}  # nothing newer yet

    assert _update(api_a, org_a, workload, SECOND).status_code == 200

    reply = _beat(worker, [workload], {key: 1})
    assert reply.scripts == {
        key: contracts.ScriptUpdate(
            2,
            (
                {"text": "Flash sale at eight tonight.", "language": "en"},
                {"text": "今晚八点限时优惠。", "language": "zh"},
            ),
        )
    }
    assert _beat(worker, [workload], {key: 2}).scripts == {}  # it holds it now
    # A worker that says nothing of scripts (one from before script updates) gets none.
    assert _beat(worker, [workload]).scripts == {}


def test_a_worker_gets_no_script_of_work_that_is_not_its_own(org_a, org_b, on_worker, pool):
    _workload, worker = on_worker
    queued = _live(org_a, pool)  # not placed on this worker
    foreign = _live(org_b, pool)
    for other in (queued, foreign):
        services.update_script(other, SECOND)
    before = database_rows()

    reply = _beat(worker, [queued, foreign], {str(queued.id): 0, str(foreign.id): 0})

    assert reply.scripts == {}
    assert reply.cancel == (str(queued.id), str(foreign.id))  # and it is told to stop them
    rows = database_rows()
    assert {k: v for k, v in rows.items() if k != "inference.Worker"} == {
        k: v for k, v in before.items() if k != "inference.Worker"
    }  # only the heartbeat's own time was written


@pytest.mark.parametrize(
    "scripts", [{"w": -1}, {"w": "two"}, [1, 2], {f"w{n}": 1 for n in range(65)}]
)
def test_a_malformed_scripts_field_is_refused(on_worker, scripts):
    workload, worker = on_worker
    body = {"slots_used": 1, "running": [str(workload.id)], "scripts": scripts}
    response = worker.post(contracts.HEARTBEAT_PATH, body, format="json")
    assert response.status_code == 400, response.content


def test_checking_a_script_needs_no_torch():
    """The control plane's image has no torch (the `inference` extra is the workers'): the API
    and the services check scripts with the pipeline's torch-free rules module."""
    code = (
        "import sys, django\n"
        "django.setup()\n"
        "import inference.api.workloads, inference.api.worker, inference.services\n"
        "print('torch' in sys.modules, 'inference.pipelines.script' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ironbowl.settings",
        "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)]),
    }
    env.pop("PYTEST_VERSION", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
