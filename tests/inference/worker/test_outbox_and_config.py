"""The outbox journal and the worker's configuration, directly.

Real: the `Outbox` with its JSONL journal on disk, `load_config` on an environment mapping.
Simulated: a crash mid-write is a journal whose last line is cut short.
"""

from __future__ import annotations

import pytest

from inference import contracts
from inference.worker.config import ConfigError, load_config
from inference.worker.outbox import Outbox


def report(rid: str, kind: str = "usage") -> contracts.Report:
    return contracts.Report(
        report_id=rid,
        workload_id="wl-1",
        attempt=2,
        kind=kind,
        usage=contracts.Usage(gpu_seconds=1.5) if kind == "usage" else None,
        status="succeeded" if kind == "result" else None,
        output={"frames": 3} if kind == "result" else {},
    )


def test_the_journal_replays_what_is_still_owed_in_order(tmp_path):
    path = tmp_path / "outbox.jsonl"
    outbox = Outbox(path)
    for rid in ("a" * 8, "b" * 8, "c" * 8):
        outbox.add(report(rid))
    outbox.add(report("d" * 8, "result"))
    outbox.remove(["b" * 8])
    outbox.close()
    with path.open("a") as journal:
        journal.write('{"add": {"report_id": "eeee')  # a crash mid-write

    replayed = Outbox(path)

    assert [r.report_id for r in replayed.peek(10)] == ["a" * 8, "c" * 8, "d" * 8]
    assert replayed.peek(10)[0] == report("a" * 8)  # same id, same content
    assert replayed.peek(10)[2] == report("d" * 8, "result")
    replayed.remove(["a" * 8, "c" * 8, "d" * 8])
    replayed.close()
    emptied = Outbox(path)
    assert len(emptied) == 0
    emptied.close()


def test_configuration_from_the_environment():
    config = load_config(
        {
            contracts.ENV_CONTROL_URL: "http://web:8000/",
            contracts.ENV_WORKER_TOKEN: "ibw_secret",
            contracts.ENV_WORKER_ID: "render-l4-7",
            contracts.ENV_SLOTS: "4",
            contracts.ENV_METRICS_PORT: "0",
            contracts.ENV_EXIT_WHEN_IDLE_S: "120",
            "IRONBOWL_GPUS": "1",
            "IRONBOWL_WORKER_STATE_DIR": "/var/lib/worker",
        }
    )

    assert config.control_url == "http://web:8000"
    assert config.slots == 4 and config.gpus == 1
    assert config.metrics_port == 0
    assert config.exit_when_idle_s == 120
    assert config.drain_grace_s == 30
    assert config.pipeline == "diagnostic"
    assert "ibw_secret" not in repr(config)


def test_invalid_configuration_names_every_problem():
    with pytest.raises(ConfigError) as raised:
        load_config(
            {
                contracts.ENV_CONTROL_URL: "ftp://nowhere",
                contracts.ENV_SLOTS: "0",
                "IRONBOWL_GPUS": "-1",
                "IRONBOWL_DRAIN_GRACE_S": "soon",
            }
        )

    problems = "\n".join(raised.value.problems)
    assert "IRONBOWL_CONTROL_URL must be an http(s) URL" in problems
    assert "IRONBOWL_WORKER_TOKEN is required" in problems
    assert "IRONBOWL_SLOTS must be at least 1" in problems
    assert "IRONBOWL_GPUS must be at least 0" in problems
    assert "IRONBOWL_DRAIN_GRACE_S must be a number" in problems
