"""Conversations on the control plane: opening a session, its token, the worker's knowledge
endpoint, the websocket relay between a visitor and a worker, and the interaction log.

Real: Django, DRF, the database, the ASGI application with Channels (in-memory layer, and
channels-redis where REDIS_URL is set), the consumers, Django's signing. Simulated: the worker's
side of the relay is played by the test through the real worker socket (the pipeline itself
runs in tests/inference/test_conversation_end_to_end.py), and the cluster is the fake backend.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.core import signing
from rest_framework.test import APIClient

from avatars.models import Employment, KnowledgeEntry
from inference import contracts, services, sessions
from inference.consumers import CLOSE_GONE, CLOSE_NOT_FOUND, CLOSE_UNAUTHORIZED
from inference.models import Interaction, WorkerPool, Workload
from scheduling import sessions as opening
from tenants.audit import SYSTEM
from tests.avatars.factories import (
    PORTRAIT_PNG,
    KnowledgeEntryFactory,
    onboarded_employment,
    with_portrait,
)
from tests.factories import StationFactory
from tests.inference.fakes import FakeBackend
from tests.inference.support import place_on_new_worker
from tests.platform.test_realtime import Socket
from tests.support import database_rows, layer_settings

ENGLISH_ANSWER = "The hall is open Monday to Friday, 9:00-17:00."


@pytest.fixture
def converse_pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="converse-cpu",
        pipeline="converse",
        gpu_class="cpu",
        gpus_per_worker=0,
        slots_per_worker=4,
        image="local",
        maximum=2,
    )


def _attach(employment: Employment, entry: KnowledgeEntry) -> None:
    Employment.knowledge_entries.through.objects.create(
        employment_id=employment.pk, knowledgeentry_id=entry.pk
    )


def _desk(organization):
    """An active digital employee with a Chinese, an English and a French entry, at a widget."""
    employment = onboarded_employment(organization=organization, status="active")
    for language, questions, answer in (
        ("en-US", ["When is the hall open?"], ENGLISH_ANSWER),
        ("fr-FR", ["Quand ouvrez-vous ?"], "Du lundi au vendredi."),
    ):
        entry = KnowledgeEntryFactory(
            organization=organization, language=language, questions=questions, answer=answer
        )
        _attach(employment, entry)
    station = StationFactory(organization=organization, kind="web_widget")
    return station, employment


@pytest.fixture
def desk(org_a, converse_pool):
    return _desk(org_a)


def _open(api, organization, station, employment, **body):
    return api.post(
        f"/api/v1/orgs/{organization.slug}/stations/{station.pk}/sessions/",
        {"employment": str(employment.pk), **body},
        format="json",
        **({"HTTP_IDEMPOTENCY_KEY": body.pop("key")} if "key" in body else {}),
    )


# --- Opening -------------------------------------------------------------------------------------


def test_opening_a_session_queues_a_workload_and_returns_a_token(api_a, org_a, desk):
    station, employment = desk
    response = _open(api_a, org_a, station, employment, language="en", video=False)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["socket_path"] == "/ws/sessions/" and body["state"] == "queued"
    workload = Workload.objects.for_organization(org_a).get(pk=body["workload"])
    assert workload.kind == "session" and workload.pool.pipeline == "converse"
    assert workload.spec["employment"] == str(employment.pk)
    assert workload.spec["station"] == str(station.pk)
    assert workload.spec["language"] == "en" and workload.spec["video"] is False
    assert sessions.workload_of_token(body["token"]) == workload


def test_opening_with_the_same_idempotency_key_returns_the_first_session(api_a, org_a, desk):
    station, employment = desk
    first = api_a.post(
        f"/api/v1/orgs/{org_a.slug}/stations/{station.pk}/sessions/",
        {"employment": str(employment.pk)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="visit-42",
    )
    again = api_a.post(
        f"/api/v1/orgs/{org_a.slug}/stations/{station.pk}/sessions/",
        {"employment": str(employment.pk)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="visit-42",
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["workload"] == again.json()["workload"]
    assert Workload.objects.for_organization(org_a).count() == 1


def test_a_session_without_a_portrait_has_no_video(api_a, org_a, desk):
    station, employment = desk
    response = _open(api_a, org_a, station, employment, video=True)
    assert response.status_code == 201 and response.json()["video"] is False


def test_a_sessions_portrait_is_an_input_of_the_organization(
    api_a, org_a, desk, settings, tmp_path
):
    """Not a path on the control plane's disk: the worker fetches the input (a market avatar's
    portrait is copied from its vendor's media into the organization's)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    station, employment = desk
    with_portrait(employment.avatar)
    response = _open(api_a, org_a, station, employment, video=True)
    assert response.status_code == 201 and response.json()["video"] is True
    spec = Workload.objects.for_organization(org_a).get(pk=response.json()["workload"]).spec
    assert "portrait_path" not in spec and str(tmp_path) not in json.dumps(spec)
    media = spec["inputs"]["portrait"]["media"]
    assert media.startswith(f"portraits/{org_a.pk}/")
    assert (tmp_path / "media" / media).read_bytes() == PORTRAIT_PNG


