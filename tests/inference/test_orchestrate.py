"""`manage.py orchestrate` as real processes: pools from a file, one leader, take-over.

Real: the command, its database lock (a PostgreSQL advisory lock in CI, a file lock on SQLite),
the local backend's worker subprocesses. Nothing simulated.
"""

from __future__ import annotations

import json
import signal

import pytest
from django.core.management import CommandError, call_command

from inference.models import WorkerPool
from tests.inference.processes import child_env, manage, wait_for
from tests.support import database_rows

pytestmark = pytest.mark.slow


def _pool(name: str, **fields) -> dict:
    return {
        "name": name, "pipeline": "diagnostic", "gpu_class": "cpu", "gpus_per_worker": 0,
        "slots_per_worker": 2, "image": "local", "maximum": 1, **fields,
    }  # fmt: skip


def test_pools_come_from_the_file_and_a_bad_file_changes_nothing(db, tmp_path, settings):
    settings.DATA_DIR = tmp_path
    path = tmp_path / "pools.json"
    path.write_text(json.dumps([_pool("diag-a"), _pool("diag-b", maximum=3)]))
    call_command("orchestrate", "--once", "--pools", str(path), "--backend", "local")
    assert sorted(WorkerPool.objects.values_list("name", "maximum")) == [
        ("diag-a", 1),
        ("diag-b", 3),
    ]
    before = database_rows()
    for bad in (
        [_pool("diag-a"), _pool("diag-a")],
        [_pool("diag-a", gpu_class="h100")],  # a GPU pool with no GPUs
        [_pool("Not A DNS Name")],
        [_pool("diag-a", warm_minimum=5)],
        [{**_pool("diag-a"), "colour": "blue"}],
        {"name": "not-a-list"},
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(CommandError, match="pool"):
            call_command("orchestrate", "--once", "--pools", str(path), "--backend", "local")
        assert database_rows() == before


def _events(log) -> list[str]:
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line).get("event", ""))
        except ValueError:
            continue
    return events


def test_one_leader_and_a_standby_that_takes_over(transactional_db, tmp_path):
    pools = tmp_path / "pools.json"
    pools.write_text(json.dumps([_pool("diag-a")]))
    env = child_env(tmp_path / "data")
    args = ("orchestrate", "--backend", "local", "--pools", str(pools), "--interval", "0.2")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = manage(env, *args, log=first_log)
    try:
        wait_for(lambda: "leader_acquired" in _events(first_log), 60, "the first leader")
        second = manage(env, *args, log=second_log)
        try:
            wait_for(lambda: "standing_by" in _events(second_log), 60, "the standby")
            assert "leader_acquired" not in _events(second_log)
            first.send_signal(signal.SIGKILL)  # dies without releasing anything
            first.wait(10)
            wait_for(lambda: "leader_acquired" in _events(second_log), 60, "the take-over")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()


def test_the_file_switches_off_only_its_own_pools(db):
    from inference.pools import sync_pools

    WorkerPool.objects.create(**{**_pool("made-by-operator"), "image": "x"})
    sync_pools([_pool("diag-a"), _pool("diag-b")])
    changes = sync_pools([_pool("diag-a")])
    assert changes == ["deactivated diag-b"]
    active = set(WorkerPool.objects.filter(is_active=True).values_list("name", flat=True))
    assert active == {"diag-a", "made-by-operator"}
    assert sync_pools([_pool("diag-a")]) == []  # nothing to do: nothing written
