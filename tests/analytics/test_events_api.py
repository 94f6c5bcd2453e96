"""The event intake over HTTP: formats, partial batches, retries, limits, scopes and tenancy.

Real: the whole Django stack (routing, API-key authentication, throttles, parsers), the
ingestion service and the database the suite runs on (SQLite locally, PostgreSQL with its
partitioned table and COPY in CI). Nothing is simulated; one test drives the batch parser
without HTTP, for a body that no Content-Length announced.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import uuid
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.test import APIClient

from ironbowl.analytics import partitions
from ironbowl.analytics.api.events import JsonBatchParser, NdjsonBatchParser
from ironbowl.analytics.models import Event, RollupMark
from tenants.roles import Role
from tests import factories
from tests.scheduling import duty_world


@pytest.fixture(autouse=True)
def _partitions_forgotten():
    # A test's rollback drops the partitions it made; the process must not believe in them.
    partitions.forget()
    yield
    partitions.forget()


def key_client(organization, scopes=("events.write",)) -> APIClient:
    _key, token = factories.make_api_key(organization, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def post(client: APIClient, org, body: Any, **extra: Any):
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    content_type = extra.pop("content_type", "application/json")
    return client.post(f"/api/v1/orgs/{org.slug}/events/", body, content_type=content_type, **extra)


def at(minutes_ago: float = 1) -> str:
    return (timezone.now() - dt.timedelta(minutes=minutes_ago)).isoformat()


def visits(n: int, prefix: str = "v", **fields: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "type": "visit", "occurred_at": at(i % 50), **fields}
        for i in range(n)
    ]


def stored(org) -> int:
    return Event.objects.for_organization(org).count()


def test_a_batch_of_every_type_is_stored_and_its_hours_marked(org_a):
    """Each event type with its fields is accepted and kept as sent (times in UTC)."""
    batch = [
        {"id": "a1", "type": "visit", "occurred_at": at(), "viewer": "u1", "session": "s1"},
        {"id": "a2", "type": "view", "occurred_at": at(), "value": 1280},
        {"id": "a3", "type": "interaction", "occurred_at": at(), "viewer": "u1"},
        {"id": "a4", "type": "comment", "occurred_at": at(), "properties": {"len": 12}},
        {"id": "a5", "type": "handoff", "occurred_at": at(), "session": "s1"},
        {"id": "a6", "type": "session_start", "occurred_at": at(), "session": "s1"},
        {"id": "a7", "type": "session_end", "occurred_at": at(), "session": "s1", "value": 95},
        {"id": "a8", "type": "custom", "occurred_at": at(), "name": "coupon.claimed", "value": 3},
    ]
    response = post(key_client(org_a), org_a, batch)
    assert response.status_code == 200, response.json()
    assert response.json() == {"accepted": 8, "duplicates": 0, "rejected": 0, "errors": []}
    rows = {e.client_event_id: e for e in Event.objects.for_organization(org_a)}
    assert (
        rows["a2"].value == 1280 and rows["a7"].value == 95 and rows["a8"].name == "coupon.claimed"
    )
    assert rows["a4"].properties == {"len": 12}
    assert RollupMark.objects.for_organization(org_a).exists()


def test_ndjson_and_gzip_are_read(org_a):
    """NDJSON lines and a gzip-compressed body (Content-Encoding) carry the same events."""
    lines = "\n".join(json.dumps(e) for e in visits(30)) + "\n"
    response = post(
        key_client(org_a),
        org_a,
        gzip.compress(lines.encode()),
        content_type="application/x-ndjson",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == 30 and stored(org_a) == 30


def test_a_batch_with_bad_events_keeps_the_good_and_names_every_bad_one(org_a):
    """Bad events are reported by index, code and field; the good ones are stored."""
    batch = [
        *visits(2),
        {"id": "b1", "type": "teleport", "occurred_at": at()},
        {"id": "b2", "type": "view", "occurred_at": at()},
        {"id": "b3", "type": "visit", "occurred_at": "2026-11-26T10:00:00"},
        {"id": "b4", "type": "visit", "occurred_at": at(), "value": 3},
        {"id": "has space", "type": "visit", "occurred_at": at()},
        {"id": "b6", "type": "visit", "occurred_at": at(-60)},
        {"id": "b7", "type": "visit", "occurred_at": at(60 * 24 * 40)},
        {"id": "b8", "type": "view", "occurred_at": at(), "value": 2.5},
        {"id": "b9", "type": "visit", "occurred_at": at(), "station": "not-a-uuid"},
        "not an object",
    ]
    response = post(key_client(org_a), org_a, batch)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 10)
    assert [(e["index"], e["code"], e["field"]) for e in body["errors"]] == [
        (2, "unknown_type", "type"),
        (3, "required", "value"),
        (4, "naive_time", "occurred_at"),
        (5, "unexpected_field", "value"),
        (6, "invalid_id", "id"),
        (7, "in_future", "occurred_at"),
        (8, "too_old", "occurred_at"),
        (9, "invalid", "value"),
        (10, "invalid_id", "station"),
        (11, "not_an_object", ""),
    ]
    assert stored(org_a) == 2


def test_a_batch_where_every_event_is_bad_answers_422_and_stores_nothing(org_a):
    response = post(key_client(org_a), org_a, [{"id": "x", "type": "visit"}])
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "required"
    assert stored(org_a) == 0 and not RollupMark.objects.for_organization(org_a).exists()


def test_a_replayed_batch_is_counted_once(org_a):
    """At-least-once delivery: the retry of a whole batch, and a repeat inside one batch."""
    client, batch = key_client(org_a), visits(50)
    first = post(client, org_a, batch).json()
    again = post(client, org_a, batch + batch[:5]).json()
    assert (first["accepted"], first["duplicates"]) == (50, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 55)
    assert stored(org_a) == 50


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b'{"visits": []}', {}, 400, "not_a_batch"),
        (b"\xff\xfe[]", {}, 400, "not_utf8"),
        (b"[]", {"HTTP_CONTENT_ENCODING": "br"}, 400, "unsupported_encoding"),
        (b"not gzip", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "invalid_gzip"),
    ],
)
def test_unreadable_batches_are_refused_with_a_reason(org_a, body, headers, status, code):
    response = post(key_client(org_a), org_a, body, **headers)
    assert (response.status_code, response.json()["code"]) == (status, code)


@override_settings(ANALYTICS_MAX_BATCH_EVENTS=10)
def test_too_many_events_are_refused_whole(org_a):
    response = post(key_client(org_a), org_a, visits(11))
    assert (response.status_code, response.json()["code"]) == (413, "batch_too_large")
    assert stored(org_a) == 0


@override_settings(ANALYTICS_MAX_INFLATED_BYTES=10_000)
def test_a_gzip_bomb_is_refused_before_it_is_inflated_in_full(org_a):
    """A small gzip body that would inflate far past the limit."""
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    response = post(key_client(org_a), org_a, bomb, HTTP_CONTENT_ENCODING="gzip")
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


@override_settings(ANALYTICS_MAX_BODY_BYTES=1000)
def test_a_body_over_the_limit_is_refused_from_its_length(org_a):
    response = post(key_client(org_a), org_a, visits(20))
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")
    assert stored(org_a) == 0


@override_settings(ANALYTICS_MAX_BODY_BYTES=1000)
@pytest.mark.parametrize("parser", [JsonBatchParser, NdjsonBatchParser])
def test_a_body_over_the_limit_is_refused_as_read_with_the_same_answer(org_a, parser):
    """Bytes that no Content-Length announced are counted as they are read: past the limit the
    answer is the one the length check gives, 413 `body_too_large`, not a 400."""
    body = "\n".join(json.dumps(event) for event in visits(20)).encode()
    assert len(body) > 1000
    with pytest.raises(APIException) as refused:
        parser().parse(io.BytesIO(body), parser.media_type, {})
    assert (refused.value.status_code, refused.value.get_codes()) == (413, "body_too_large")


def test_a_post_without_a_body_is_refused_not_taken_for_an_empty_batch(org_a):
    """No body at all (no Content-Length): DRF runs no parser; the intake still says why."""
    response = post(key_client(org_a), org_a, b"")
    assert (response.status_code, response.json()["code"]) == (400, "not_a_batch")
    assert post(key_client(org_a), org_a, []).json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
    }
    assert stored(org_a) == 0


def test_batches_are_rate_limited_per_key(org_a, settings):
    """The events rate counts batches per key; another key of the same organization still goes."""
    _rates(settings, events="2/minute")
    client = key_client(org_a)
    answers = [post(client, org_a, visits(1, prefix=f"r{n}-")).status_code for n in range(3)]
    assert answers == [200, 200, 429]
    assert post(key_client(org_a), org_a, visits(1, prefix="other")).status_code == 200


def _rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_events_do_not_use_up_the_organizations_api_budget(
    org_a, settings, member_factory, client_for
):
    """Many room keys sending batches past the organization's API rate: their batches are
    counted in a bucket of their own, so the console's and analysts' calls still go, and so do
    the batches once the rest of the API has used up its budget."""
    _rates(settings, organization="3/minute", events="100/minute")
    rooms = [key_client(org_a) for _ in range(5)]
    batches = [
        post(room, org_a, visits(1, prefix=f"k{n}-")).status_code for n, room in enumerate(rooms)
    ]
    assert batches == [200] * 5 and stored(org_a) == 5
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    stations = f"/api/v1/orgs/{org_a.slug}/stations/"
    assert [analyst.get(stations).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert post(rooms[0], org_a, visits(1, prefix="after")).status_code == 200


def test_batches_of_all_the_organizations_keys_share_one_events_rate(org_a, org_b, settings):
    """THROTTLE_EVENTS_ORGANIZATION_RATE bounds the organization's keys together; another
    organization has its own bucket."""
    _rates(settings, events_organization="2/minute", events="100/minute")
    answers = [
        post(key_client(org_a), org_a, visits(1, prefix=f"o{n}-")).status_code for n in range(3)
    ]
    assert answers == [200, 200, 429] and stored(org_a) == 2
    refused = post(key_client(org_a), org_a, visits(1, prefix="late"))
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert post(key_client(org_b), org_b, visits(1)).status_code == 200


def test_only_callers_with_the_events_scope_may_send(org_a, member_factory, client_for):
    """A key without `events.write` and an analyst are refused; an owner may send to try."""
    assert post(key_client(org_a, ["organization.view"]), org_a, visits(1)).status_code == 403
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    assert post(analyst, org_a, visits(1)).status_code == 403
    owner = client_for(member_factory(org_a, Role.OWNER))
    assert post(owner, org_a, visits(1)).status_code == 200
    assert post(APIClient(), org_a, visits(1)).status_code == 401


def test_another_organizations_key_and_ids_reveal_nothing(org_a, org_b):
    """A key of B at A's URL is 404 like a missing organization; an event of A naming B's
    station gets exactly the answer a made-up station gets, and nothing reaches B."""
    assert post(key_client(org_b), org_a, visits(1)).status_code == 404
    foreign = factories.StationFactory(organization=org_b)
    batch = [
        {"id": "f1", "type": "visit", "occurred_at": at(), "station": str(foreign.pk)},
        {"id": "f2", "type": "visit", "occurred_at": at(), "station": str(uuid.uuid4())},
    ]
    errors = post(key_client(org_a), org_a, batch).json()["errors"]
    assert [(e["code"], e["message"]) for e in errors[:1]] == [
        (e["code"], e["message"]) for e in errors[1:]
    ]
    assert errors[0]["code"] == "unknown_station"
    assert stored(org_a) == 0 and stored(org_b) == 0


def test_events_are_attributed_once_from_the_shift_on_air(org_a):
    """A live room's events name only the station: the hire on duty there, and the shift, are
    found from the shift covering each event's time; a shift id gives its station and hire."""
    now = timezone.now()
    shift = duty_world.live_shift(org_a, now - dt.timedelta(minutes=30), minutes=60)
    shift.state = "on_duty"
    shift.save(update_fields=["state"])
    other_hire = duty_world.hire(org_a)
    batch = [
        {"id": "s1", "type": "visit", "occurred_at": at(5), "station": str(shift.station_id)},
        {"id": "s2", "type": "visit", "occurred_at": at(45), "station": str(shift.station_id)},
        {"id": "s3", "type": "comment", "occurred_at": at(5), "shift": str(shift.pk)},
        {
            "id": "s4",
            "type": "comment",
            "occurred_at": at(5),
            "shift": str(shift.pk),
            "employment": str(other_hire.pk),
        },
        {"id": "s5", "type": "visit", "occurred_at": at(5), "employment": str(shift.employment_id)},
    ]
    body = post(key_client(org_a), org_a, batch).json()
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(3, "attribution_mismatch")]
    rows = {e.client_event_id: e for e in Event.objects.for_organization(org_a)}
    for name in ("s1", "s3", "s5"):
        assert (rows[name].shift_id, rows[name].station_id, rows[name].employment_id) == (
            shift.pk,
            shift.station_id,
            shift.employment_id,
        ), name
    # Before the shift began: the station only, no hire to credit.
    assert (rows["s2"].station_id, rows["s2"].employment_id) == (shift.station_id, None)