@pytest.mark.parametrize("problem", ["station_off", "employee_suspended", "no_knowledge"])
def test_opening_is_refused_with_what_to_fix_and_changes_nothing(api_a, org_a, desk, problem):
    station, employment = desk
    if problem == "station_off":
        station.is_active = False
        station.save()
    elif problem == "employee_suspended":
        Employment.objects.for_organization(org_a).filter(pk=employment.pk).update(
            status="suspended"
        )
    else:
        Employment.knowledge_entries.through.objects.filter(employment_id=employment.pk).delete()
    before = database_rows()
    response = _open(api_a, org_a, station, employment)
    assert response.status_code == 409, response.content
    assert response.json()["code"] in ("station_inactive", "employment_not_active", "no_knowledge")
    assert database_rows() == before


def test_another_organizations_station_or_employee_is_not_found(api_a, api_b, org_a, org_b, desk):
    station, employment = desk
    station_b = StationFactory(organization=org_b, kind="web_widget")
    before = database_rows()
    # B asks for A's station through A's URL, through its own URL, and with A's employee.
    assert _open(api_b, org_a, station, employment).status_code == 404
    assert _open(api_b, org_b, station, employment).status_code == 404
    foreign_employee = _open(api_b, org_b, station_b, employment)
    assert foreign_employee.status_code == 400
    assert foreign_employee.json()["fields"]["employment"][0]["code"] == "does_not_exist"
    assert database_rows() == before


# --- Tokens --------------------------------------------------------------------------------------


@pytest.fixture
def session(org_a, desk) -> Workload:
    station, employment = desk
    workload, _ticket, _created = opening.open_session(
        SYSTEM, station, employment, language="zh", video=False
    )
    return workload


def test_a_tampered_token_or_one_for_another_purpose_is_refused(session):
    token = sessions.issue_token(session).token
    forged = signing.dumps({"o": str(session.organization_id), "w": str(session.pk)})
    for bad in (token[:-2] + "xx", forged, "", None, "a" * 600):
        with pytest.raises(sessions.InvalidToken) as refused:
            sessions.workload_of_token(bad)
        assert refused.value.code == "invalid_token"


def test_a_token_expires(session, settings, monkeypatch):
    settings.INFERENCE_SESSION_TOKEN_TTL_S = 60
    token = sessions.issue_token(session).token
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now + 61)
    with pytest.raises(sessions.InvalidToken) as refused:
        sessions.workload_of_token(token)
    assert refused.value.code == "token_expired"


def test_the_token_of_an_ended_session_is_refused(session):
    token = sessions.issue_token(session).token
    services.cancel(session, "done")
    with pytest.raises(sessions.InvalidToken) as refused:
        sessions.workload_of_token(token)
    assert refused.value.code == "session_over"


# --- The worker's knowledge ----------------------------------------------------------------------


def _place(backend: FakeBackend, workload: Workload) -> tuple[Workload, str]:
    """A fake worker holds the session; returns it and the worker's token."""
    _client, token = place_on_new_worker(backend, workload, "converse")
    return workload, token


def _worker_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_the_worker_gets_the_employees_knowledge_in_its_languages(backend, org_a, session, desk):
    workload, token = _place(backend, session)
    path = contracts.KNOWLEDGE_PATH.format(workload=workload.pk)
    response = _worker_client(token).post(path, {"attempt": workload.attempts}, format="json")
    assert response.status_code == 200, response.content
    knowledge = response.json()
    by_language = {entry["language"]: entry for entry in knowledge["entries"]}
    assert set(by_language) == {"zh", "en"}  # the French entry cannot be spoken
    assert by_language["en"]["answer"] == ENGLISH_ANSWER
    assert len(knowledge["version"]) == 16
    # A new entry is a new version: workers index it afresh.
    _station, employment = desk
    _attach(employment, KnowledgeEntryFactory(organization=org_a))
    again = _worker_client(token).post(path, {"attempt": workload.attempts}, format="json")
    assert again.json()["version"] != knowledge["version"]


