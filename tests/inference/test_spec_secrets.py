"""Credentials named by reference in a workload's spec: stored and shown as the reference,
resolved only in the assignment its worker receives.

Real: the database, the workloads API, the worker protocol's HTTP views, Fernet encryption of
the station's stream key. Simulated: the worker (the test client asks for its assignments) and
the cluster (the fake backend).
"""

from __future__ import annotations

import json

import pytest

from inference import contracts, services, spec_secrets
from inference.models import Workload, WorkloadState
from scheduling import secrets
from tests.factories import StationFactory
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker

STREAM_KEY = "live_8842-secret-key-of-the-room"


def _live_room(organization, **fields):
    return StationFactory(
        organization=organization,
        kind="live_room",
        push_url="rtmp://push.example.com/live",
        stream_key_encrypted=secrets.encrypt(STREAM_KEY),
        **fields,
    )


def _submit(organization, pool, station) -> Workload:
    spec = {
        "segments": [{"text": "Hello"}],
        "outputs": {"rtmp_url": secrets.rtmp_reference(station)},
    }
    workload, _ = services.submit(organization, kind="live", spec=spec, pool_name=pool.name)
    return workload


def test_the_key_is_stored_and_shown_as_a_reference_and_given_to_the_worker_only(
    org_a, pool, api_a
):
    station = _live_room(org_a)
    workload = _submit(org_a, pool, station)
    assert STREAM_KEY not in json.dumps(workload.spec)
    shown = api_a.get(f"/api/v1/orgs/{org_a.slug}/workloads/{workload.pk}/")
    assert shown.status_code == 200
    assert STREAM_KEY not in shown.content.decode()
    assert shown.json()["spec"]["outputs"]["rtmp_url"] == {"$secret": f"station-rtmp:{station.pk}"}

    worker, _token = place_on_new_worker(FakeBackend(), workload, "live")
    given = worker.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 4}, format="json").json()
    (assignment,) = given["assignments"]
    assert assignment["spec"]["outputs"]["rtmp_url"] == (
        f"rtmp://push.example.com/live/{STREAM_KEY}"
    )
    workload.refresh_from_db()
    assert STREAM_KEY not in json.dumps(workload.spec)  # resolving stored nothing


def test_a_key_that_cannot_be_decrypted_fails_the_workload_with_what_to_do(org_a, pool):
    station = _live_room(org_a)
    workload = _submit(org_a, pool, station)
    worker, _token = place_on_new_worker(FakeBackend(), workload, "live")
    station.stream_key_encrypted = "gAAAAAB-not-a-token-of-any-key"
    station.save()
    given = worker.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 4}, format="json").json()
    assert given["assignments"] == []
    workload.refresh_from_db()
    assert workload.state == WorkloadState.FAILED
    assert workload.reason_code == "secret_unavailable"
    assert "cannot be decrypted" in workload.reason


def test_a_reference_never_reaches_another_organizations_station(org_a, org_b):
    foreign = _live_room(org_b)
    with pytest.raises(LookupError, match="names no station of this organization"):
        spec_secrets.resolved({"x": secrets.rtmp_reference(foreign)}, org_a)
    with pytest.raises(LookupError):
        spec_secrets.resolved(spec_secrets.reference("station-rtmp:not-a-uuid"), org_a)
    with pytest.raises(LookupError):
        spec_secrets.resolved(spec_secrets.reference("bank-account:1"), org_a)
    # Anything that is not exactly a reference is left as it is.
    plain = {"outputs": {"rtmp_url": "rtmp://x/y", "$secret": "a", "other": 1}, "list": [1]}
    assert spec_secrets.resolved(plain, org_a) == plain
