"""The on-air board page: who is on air with their numbers, and stop / take over / hand back.

Real: the console's Django stack (sessions, middleware, templates), the duty machine the shifts
API calls, inference's submit and cancel, analytics' ingestion of a viewers sample, the cache
the workers' stream stats are kept in, and the audit log. Simulated: no worker runs; a stream
coming on air is played with inference's own `lifecycle.transition`, and the frames/s a worker
measured is recorded with the service its heartbeat calls.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from inference import services as inference
from inference.lifecycle import transition
from inference.models import Interaction, Worker, WorkerPool, WorkerState, WorkloadState
from ironbowl.analytics.ingestion import ingest
from ironbowl.console import board
from scheduling import duty
from scheduling import services as scheduling_services
from scheduling.models import Shift, ShiftState
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.console.conftest import submit_token, without_tokens
from tests.scheduling import duty_world as world
from tests.support import database_rows

pytestmark = pytest.mark.django_db

S = ShiftState
SOON = timezone.now().replace(microsecond=0) + dt.timedelta(hours=3)


def on_air(organization, **station_fields) -> Shift:
    """A live room's shift on duty: started by the tick, its stream running."""
    shift = world.live_shift(
        organization, timezone.now() - dt.timedelta(minutes=1), **station_fields
    )
    duty.tick()
    transition(world.fresh(shift).workload, WorkloadState.RUNNING, "running")
    duty.tick()
    shift = world.fresh(shift)
    assert shift.state == S.ON_DUTY
    return shift


def desk_on_duty(organization) -> Shift:
    shift = world.desk_shift(organization, timezone.now() - dt.timedelta(hours=1))
    duty.tick()
    shift = world.fresh(shift)
    assert shift.state == S.ON_DUTY
    return shift


def on_a_worker(shift: Shift) -> Worker:
    """Put the shift's stream on a (simulated) worker of its pool, as the orchestrator would."""
    workload = shift.workload
    worker = Worker.objects.create(
        organization=shift.organization,
        backend_id=f"live-{uuid.uuid4().hex[:12]}",
        pool=workload.pool,
        state=WorkerState.READY,
        slots=2,
        slots_used=1,
        token_hash=uuid.uuid4().hex,
        last_heartbeat_at=timezone.now(),
    )
    workload.worker = worker
    workload.save(update_fields=["worker"])
    return worker


def board_url(organization) -> str:
    return reverse("console:board", args=[organization.slug])


def action_url(shift: Shift, action: str, slug: str | None = None) -> str:
    return reverse(f"console:board-{action}", args=[slug or shift.organization.slug, shift.pk])


def audited(shift: Shift) -> list[str]:
    entries = AuditEntry.objects.for_organization(shift.organization).filter(
        object_id=str(shift.pk)
    )
    return list(entries.order_by("created_at", "id").values_list("action", flat=True))


def html_text(response) -> str:
    return unescape(response.content.decode())


def row_of(html: str, shift: Shift) -> str:
    match = re.search(rf'<tr id="shift-{shift.pk}".*?</tr>', html, re.S)
    assert match, f"no row for shift {shift.pk}"
    return match.group(0)


@pytest.fixture
def operator(org_a, member_factory):
    return member_factory(org_a, Role.OPERATOR)


# --- What the board shows --------------------------------------------------------------------


def test_the_board_lists_the_shifts_under_way_with_their_actions(console_a, org_a):
    live = on_air(org_a, name="Health live room")
    desk = desk_on_duty(org_a)
    planned = world.live_shift(org_a, SOON)

    response = console_a.get(board_url(org_a))

    assert response.status_code == 200
    html = response.content.decode()
    row = row_of(html, live)
    assert "Health live room" in row
    assert live.employment.avatar.name_en in row
    assert "On duty" in row
    assert 'data-action="stop"' in row and 'data-action="take-over"' in row
    assert 'data-action="hand-back"' not in row
    assert f'id="shift-{desk.pk}"' in html
    assert f'id="shift-{planned.pk}"' not in html  # not under way yet
    # The page follows the organization's board socket and knows where its rows are.
    assert f'data-socket-path="/ws/console/orgs/{org_a.slug}/board/"' in html
    assert reverse("console:board-rows", args=[org_a.slug]) in html


def test_an_empty_board_says_so(console_a, org_a):
    html = console_a.get(board_url(org_a)).content.decode()
    assert "No one is on air now." in html


