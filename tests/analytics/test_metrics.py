"""Analytics on /metrics: platform-wide figures, no organization in any label.

Real: events go through the intake endpoint and the ingestion service; /metrics is scraped through
Django as Prometheus would; a real Celery worker (prefork pool, the test's broker and database)
rolls up and serves its own /metrics over HTTP; promtool (Debian's prometheus package) checks the
expositions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from ironbowl.analytics import partitions
from ironbowl.analytics.models import Event, Rollup, RollupMark
from ironbowl.celery import app
from tests import factories
from tests.inference.processes import REPO, child_env, wait_for
from tests.platform.test_metrics import samples, scrape


@pytest.fixture(autouse=True)
def _partitions_forgotten():
    partitions.forget()
    yield
    partitions.forget()


def send(org, batch):
    _key, token = factories.make_api_key(org, scopes=["events.write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = batch if isinstance(batch, bytes) else json.dumps(batch)
    return client.post(f"/api/v1/orgs/{org.slug}/events/", body, content_type="application/json")


@contextlib.contextmanager
def database_refusing_marks():
    """A real database error inside ingestion's transaction: a trigger refuses every new rollup
    mark until the block ends."""
    table = RollupMark._meta.db_table
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(
                "CREATE FUNCTION test_refuse_marks() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER test_refuse_marks BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_marks()"
            )
        else:
            cursor.execute(
                f"CREATE TEMP TRIGGER test_refuse_marks BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER test_refuse_marks{f' ON {table}' if postgres else ''}")
            if postgres:
                cursor.execute("DROP FUNCTION test_refuse_marks()")


def test_ingestion_is_counted_by_outcome_and_the_backlog_is_shown(org_a, client):
    before = samples(scrape(client), "ironbowl_analytics_events_total")
    now = timezone.now().isoformat()
    batch = [
        {"id": "m1", "type": "visit", "occurred_at": now},
        {"id": "m2", "type": "visit", "occurred_at": now},
        {"id": "m3", "type": "view", "occurred_at": now},  # no value: rejected
    ]
    send(org_a, batch)
    send(org_a, batch[:1])  # a retry: duplicate

    exposition = scrape(client)
    after = samples(exposition, "ironbowl_analytics_events_total")

    def grew(outcome: str) -> float:
        key = (("outcome", outcome),)
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert (grew("stored"), grew("duplicate"), grew("rejected")) == (2, 1, 1)
    assert samples(exposition, "ironbowl_analytics_rollup_backlog_marks")[()] >= 1
    assert samples(exposition, "ironbowl_analytics_rollup_lag_seconds")[()] >= 0
    assert samples(exposition, "ironbowl_analytics_state_up")[()] == 1


def test_batches_are_counted_by_what_became_of_them(org_a, client):
    """stored: anything new or already there; rejected: every event refused (422); refused:
    the batch unreadable (400); failed: a database error (500), nothing stored."""
    before = samples(scrape(client), "ironbowl_analytics_batches_total")
    now = timezone.now().isoformat()
    answers = [
        send(org_a, [{"id": "b1", "type": "visit", "occurred_at": now}]).status_code,
        send(org_a, [{"id": "b1", "type": "visit", "occurred_at": now}]).status_code,
        send(org_a, [{"id": "b2", "type": "view", "occurred_at": now}]).status_code,
        send(org_a, b"[{not json").status_code,
    ]
    with database_refusing_marks():
        failed = send(org_a, [{"id": "b3", "type": "visit", "occurred_at": now}])

    assert answers == [200, 200, 422, 400]
    assert (failed.status_code, failed.json()["code"]) == (500, "server_error")
    ids = Event.objects.for_organization(org_a).values_list("client_event_id", flat=True)
    assert list(ids) == ["b1"]
    after = samples(scrape(client), "ironbowl_analytics_batches_total")
    grew = {
        dict(labels)["outcome"]: value - before.get(labels, 0.0) for labels, value in after.items()
    }
    assert grew == {"stored": 2, "rejected": 1, "refused": 1, "failed": 1}


def test_no_analytics_metric_names_an_organization(org_a, client):
    send(org_a, [{"id": "n1", "type": "visit", "occurred_at": timezone.now().isoformat()}])
    identifiers = {org_a.slug, str(org_a.pk)}
    for family in text_string_to_metric_families(scrape(client)):
        if not family.name.startswith("ironbowl_analytics"):
            continue
        for sample in family.samples:
            assert not identifiers & set(sample.labels.values()), sample
            assert set(sample.labels) <= {"outcome", "usage_type", "le"}, sample


def promtool_check(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool (Debian package prometheus) is required in CI")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_exposition_with_analytics_passes_promtool(org_a, client):
    late = (timezone.now() - dt.timedelta(hours=3)).isoformat()
    send(org_a, [{"id": "p1", "type": "visit", "occurred_at": late}])
    exposition = scrape(client)
    assert "ironbowl_analytics_event_delay_seconds_bucket" in exposition
    promtool_check(exposition)


# What a worker of an earlier run left in the pod's metrics folder (an emptyDir survives a
# container restart): five rollup errors, counted by a process that no longer exists.
STALE_RUN = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {platform!r})
    from prometheus_client import Counter
    Counter("ironbowl_analytics_rollup_errors", "Organization-days whose rollup failed.").inc(5)
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _worker_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text: str = answer.read().decode()
        return text


def _answers(port: int) -> str | None:
    try:
        return _worker_metrics(port)
    except OSError:
        return None


def _metric(exposition: str, name: str) -> float:
    return samples(exposition, name).get((), 0.0)


@pytest.fixture
def metrics_worker(transactional_db, tmp_path):
    """A Celery worker as the chart runs it: a prefork pool of two, WORKER_METRICS_PORT and a
    metrics folder of its own (with an earlier run's file in it), on a queue of this test."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    stale = subprocess.run(
        [sys.executable, "-c", STALE_RUN.format(platform=str(REPO / "platform"))],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert stale.returncode == 0, stale.stderr
    queue, port = f"test-{uuid.uuid4().hex[:8]}", _free_port()
    env = child_env(
        Path(settings.DATA_DIR),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        WORKER_METRICS_PORT=str(port),
    )
    command = [sys.executable, "-m", "celery", "-A", "ironbowl", "worker", "--loglevel", "INFO"]
    command += ["--pool", "prefork", "--concurrency", "2", "--queues", queue]
    command += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _answers(port) or process.poll() is not None, 60, "the worker's /metrics")
        assert process.poll() is None, log.read_text()
        yield queue, port, metrics_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log.read_text())  # shown when the test fails


