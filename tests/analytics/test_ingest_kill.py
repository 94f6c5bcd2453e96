"""A process killed in the middle of a batch leaves nothing half-written; the retry completes it.

Real: a second Python process posts the batch through the whole Django stack to the same test
database (PostgreSQL in CI: COPY into staging, INSERT … ON CONFLICT; SQLite locally: its journal);
it is stopped with SIGKILL after the batch's rows were written and before the commit — the
moment the batch is most half-done. The only artifice is where it stops: the child wraps the
row-writing function to signal and sleep there (tests/analytics/ingest_child.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from ironbowl.analytics.models import Event, RollupMark
from tests import factories
from tests.inference.processes import REPO, child_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_batch_killed_before_its_commit_is_stored_whole_by_the_retry(org_a, tmp_path):
    _key, token = factories.make_api_key(org_a, scopes=["events.write"])
    now = timezone.now()
    batch = [
        {"id": f"k{i}", "type": "visit", "occurred_at": (now - dt.timedelta(seconds=i)).isoformat()}
        for i in range(500)
    ]
    (tmp_path / "batch.json").write_text(json.dumps(batch))
    marker = tmp_path / "written"
    with (tmp_path / "child.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "analytics" / "ingest_child.py")],
            cwd=REPO,
            env=child_env(
                tmp_path,
                KILL_MARKER=str(marker),
                EVENTS_TOKEN=token,
                ORG_SLUG=org_a.slug,
                BATCH_FILE=str(tmp_path / "batch.json"),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(marker.exists, 120, "the child to write the batch's rows")
        assert marker.read_text() == "500"  # it had written all of them, uncommitted
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    assert Event.objects.for_organization(org_a).count() == 0
    assert RollupMark.objects.for_organization(org_a).count() == 0

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"/api/v1/orgs/{org_a.slug}/events/"
    retry = client.post(url, json.dumps(batch), content_type="application/json").json()
    assert (retry["accepted"], retry["duplicates"]) == (500, 0)
    again = client.post(url, json.dumps(batch), content_type="application/json").json()
    assert (again["accepted"], again["duplicates"]) == (0, 500)
    assert Event.objects.for_organization(org_a).count() == 500