def test_viewer_ids_are_kept_only_as_per_organization_hashes(org_a, org_b):
    """Unique viewers are counted from a keyed hash; the raw id is stored nowhere, and the same
    viewer in two organizations gives unrelated hashes."""
    for org in (org_a, org_b):
        post(
            key_client(org),
            org,
            [{"id": "w", "type": "visit", "occurred_at": at(), "viewer": "alice@example.org"}],
        )
    a = Event.objects.for_organization(org_a).get()
    b = Event.objects.for_organization(org_b).get()
    assert a.viewer_hash and b.viewer_hash and a.viewer_hash != b.viewer_hash
    row = {f.name: getattr(a, f.attname) for f in Event._meta.concrete_fields}
    assert "alice" not in json.dumps(row, default=str)


def test_properties_and_names_are_bounded(org_a):
    batch = [
        {"id": "p1", "type": "visit", "occurred_at": at(), "properties": {"k": "x" * 3000}},
        {"id": "p2", "type": "visit", "occurred_at": at(), "properties": {"nested": {"a": 1}}},
        {"id": "p3", "type": "custom", "occurred_at": at(), "name": "Has Spaces"},
        {"id": "p4", "type": "session_end", "occurred_at": at(), "session": "s", "value": -1},
    ]
    body = post(key_client(org_a), org_a, batch).json()
    assert [(e["code"], e["field"]) for e in body["errors"]] == [
        ("invalid", "properties"),
        ("invalid", "properties"),
        ("invalid", "name"),
        ("invalid", "value"),
    ]
