"""Prometheus exposition at /metrics, in one process and aggregated over several.

The multiprocess test starts real Python processes that import `ironbowl.metrics` the way
`manage.py` sets up the path, as gunicorn workers do, and counts what they wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(settings.BASE_DIR)
REQUESTS = "ironbowl_http_requests_total"


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text: str = response.content.decode()
    return text


def test_a_request_is_counted_by_method_route_and_status(org_a, api_a, client):
    key = (("method", "GET"), ("route", "api/v1/orgs/<slug:org>/stations/$"), ("status", "2xx"))
    before = samples(scrape(client), REQUESTS).get(key, 0.0)

    assert api_a.get(f"/api/v1/orgs/{org_a.slug}/stations/").status_code == 200

    exposition = scrape(client)
    assert samples(exposition, REQUESTS)[key] == before + 1
    assert "ironbowl_http_request_duration_seconds_bucket" in exposition


def test_routes_are_labelled_by_pattern_not_by_slug_or_id(org_a, api_a, client):
    missing = "00000000-0000-4000-8000-000000000000"
    assert api_a.get(f"/api/v1/orgs/{org_a.slug}/stations/{missing}/").status_code == 404

    routes = {dict(labels)["route"] for labels in samples(scrape(client), REQUESTS)}
    assert not any(org_a.slug in route or missing in route for route in routes)
    assert "api/v1/orgs/<slug:org>/stations/(?P<pk>[0-9a-f-]{36})/$" in routes


def test_exposition_passes_promtool(org_a, api_a, client, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool (Debian package prometheus) is required in CI")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    api_a.get(f"/api/v1/orgs/{org_a.slug}/stations/")

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(client), capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


# One process of a multi-worker server: the path set up as manage.py does (platform/ is a source
# folder, never a package), Django configured, then requests counted.
WORKER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {platform!r})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ironbowl.settings")
    import django
    django.setup()
    from ironbowl.metrics import HTTP_REQUESTS
    for _ in range({count}):
        HTTP_REQUESTS.labels("GET", "multiprocess-probe/", "2xx").inc()
    """
)


def test_counts_of_several_processes_are_summed(db, client, tmp_path, monkeypatch):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
    }
    counts = (7, 12)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER.format(platform=str(REPO / "platform"), count=count)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for count in counts
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output
    assert len(list(metrics_dir.glob("counter_*.db"))) == len(counts)

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    exposition = scrape(client)

    key = (("method", "GET"), ("route", "multiprocess-probe/"), ("status", "2xx"))
    assert samples(exposition, REQUESTS) == {key: sum(counts)}
