"""Credentials named by reference in a workload's spec: stored and shown as the reference,
resolved only in the assignment its worker receives, only where the platform put them (a live
room's push URL in a stream scheduling submitted); a client of the API cannot name one.

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
from tests.support import database_rows

STREAM_KEY = "live_8842-secret-key-of-the-room"


def _live_room(organization, **fields):
    return StationFactory(
        organization=organization,
        kind="live_room",
        push_url="rtmp://push.example.com/live",
        stream_key_encrypted=secrets.encrypt(STREAM_KEY),
        **fields,
    )


def _submit(organization, pool, station, *, platform=True, **extra) -> Workload:
    spec = {
        "segments": [{"text": "Hello"}],
        "outputs": {"rtmp_url": secrets.rtmp_reference(station)},
        **extra,
    }
    workload, _ = services.submit(
        organization, kind="live", spec=spec, pool_name=pool.name, platform=platform
    )
    return workload


def _assigned_spec(workload: Workload) -> dict:
    worker, _token = place_on_new_worker(FakeBackend(), workload, "live")
    given = worker.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 4}, format="json").json()
    (assignment,) = given["assignments"]
    return assignment["spec"]


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


def test_a_reference_never_reaches_another_organizations_station(org_a, org_b, pool):
    foreign = _live_room(org_b)
    with pytest.raises(LookupError, match="names no station of this organization"):
        spec_secrets.value_of(org_a, secrets.rtmp_reference(foreign)["$secret"])
    with pytest.raises(LookupError):
        spec_secrets.value_of(org_a, "station-rtmp:not-a-uuid")
    with pytest.raises(LookupError):
        spec_secrets.value_of(org_a, "bank-account:1")
    # Anything that is not exactly a reference is left as it is.
    plain = {"rtmp_url": {"$secret": "a", "other": 1}}
    workload = _submit(org_a, pool, _live_room(org_a), outputs=plain)
    assert spec_secrets.for_worker(workload)["outputs"] == plain


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("render", {"text": {"$secret": "station-rtmp:{station}"}, "portrait": "reference"}),
        ("live", {"segments": [{"text": "Hi"}], "outputs": {"rtmp_url": {"$secret": "x"}}}),
        ("render", {"text": "Hi", "deep": [{"inside": {"$secret": "station-rtmp:{station}"}}]}),
        ("session", {"language": "en", "extra": {"$secret": "a", "with": "more keys"}}),
    ],
)
def test_a_spec_sent_to_the_api_may_not_name_a_credential(org_a, pool, api_a, kind, spec):
    """The stream key would come back spoken in a render, or in a failure's reason."""
    station = _live_room(org_a)
    text = json.dumps(spec).replace("{station}", str(station.pk))
    before = database_rows()
    response = api_a.post(
        f"/api/v1/orgs/{org_a.slug}/workloads/",
        {"kind": kind, "spec": json.loads(text)},
        format="json",
    )
    assert response.status_code == 400, response.content
    (error,) = response.json()["fields"]["spec"]
    assert error["code"] == "secret_reference"
    assert "$secret" in error["message"]
    assert database_rows() == before


def test_a_workload_the_platform_did_not_submit_keeps_its_references(org_a, pool):
    """As the API submits (were a reference to slip past its check)."""
    station = _live_room(org_a)
    given = _assigned_spec(_submit(org_a, pool, station, platform=False))
    assert given["outputs"]["rtmp_url"] == secrets.rtmp_reference(station)
    assert STREAM_KEY not in json.dumps(given)


def test_only_the_platforms_live_push_url_is_resolved(org_a, pool):
    station = _live_room(org_a)
    reference = secrets.rtmp_reference(station)
    platform_made = _submit(
        org_a, pool, station, segments=[{"text": reference}], elsewhere={"url": reference}
    )
    given = _assigned_spec(platform_made)
    assert given["outputs"]["rtmp_url"] == f"rtmp://push.example.com/live/{STREAM_KEY}"
    assert given["segments"] == [{"text": reference}]
    assert given["elsewhere"] == {"url": reference}
