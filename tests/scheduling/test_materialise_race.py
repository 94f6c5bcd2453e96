"""Two materialisation runs at once make each shift, and reserve its capacity, once.

Real: `materialise.materialise_shifts` in two threads, each on its own database connection,
against PostgreSQL's row locks: run A stops while it holds its organization's schedules; run B
starts and is seen waiting for those locks (in pg_stat_activity); then A finishes and B, which
reads the shifts after the locks, finds nothing to do. Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from typing import Any

import pytest

from inference.models import Reservation
from scheduling import materialise
from scheduling.models import Shift
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock
from tests.scheduling import schedules_world as world

MONDAY = dt.datetime(2026, 3, 2, 8, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
SCHEDULES = 6  # two working weeks each: 60 shifts


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_make_and_reserve_each_shift_once(org_a, monkeypatch):
    require_row_locks()
    world.pools()
    for _ in range(SCHEDULES):
        world.plain_schedule(world.hire(org_a), world.station(org_a))
    holding, release = threading.Event(), threading.Event()
    existing = materialise._existing

    def existing_then_hold(*args: Any, **kwargs: Any) -> Any:
        found = existing(*args, **kwargs)
        if threading.current_thread().name == "A":
            holding.set()
            assert release.wait(timeout=120), "the test never let run A go on"
        return found

    monkeypatch.setattr(materialise, "_existing", existing_then_hold)
    a, a_out = in_thread("A", lambda: materialise.materialise_shifts(now=MONDAY))
    b, b_out = in_thread("B", lambda: materialise.materialise_shifts(now=MONDAY))
    a.start()
    assert holding.wait(timeout=120), "run A never locked the schedules"
    b.start()
    try:
        assert someone_waits_for_a_lock(), "run B never waited for run A's locks"
    finally:
        release.set()
        for thread in (a, b):
            thread.join(timeout=300)
    assert "error" not in a_out and "error" not in b_out, (a_out, b_out)

    assert (a_out["result"].created, b_out["result"].created) == (SCHEDULES * 10, 0)
    shifts = list(Shift.objects.for_organization(org_a))
    reservations = list(Reservation.objects.for_organization(org_a))
    assert len(shifts) == SCHEDULES * 10
    assert sorted(r.holder for r in reservations) == sorted(
        materialise.holder_of(s.pk) for s in shifts
    )
    assert all(s.reservation_id == s.pk for s in shifts)
