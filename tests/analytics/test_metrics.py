"""Analytics on /metrics: platform-wide figures, no organization in any label.

Real: events go through the intake endpoint and the ingestion service; /metrics is scraped through
Django as Prometheus would; promtool (Debian's prometheus package) checks the exposition.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from ironbowl.analytics import partitions
from tests import factories
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
    return client.post(
        f"/api/v1/orgs/{org.slug}/events/", json.dumps(batch), content_type="application/json"
    )


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


def test_no_analytics_metric_names_an_organization(org_a, client):
    send(org_a, [{"id": "n1", "type": "visit", "occurred_at": timezone.now().isoformat()}])
    identifiers = {org_a.slug, str(org_a.pk)}
    for family in text_string_to_metric_families(scrape(client)):
        if not family.name.startswith("ironbowl_analytics"):
            continue
        for sample in family.samples:
            assert not identifiers & set(sample.labels.values()), sample
            assert set(sample.labels) <= {"outcome", "usage_type", "le"}, sample


def test_the_exposition_with_analytics_passes_promtool(org_a, client):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool (Debian package prometheus) is required in CI")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    late = (timezone.now() - dt.timedelta(hours=3)).isoformat()
    send(org_a, [{"id": "p1", "type": "visit", "occurred_at": late}])
    exposition = scrape(client)
    assert "ironbowl_analytics_event_delay_seconds_bucket" in exposition
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
