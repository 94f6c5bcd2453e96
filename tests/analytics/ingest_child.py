"""A process that sends one batch through the whole HTTP stack and stops dead mid-batch.

Run by test_ingest_kill.py: after the batch's rows are written (inside its transaction, before
the commit), it creates the file named by KILL_MARKER and sleeps until it is killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ironbowl.settings")
django.setup()

from rest_framework.test import APIClient  # noqa: E402

from ironbowl.analytics import ingestion  # noqa: E402

marker = Path(os.environ["KILL_MARKER"])
write_rows = ingestion._copy if "postgres" in os.environ["DATABASE_URL"] else ingestion._bulk_insert


def written_then_stuck(*args: object) -> object:
    by_hour = write_rows(*args)  # type: ignore[arg-type]
    marker.write_text(str(sum(by_hour.values())))
    time.sleep(3600)  # the test kills us here, inside the batch's transaction
    return by_hour


setattr(ingestion, write_rows.__name__, written_then_stuck)
client = APIClient()
client.credentials(HTTP_AUTHORIZATION=f"Bearer {os.environ['EVENTS_TOKEN']}")
response = client.post(
    f"/api/v1/orgs/{os.environ['ORG_SLUG']}/events/",
    Path(os.environ["BATCH_FILE"]).read_text(),
    content_type="application/json",
)
print(json.dumps(response.json()))
sys.exit(0)