def test_knowledge_is_only_for_the_worker_and_attempt_that_hold_the_session(
    backend, org_a, org_b, session, converse_pool
):
    workload, token = _place(backend, session)
    path = contracts.KNOWLEDGE_PATH.format(workload=workload.pk)
    stale = _worker_client(token).post(path, {"attempt": workload.attempts + 1}, format="json")
    assert stale.status_code == 404
    station_b, employment_b = _desk(org_b)
    other, _ticket, _ = opening.open_session(SYSTEM, station_b, employment_b, video=False)
    other, token_b = _place(backend, other)
    foreign = _worker_client(token_b).post(path, {"attempt": workload.attempts}, format="json")
    assert foreign.status_code == 404
    assert "answer" not in foreign.content.decode()
    unknown = contracts.KNOWLEDGE_PATH.format(workload=uuid.uuid4())
    assert _worker_client(token).post(unknown, {"attempt": 1}, format="json").status_code == 404
    assert APIClient().post(path, {"attempt": 1}, format="json").status_code == 401


# --- The relay -----------------------------------------------------------------------------------


@pytest.fixture(params=["in-memory", "redis"])
def layer(request, settings):
    settings.CHANNEL_LAYERS = layer_settings(request.param)
    yield
    from django.db import connections

    connections.close_all()


class JsonSocket(Socket):
    async def send_json_to(self, data: dict) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(data)})


class WorkerSocket(JsonSocket):
    def __init__(self, workload: Workload, token: str, attempt: int) -> None:
        super().__init__(
            contracts.SESSION_SOCKET_PATH.format(workload=workload.pk),
            [(b"authorization", f"Bearer {token}".encode())],
        )
        self.scope["query_string"] = f"attempt={attempt}".encode()


async def _worker_joins(backend: FakeBackend, session: Workload) -> tuple[Workload, WorkerSocket]:
    """A fake worker holds the session and opens its socket to the relay."""
    workload, token = await sync_to_async(_place)(backend, session)
    worker = WorkerSocket(workload, token, workload.attempts)
    assert (await worker.connect())[0]
    return workload, worker


async def _visitor(token: object) -> tuple[JsonSocket, dict]:
    socket = JsonSocket("/ws/sessions/", [(b"origin", b"https://widget.example.gov.cn")])
    connected, _ = await socket.connect()
    assert connected
    await socket.send_json_to({"type": "start", "token": token})
    return socket, await socket.receive_json()


async def _closed_with(socket: Socket) -> int:
    message = await socket.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return int(message["code"])


@pytest.mark.django_db(transaction=True)
async def test_a_visitor_with_a_bad_token_is_told_and_disconnected(layer, session):
    socket, reply = await _visitor("not-a-token")
    assert reply == {
        "type": "error",
        "code": "invalid_token",
        "message": "This conversation link is not valid.",
    }
    assert await _closed_with(socket) == CLOSE_UNAUTHORIZED
    await sync_to_async(services.cancel)(session, "over")
    ended = (await sync_to_async(sessions.issue_token)(session)).token
    socket, reply = await _visitor(ended)
    assert reply["code"] == "session_over"
    assert await _closed_with(socket) == CLOSE_GONE


@pytest.mark.django_db(transaction=True)
async def test_only_the_worker_holding_the_session_may_open_its_socket(
    layer, backend, org_a, session
):
    workload, token = await sync_to_async(_place)(backend, session)
    for bad_token, attempt in ((token, workload.attempts + 1), ("ibw_forged", workload.attempts)):
        socket = WorkerSocket(workload, bad_token, attempt)
        connected, code = await socket.connect()
        assert (connected, code) == (False, CLOSE_NOT_FOUND)


