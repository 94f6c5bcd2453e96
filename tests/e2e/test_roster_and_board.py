"""Scheduling a shift on the roster and watching it go on air on the on-air board, in both
languages, in Chromium.

Real: the whole application over HTTP and websockets (the roster's schedule form validated by
the schedules API's serializer, `scheduling.schedules` materialising the shift and reserving its
capacity, the board page and its websocket consumer, the board's publishing after each commit,
the channel layer); the duty tick (`scheduling.duty.tick`, run in the server's process as beat
would run it, at the shift's warm-up time); the orchestrator's reconcile pass
(`inference.reconcile.Reconciler`); the worker protocol's HTTP endpoints.

Simulated: only the GPU worker, at its boundary. The cluster is the in-memory backend of the
inference tests (`tests.inference.fakes.FakeBackend`: it "starts" a worker and says when it
runs), and the worker is this test speaking the worker protocol over HTTP with the worker's own
token, as `python -m inference.worker` would: it registers, takes its assignment, reports the
stream running, and heartbeats the frames per second it measures. No stream is rendered.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
import uuid
import zoneinfo
from typing import Any

import pytest
from playwright.sync_api import expect

from inference import contracts
from inference.models import Workload, WorkloadState
from inference.reconcile import Reconciler
from scheduling import duty
from scheduling.models import Shift, ShiftState, StationKind
from tests.avatars.factories import onboarded_employment
from tests.e2e.conftest import MARKS, says
from tests.factories import StationFactory
from tests.inference.fakes import FakeBackend
from tests.scheduling.duty_world import live_pool

pytestmark = MARKS

DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


class SimulatedWorker:
    """A GPU worker's side of the worker protocol, over HTTP with its own token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the test's own server
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 200, response.status
            return json.loads(response.read() or b"null")


@pytest.fixture
def hospital(people):
    """Alpha's active digital employee, its live room, and the platform's live pool."""
    live_pool()
    employment = onboarded_employment(organization=people.alpha, status="active")
    station = StationFactory(
        organization=people.alpha, name="Outpatient live room", kind=StationKind.LIVE_ROOM
    )
    return employment, station


def _slot(zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """An hour starting 10 to 15 minutes from now, in the organization's local time."""
    now = dt.datetime.now(zone).replace(second=0, microsecond=0)
    start = now + dt.timedelta(minutes=10 + (5 - now.minute % 5) % 5)
    return start, start + dt.timedelta(hours=1)


def test_schedule_a_shift_and_watch_it_go_on_air(console, people, hospital, server, language):
    employment, station = hospital
    page = console.page
    zone = zoneinfo.ZoneInfo(people.alpha.time_zone)
    start, end = _slot(zone)
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)

    # The roster: a new schedule for the live room, today from `start` for an hour.
    page.locator("nav.side a[data-section=roster]").click()
    expect(page.locator("h1")).to_contain_text(says(language, "Roster"))
    page.locator("[data-testid=new-schedule]").click()
    expect(page.locator("h1")).to_have_text(says(language, "New schedule"))
    form = page.locator("[data-testid=schedule-form]")
    form.locator("#field-employment").select_option(str(employment.pk))
    form.locator("#field-station").select_option(str(station.pk))
    form.locator(f"input[name=byday][value={DAY_CODES[start.weekday()]}]").check()
    form.locator("#field-start_time").fill(start.strftime("%H:%M"))
    form.locator("#field-end_time").fill(end.strftime("%H:%M"))
    form.locator("#field-valid_from").fill(start.date().isoformat())
    console.shot("new-schedule")
    with page.expect_navigation():
        form.get_by_role("button", name=says(language, "Create schedule")).click()

    # Back on the roster, the week of the schedule: the shift is planned in its day's column
    # (today's, unless the hour starts after local midnight).
    expect(page.locator("ul.messages")).to_contain_text(says(language, "Schedule saved."))
    row = page.locator(f"table[data-testid=roster] tr[data-station='{station.pk}']")
    block = row.locator(f"td[data-day='{start.date().isoformat()}'] [data-testid=block]")
    expect(block).to_have_count(1)
    expect(block).to_contain_text(start.strftime("%H:%M"))
    console.shot("roster")
    # (The next weeks' shifts on that weekday are planned too, up to the horizon.)
    shift = (
        Shift.objects.for_organization(people.alpha).filter(station=station).earliest("starts_at")
    )
    assert (shift.state, shift.starts_at) == (ShiftState.PLANNED, start)

    # The on-air board, live over its websocket; no one is on air yet.
    page.locator("nav.side a[data-section=board]").click()
    expect(page.locator("h1")).to_have_text(says(language, "On air"))
    status = page.locator("[data-testid=board-status]")
    expect(status).to_have_attribute("data-connection", "live")
    expect(status).to_have_text(says(language, "Live"))
    rows = page.locator("[data-testid=board-rows] tr[data-shift]")
    expect(rows).to_have_count(0)
    page.evaluate("window.notReloaded = true")
    console.shot("board-empty")

    # The duty tick at the shift's warm-up time asks inference for its stream.
    server.run(duty.tick, shift.starts_at - duty.warmup())
    shift.refresh_from_db()
    assert shift.state == ShiftState.WARMING and shift.workload_id is not None
    on_board = page.locator(f"#shift-{shift.pk}")
    expect(on_board).to_have_attribute("data-state", ShiftState.WARMING)
    expect(on_board).to_contain_text(station.name)

    # The orchestrator starts a worker for it; the worker comes up, registers and takes it.
    backend = FakeBackend()
    reconciler = Reconciler(backend)
    server.run(reconciler.run_once)
    ((worker_id, spec),) = backend.specs.items()
    worker = SimulatedWorker(server.url, spec.token)
    registration = contracts.Registration(contracts.PROTOCOL_VERSION, 2, ("live",))
    worker.post(contracts.REGISTER_PATH, registration.to_json())
    backend.set_phase(worker_id, "running")
    server.run(reconciler.run_once)
    taken = worker.post(contracts.ASSIGNMENTS_PATH, {"free_slots": 2})
    (assignment,) = taken["assignments"]
    assert assignment["workload_id"] == str(shift.workload_id)

    # The stream is on air: the worker says so, and the board shows it without a reload.
    worker.post(
        contracts.REPORTS_PATH,
        {
            "reports": [
                {
                    "report_id": uuid.uuid4().hex,
                    "workload_id": assignment["workload_id"],
                    "attempt": assignment["attempt"],
                    "kind": "progress",
                    "progress": 0.0,
                    "message": "on air",
                }
            ]
        },
    )
    expect(on_board).to_have_attribute("data-state", ShiftState.ON_DUTY)
    expect(on_board).to_contain_text(says(language, "On duty"))
    workload = Workload.objects.unscoped_dangerously().get(pk=shift.workload_id)
    assert workload.state == WorkloadState.RUNNING

    # Its heartbeat carries the frames per second it measures: they appear in the row.
    worker.post(
        contracts.HEARTBEAT_PATH,
        {
            "slots_used": 1,
            "running": [assignment["workload_id"]],
            "stats": {assignment["workload_id"]: {"fps": 24.5}},
        },
    )
    expect(on_board.locator("[data-stat=fps]")).to_have_text("24.5")
    assert page.evaluate("window.notReloaded") is True
    console.shot("on-air")