@pytest.mark.slow
def test_the_worker_serves_its_rollup_metrics(metrics_worker, org_a, events):
    """The rollup runs in a pool process; the worker's main process serves its counts on
    WORKER_METRICS_PORT, summed over the pool's files, without the earlier run's."""
    queue, port, metrics_dir = metrics_worker
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    events(org_a, [{"type": "visit", "occurred_at": hour + dt.timedelta(minutes=5)}])
    assert RollupMark.objects.for_organization(org_a).exists()
    before = _worker_metrics(port)
    assert _metric(before, "ironbowl_analytics_rollup_errors_total") == 0  # the stale 5 are gone

    app.send_task("analytics.rollup", queue=queue)

    exposition = str(
        wait_for(
            lambda: (
                (text := _worker_metrics(port))
                and _metric(text, "ironbowl_analytics_rollup_duration_seconds_count")
                and text
            ),
            60,
            "the rollup's figures on the worker's /metrics",
        )
    )
    assert Rollup.objects.for_organization(org_a).exists()
    assert not RollupMark.objects.for_organization(org_a).exists()
    assert _metric(exposition, "ironbowl_analytics_rollup_duration_seconds_count") == 1
    assert _metric(exposition, "ironbowl_analytics_rollup_delay_seconds_count") == 1
    assert _metric(exposition, "ironbowl_analytics_rollup_errors_total") == 0
    # Served by the main process from the pool child's file: two processes wrote samples.
    pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}
    assert len(pids) >= 2, sorted(pids)
    promtool_check(exposition)