@pytest.mark.django_db(transaction=True)
async def test_questions_and_answers_are_relayed_and_each_exchange_recorded_once(
    layer, backend, org_a, session
):
    workload, worker = await _worker_joins(backend, session)
    ticket = await sync_to_async(sessions.issue_token)(workload)
    visitor, hello = await _visitor(ticket.token)
    assert hello["type"] == "session" and hello["session"] == str(workload.pk)

    # Asked before the worker said it is ready: held, then delivered.
    await visitor.send_json_to({"type": "question", "id": "q1", "text": "几点上班？"})
    assert await visitor.receive_json() == {"type": "queued", "id": "q1"}
    assert await worker.receive_json() == {"type": "visitor", "event": "joined"}
    await worker.send_json_to({"type": "ready"})
    assert await visitor.receive_json() == {"type": "ready"}
    assert await worker.receive_json() == {"type": "question", "id": "q1", "text": "几点上班？"}

    answer = {
        "type": "answer",
        "id": "q1",
        "text": "周一至周五上午9点上班。",
        "language": "zh",
        "handed_off": False,
        "entry_id": "e1",
        "score": 0.93,
        "matched_by": "embedding",
        "rephrased": False,
        "reason": "embedding match",
        "secret": "not relayed",
    }
    await worker.send_json_to(answer)
    await worker.send_json_to({"type": "audio", "id": "q1", "seq": 0, "data": "UklGRg=="})
    await worker.send_json_to({"type": "audio", "id": "q1", "seq": 1, "data": "UklGRg=="})
    await worker.send_json_to({"type": "done", "id": "q1"})
    relayed = [await visitor.receive_json() for _ in range(4)]
    assert [m["type"] for m in relayed] == ["answer", "audio", "audio", "done"]
    assert "secret" not in relayed[0] and relayed[0]["text"] == answer["text"]

    # The same question id again (a retry) is not asked twice.
    await visitor.send_json_to({"type": "question", "id": "q1", "text": "几点上班？"})
    await visitor.send_json_to({"type": "question", "id": "q2", "text": "x" * 1001})
    refused = await visitor.receive_json()
    assert refused["code"] == "question_too_long" and refused["id"] == "q2"

    await visitor.send_json_to({"type": "end"})
    assert await worker.receive_json() == {"type": "end"}
    assert await visitor.receive_json() == {"type": "ended", "reason": "visitor_ended"}
    assert await _closed_with(visitor) == 1000
    await visitor.disconnect()
    await worker.disconnect()

    interactions = await sync_to_async(list)(Interaction.objects.for_organization(org_a).all())
    assert len(interactions) == 1
    (interaction,) = interactions
    assert interaction.workload_id == workload.pk and interaction.question == "几点上班？"
    assert interaction.outcome == "answered" and interaction.entry_id == "e1"
    assert interaction.latency_ms >= 0 and interaction.answer == answer["text"]


@pytest.mark.django_db(transaction=True)
async def test_a_worker_that_sends_nonsense_is_told_and_nothing_reaches_the_visitor(
    layer, backend, org_a, session
):
    _workload, worker = await _worker_joins(backend, session)
    await worker.send_json_to({"type": "shell", "cmd": "rm -rf /"})
    assert (await worker.receive_json())["type"] == "error"
    await worker.send_json_to({"type": "audio", "id": "q", "seq": 0, "data": "not base64!"})
    assert (await worker.receive_json())["message"] == "chunk data must be base64"
    await worker.disconnect()


# --- The interaction log -------------------------------------------------------------------------


def test_interactions_are_listed_per_session_and_only_to_their_organization(
    api_a, api_b, org_a, session
):
    from django.utils import timezone

    for number, handed_off in ((1, False), (2, True)):
        sessions.record_interaction(
            session,
            question_id=f"q{number}",
            question=f"question {number}",
            answer={"text": "an answer", "language": "en", "handed_off": handed_off},
            asked_at=timezone.now(),
            latency_ms=120 * number,
        )
    again = sessions.record_interaction(
        session,
        question_id="q1",
        question="question 1",
        answer={"text": "an answer"},
        asked_at=timezone.now(),
        latency_ms=1,
    )
    assert again is None  # recorded once
    url = f"/api/v1/orgs/{org_a.slug}/workloads/{session.pk}/interactions/"
    response = api_a.get(url)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["question_id"], r["outcome"], r["latency_ms"]) for r in rows] == [
        ("q1", "answered", 120),
        ("q2", "handed_off", 240),
    ]
    assert api_b.get(url).status_code == 404
    assert KnowledgeEntry.objects.for_organization(org_a).exists()
