"""Platform staff pages: pools, workers and the capacity calendar.

Real: the console's Django stack, inference's models, its operators' selectors and capacity
calendar. Workers are rows as the orchestrator would have made them (no process runs).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from inference import services as inference
from inference.lifecycle import transition
from inference.models import Reservation, Worker, WorkerPool, WorkerState, WorkloadState
from tests.console.conftest import without_tokens

pytestmark = pytest.mark.django_db

PAGES = ("console:pools", "console:workers", "console:capacity")


@pytest.fixture
def staff(console_a, owner_a):
    owner_a.user.is_staff = True
    owner_a.user.save()
    return console_a


@pytest.fixture
def pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="render-2d-l4",
        pipeline="live",
        model="wav2lip-2d",
        gpu_class="l4",
        gpus_per_worker=1,
        slots_per_worker=4,
        image="registry.example/worker:1",
        maximum=5,
    )


def worker(organization, pool, state=WorkerState.READY, heartbeat_age_s=2, **fields) -> Worker:
    return Worker.objects.create(
        organization=organization,
        backend_id=f"{pool.name}-{uuid.uuid4().hex[:8]}",
        pool=pool,
        state=state,
        slots=pool.slots_per_worker,
        token_hash=uuid.uuid4().hex,
        last_heartbeat_at=(
            None
            if heartbeat_age_s is None
            else timezone.now() - dt.timedelta(seconds=heartbeat_age_s)
        ),
        **fields,
    )


def test_the_staff_pages_are_not_there_for_members(console_a, client):
    for name in PAGES:
        assert console_a.get(reverse(name)).status_code == 404
        signed_out = client.get(reverse(name))
        assert signed_out.status_code == 302
        assert signed_out["Location"].startswith(reverse("console:sign-in"))


def test_the_pools_page_counts_workers_gpus_slots_and_queued_work(staff, org_a, org_b, pool):
    worker(org_a, pool, slots_used=3)
    worker(org_b, pool, slots_used=1)
    worker(org_b, pool, state=WorkerState.STARTING)
    worker(org_a, pool, state=WorkerState.GONE)  # not counted
    inference.submit(org_a, kind="live", spec={"seconds": 1}, pool_name=pool.name)
    WorkerPool.objects.create(
        name="build-h100",
        pipeline="build",
        gpu_class="h100",
        gpus_per_worker=2,
        slots_per_worker=1,
        image="registry.example/worker:1",
        maximum=1,
        is_active=False,
    )

    response = staff.get(reverse("console:pools"))

    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r'<tr data-pool="render-2d-l4">.*?</tr>', html, re.S).group(0)
    assert "wav2lip-2d" in row and "NVIDIA L4" in row
    assert "3 of 5" in row  # live workers of the maximum
    assert "Starting: 1 · Ready: 2" in row
    assert re.search(r"<td>3</td>", row)  # GPUs in use: one per worker
    assert "4 / 12" in row  # slots used of the live workers' slots
    assert '<span class="badge warn">1</span>' in row  # one workload queued
    off = re.search(r'<tr data-pool="build-h100">.*?</tr>', html, re.S).group(0)
    assert "Switched off" in off


def test_the_workers_page_shows_state_heartbeat_age_and_workloads(staff, org_a, org_b, pool):
    busy = worker(org_a, pool, heartbeat_age_s=4, slots_used=1)
    late = worker(org_b, pool, heartbeat_age_s=600)
    gone = worker(org_a, pool, state=WorkerState.GONE, heartbeat_age_s=None)
    workload, _ = inference.submit(
        org_a, kind="live", spec={"seconds": 1, "secret": "do-not-show"}, pool_name=pool.name
    )
    transition(workload, WorkloadState.ADMITTED, "admitted")
    transition(workload, WorkloadState.PLACED, "placed", worker=busy)

    html = staff.get(reverse("console:workers")).content.decode()

    busy_row = re.search(rf'<tr data-worker="{busy.backend_id}">.*?</tr>', html, re.S).group(0)
    assert "alpha-hospital" in busy_row
    assert "1 / 4" in busy_row
    assert re.search(r">\s*[4-9] s ago<", busy_row)
    assert "Live stream · alpha-hospital · Placed" in busy_row
    late_row = re.search(rf'<tr data-worker="{late.backend_id}">.*?</tr>', html, re.S).group(0)
    assert 'class="badge bad"' in late_row  # its heartbeat is late
    assert "10\xa0minutes ago" in late_row
    assert gone.backend_id not in html  # gone workers only when asked for
    assert "do-not-show" not in html  # an organization's payload stays out

    only_gone = staff.get(reverse("console:workers"), {"state": "gone"}).content.decode()
    assert gone.backend_id in only_gone and busy.backend_id not in only_gone


def test_a_bad_worker_filter_is_refused_next_to_its_field(staff, pool):
    response = staff.get(reverse("console:workers"), {"state": "sleeping", "pool": "nope"})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="field-state-errors"[^>]*>\s*<li>Choose one of:', html)
    assert "Choose one of: render-2d-l4." in html


def test_the_capacity_calendar_shows_reservations_per_class_and_hour(staff, org_a, org_b, pool):
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    for organization, slots in ((org_a, 12), (org_b, 5)):
        Reservation.objects.create(
            organization=organization,
            gpu_class="l4",
            slots=slots,
            starts_at=start + dt.timedelta(hours=2),
            ends_at=start + dt.timedelta(hours=3),
            holder=f"campaign:{organization.slug}",
        )
    query = {
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"),
        "step": "3600",
    }

    response = staff.get(reverse("console:capacity"), query)

    assert response.status_code == 200
    html = without_tokens(response.content)
    table = re.search(r'<table class="calendar" data-gpu-class="l4">.*?</table>', html, re.S)
    cells = re.findall(r'<td(?: title="([^"]*)")?>', table.group(0))
    filled = [title for title in cells if title]
    assert len(filled) == 6
    # The platform offers 5 workers x 4 slots = 20; 17 are held in the third hour.
    assert filled[2] == "17 reserved, 3 available"
    assert filled[0] == "0 reserved, 20 available"
    assert '<span class="badge warn">17</span>' in table.group(0)


def test_the_capacity_calendar_by_day_and_its_default(staff, pool):
    default = staff.get(reverse("console:capacity"))
    assert default.status_code == 200
    assert default.content.decode().count('<tr><th scope="row">') >= 7  # a week, by hour

    by_day = staff.get(reverse("console:capacity"), {"step": "86400"})
    assert by_day.status_code == 200
    assert '<th scope="col">Reserved</th>' in by_day.content.decode()


def test_a_bad_calendar_query_is_refused_next_to_its_field(staff, pool):
    response = staff.get(
        reverse("console:capacity"),
        {"start": "2030-01-02T00:00", "end": "2030-01-01T00:00", "step": "3600"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="field-end-errors"[^>]*>\s*<li>The end must be after the start.', html)
    assert 'class="calendar"' not in html

    garbled = staff.get(reverse("console:capacity"), {"start": "yesterday-ish"})
    assert garbled.status_code == 400
    assert 'id="field-start-errors"' in garbled.content.decode()