def test_the_board_shows_frames_viewers_and_latency(console_a, org_a):
    live = on_air(org_a)
    worker = on_a_worker(live)
    inference.record_stream_stats(worker, {str(live.workload_id): {"fps": 24.87}})
    result = ingest(
        org_a,
        [
            {
                "id": f"view-{n}",
                "type": "view",
                "occurred_at": (timezone.now() - dt.timedelta(seconds=60 - n)).isoformat(),
                "shift": str(live.pk),
                "value": viewers,
            }
            for n, viewers in enumerate((1200, 1350))
        ],
    )
    assert result.accepted == 2, result.errors
    desk = desk_on_duty(org_a)
    converse = WorkerPool.objects.create(
        name="converse-cpu",
        pipeline="converse",
        gpu_class="cpu",
        gpus_per_worker=0,
        slots_per_worker=2,
        image="local",
        maximum=2,
    )
    session, _ = inference.submit(
        org_a,
        kind="session",
        spec={"station": str(desk.station_id), "employment": str(desk.employment_id)},
        pool_name=converse.name,
    )
    for n, latency in enumerate((800, 1000)):
        Interaction.objects.create(
            organization=org_a,
            workload=session,
            question_id=f"q{n}",
            question="几点开门？",
            language="zh",
            outcome="answered",
            latency_ms=latency,
            asked_at=timezone.now() - dt.timedelta(minutes=2),
        )

    html = console_a.get(board_url(org_a)).content.decode()

    live_row, desk_row = row_of(html, live), row_of(html, desk)
    assert re.search(r'data-stat="fps">24\.9<', live_row)
    assert re.search(r'data-stat="viewers">1350<', live_row)  # the latest sample
    assert re.search(r'data-stat="latency_ms">—<', live_row)
    assert re.search(r'data-stat="latency_ms">900 ms<', desk_row)
    assert re.search(r'data-stat="fps">—<', desk_row)


def test_stale_numbers_are_not_shown(org_a):
    live = on_air(org_a)
    ingest(
        org_a,
        [
            {
                "id": "old-view",
                "type": "view",
                "occurred_at": (timezone.now() - dt.timedelta(minutes=20)).isoformat(),
                "shift": str(live.pk),
                "value": 99,
            }
        ],
    )
    (row,) = board.rows(org_a)
    assert row.stats == board.Stats()


