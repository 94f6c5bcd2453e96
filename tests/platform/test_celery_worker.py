"""A real Celery worker process takes a task from the real broker and changes the database.

Broker: Redis when REDIS_URL is set (CI), otherwise the embedded filesystem broker that
`make run` uses. Each test run listens on its own queue so no other worker can take its task.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ironbowl.celery import app
from tenants.models import Invitation, InvitationStatus
from tests import factories

REPO = Path(settings.BASE_DIR)


def _database_url() -> str:
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    return f"{base}/{name}"


def _wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def worker(transactional_db):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)]),
        "DATABASE_URL": _database_url(),
        "DATA_DIR": str(settings.DATA_DIR),
        "LOG_FORMAT": "console",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ironbowl",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode not in (0, -15):
            print(output)


def test_worker_runs_the_expire_invitations_task(worker):
    invitation = factories.InvitationFactory(expires_at=timezone.now() - dt.timedelta(minutes=1))
    fresh = factories.InvitationFactory(
        organization=invitation.organization, expires_at=timezone.now() + dt.timedelta(days=1)
    )
    app.send_task("tenants.expire_invitations", queue=worker)

    def expired() -> bool:
        rows = Invitation.objects.for_organization(invitation.organization)
        return rows.get(pk=invitation.pk).status == InvitationStatus.EXPIRED

    _wait_for(expired, what="the worker to expire the invitation")
    rows = Invitation.objects.for_organization(invitation.organization)
    assert rows.get(pk=fresh.pk).status == InvitationStatus.PENDING


def test_every_beat_entry_names_a_registered_task():
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks
    assert app.conf.beat_schedule["tenants.expire_invitations"]["task"] in app.tasks
