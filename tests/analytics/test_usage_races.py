"""Exactly once under races: the receiver and the sweep, or two sweeps, converting the same
reports at the same moment write one record per source and mark each report converted once.

Real: the conversion service, PostgreSQL's unique indexes and row locks, two threads each on
its own database connection. The receiver's side is called directly (as the signal would);
the pause that holds its transaction open is the only thing added to the code under test.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from ironbowl.analytics import marks, usage
from ironbowl.analytics.models import ConvertedUsageReport, UsageRecord
from tests.analytics import usage_world as world
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock

WAIT_S = 60


def _one_record_per_source(organization, reports) -> None:
    sources = Counter(
        UsageRecord.objects.for_organization(organization).values_list("source_id", flat=True)
    )
    assert sources == {f"usage-report:{report.pk}:gpu_seconds": 1 for report in reports}
    claims = Counter(ConvertedUsageReport.objects.values_list("report_id", flat=True))
    assert claims == {report.pk: 1 for report in reports}


@pytest.mark.django_db(transaction=True)
def test_the_sweep_waiting_on_the_receivers_open_conversion_writes_nothing(org_a, monkeypatch):
    """The receiver converts a report and holds its transaction open; the sweep, finding the
    report unconverted, blocks on the receiver's uncommitted claim. When the receiver commits,
    the sweep's claim fails on the unique report id and it writes nothing."""
    require_row_locks()
    report = world.report(world.attributed_workload(org_a), gpu_seconds=42.0)
    receiver_holds, release = threading.Event(), threading.Event()
    mark_hours = marks.mark_hours

    def mark_then_hold(organization, instants):
        marked = mark_hours(organization, instants)
        if threading.current_thread().name == "receiver":
            receiver_holds.set()
            assert release.wait(timeout=WAIT_S), "never released"
        return marked

    monkeypatch.setattr(marks, "mark_hours", mark_then_hold)
    receiver, receiver_out = in_thread("receiver", lambda: usage.convert_reports([report.pk]))
    sweep, sweep_out = in_thread("sweep", usage.convert_pending)
    receiver.start()
    try:
        assert receiver_holds.wait(timeout=WAIT_S), "the receiver never reached its claim"
        sweep.start()
        assert someone_waits_for_a_lock(WAIT_S), "the sweep never blocked on the receiver's claim"
    finally:
        release.set()
        receiver.join(timeout=WAIT_S)
        if sweep.ident is not None:  # started
            sweep.join(timeout=WAIT_S)

    assert "error" not in receiver_out and "error" not in sweep_out, (receiver_out, sweep_out)
    assert (receiver_out["result"].converted, sweep_out["result"].skipped) == (1, 1)
    assert sweep_out["result"].records == 0
    _one_record_per_source(org_a, [report])


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_convert_each_report_once(org_a):
    require_row_locks()
    streamed = world.attributed_workload(org_a)
    reports = [world.report(streamed, gpu_seconds=float(n + 1)) for n in range(60)]
    start = threading.Barrier(2, timeout=WAIT_S)

    def sweep() -> usage.Conversion:
        start.wait()
        return usage.convert_pending(batch=7)

    threads = [in_thread(name, sweep) for name in ("first", "second")]
    for thread, _out in threads:
        thread.start()
    for thread, _out in threads:
        thread.join(timeout=WAIT_S)

    results = [out.get("result") for _thread, out in threads]
    assert all(result is not None for result in results), [out for _t, out in threads]
    assert sum(result.converted for result in results) == len(reports)
    assert sum(result.records for result in results) == len(reports)
    _one_record_per_source(org_a, reports)