def test_the_rows_fragment_is_the_tbody_alone(console_a, org_a):
    live = on_air(org_a)
    response = console_a.get(reverse("console:board-rows", args=[org_a.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<tbody id="board-rows"')
    assert "<html" not in html
    assert f'id="shift-{live.pk}"' in html


# --- Roles -----------------------------------------------------------------------------------


def test_an_analyst_sees_the_board_without_buttons_and_may_not_stop(
    org_a, member_factory, console_for
):
    live = on_air(org_a)
    analyst = console_for(member_factory(org_a, Role.ANALYST))

    html = analyst.get(board_url(org_a)).content.decode()
    assert f'id="shift-{live.pk}"' in html
    assert "data-action=" not in html

    before = database_rows()
    response = analyst.post(action_url(live, "stop"), {"submit_token": "t1"})
    assert response.status_code == 403
    assert "Analyst" in response.content.decode()
    assert analyst.get(action_url(live, "stop")).status_code == 403
    assert database_rows() == before


def test_billing_may_not_open_the_board(org_a, member_factory, console_for):
    billing = console_for(member_factory(org_a, Role.BILLING))
    assert billing.get(board_url(org_a)).status_code == 403
    assert billing.get(reverse("console:board-rows", args=[org_a.slug])).status_code == 403


def test_an_operator_acts_only_at_the_stations_granted(org_a, operator, console_for):
    granted, other = on_air(org_a, name="Granted room"), on_air(org_a, name="Other room")
    scheduling_services.grant_station_operator(SYSTEM, granted.station, operator)
    client = console_for(operator)

    html = client.get(board_url(org_a)).content.decode()
    assert 'data-action="stop"' in row_of(html, granted)
    assert "data-action=" not in row_of(html, other)

    before = database_rows()
    refused = client.post(action_url(other, "stop"), {"submit_token": "t-other"})
    assert refused.status_code == 403
    assert "You do not operate this shift's station." in html_text(refused)
    assert client.get(action_url(other, "take-over")).status_code == 403
    assert database_rows() == before

    done = client.post(action_url(granted, "stop"), {"submit_token": "t-granted"})
    assert done.status_code == 302
    assert done["Location"] == board_url(org_a)
    assert world.fresh(granted).state == S.ENDED
    assert world.fresh(other).state == S.ON_DUTY


# --- Tenancy ---------------------------------------------------------------------------------


def test_another_organizations_board_and_shifts_answer_404(org_a, org_b, console_b):
    live = on_air(org_a, name="Alpha live room")
    before = database_rows()

    assert console_b.get(board_url(org_a)).status_code == 404
    assert console_b.get(reverse("console:board-rows", args=[org_a.slug])).status_code == 404
    for action in ("stop", "take-over", "hand-back"):
        # A's shift under B's slug (the id edited by hand), and under A's slug.
        for slug in (org_b.slug, org_a.slug):
            url = action_url(live, action, slug=slug)
            assert console_b.post(url, {"submit_token": f"{action}-{slug}"}).status_code == 404
            assert console_b.get(url).status_code == 404
    # The same answer as a shift that does not exist.
    missing = reverse("console:board-stop", args=[org_b.slug, uuid.uuid4()])
    assert console_b.post(missing).status_code == 404

    own = console_b.get(board_url(org_b)).content.decode()
    own_rows = console_b.get(reverse("console:board-rows", args=[org_b.slug])).content.decode()
    for html in (own, own_rows):
        assert str(live.pk) not in html
        assert "Alpha live room" not in html
        assert org_a.slug not in html
    assert database_rows() == before


# --- Acting ----------------------------------------------------------------------------------


def test_stop_ends_the_shift_and_a_double_submit_acts_once(console_a, org_a):
    live = on_air(org_a)
    token = submit_token(console_a.get(board_url(org_a)).content.decode())

    first = console_a.post(action_url(live, "stop"), {"submit_token": token})
    second = console_a.post(action_url(live, "stop"), {"submit_token": token})

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == board_url(org_a)
    shift = world.fresh(live)
    assert (shift.state, shift.reason_code) == (S.ENDED, "stopped")
    assert shift.workload.state == WorkloadState.CANCELLED
    assert audited(live).count("shift.stop") == 1
    page = console_a.get(board_url(org_a)).content.decode()
    assert "The shift was stopped." in page
    assert f'id="shift-{live.pk}"' not in page


def test_take_over_acts_once_and_hand_back_follows(console_a, org_a):
    live = on_air(org_a)
    url = action_url(live, "take-over")

    first = console_a.post(url, {"submit_token": "same", "reason": "A viewer needs a doctor."})
    second = console_a.post(url, {"submit_token": "same", "reason": "A viewer needs a doctor."})

    assert first.status_code == second.status_code == 302
    assert audited(live).count("shift.take_over") == 1
    shift = world.fresh(live)
    assert (shift.state, shift.reason) == (S.TAKEN_OVER, "A viewer needs a doctor.")
    row = row_of(console_a.get(board_url(org_a)).content.decode(), live)
    assert "Taken over by a person" in row
    assert 'data-action="hand-back"' in row and 'data-action="take-over"' not in row

    back = console_a.post(action_url(live, "hand-back"), {"submit_token": "back"})
    assert back.status_code == 302
    shift = world.fresh(live)
    assert (shift.state, shift.attempts) == (S.WARMING, 2)


def test_a_second_stop_with_a_new_token_is_told_the_shift_is_over(console_a, org_a):
    live = on_air(org_a)
    assert console_a.post(action_url(live, "stop"), {"submit_token": "a"}).status_code == 302
    before = database_rows()

    again = console_a.post(action_url(live, "stop"), {"submit_token": "b"})

    assert again.status_code == 409
    assert "This shift is over (ended)" in again.content.decode()
    assert database_rows() == before


def test_an_action_from_the_wrong_state_is_refused_and_changes_nothing(console_a, org_a):
    live = on_air(org_a)
    before = database_rows()

    response = console_a.post(action_url(live, "hand-back"), {"submit_token": "x"})

    assert response.status_code == 409
    html = response.content.decode()
    assert "Only a shift that a person took over can be handed back." in html
    assert 'class="form-errors"' in html
    assert database_rows() == before


def test_a_reason_too_long_is_refused_next_to_its_field(console_a, org_a):
    live = on_air(org_a)
    page = console_a.get(action_url(live, "take-over"))
    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode()
    before = database_rows()

    response = console_a.post(
        action_url(live, "take-over"),
        {"submit_token": submit_token(page.content.decode()), "reason": "x" * 501},
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="field-reason-errors"[^>]*>\s*<li>[^<]*500', html)
    assert world.fresh(live).state == S.ON_DUTY
    assert database_rows() == before


def test_the_action_page_with_a_reason_stops_the_shift(console_a, org_a):
    live = on_air(org_a)
    page = console_a.get(action_url(live, "stop")).content.decode()
    assert "Stop this shift" in page

    response = console_a.post(
        action_url(live, "stop"),
        {"submit_token": submit_token(page), "reason": "Power cut at the studio."},
    )

    assert response.status_code == 302
    assert world.fresh(live).reason == "Power cut at the studio."


def test_the_board_speaks_chinese(console_a, org_a):
    on_air(org_a)
    console_a.post(reverse("set_language"), {"language": "zh-hans", "next": board_url(org_a)})
    page = without_tokens(console_a.get(board_url(org_a)).content)
    assert 'lang="zh-hans"' in page
    assert "在岗" in page  # "On duty"
