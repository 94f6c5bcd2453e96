"""Structured request logs: one JSON object per line, with the request id and the organization.

The lines are read from the configured `console` handler (its stream swapped for a buffer), so
what is checked is what the processes write in production.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest
from django.conf import settings

from tenants.models import AuditEntry


@pytest.fixture
def log_lines():
    """Everything the configured console handler writes during the test, parsed line by line."""
    if settings.LOGGING["formatters"]["structured"]["processors"][-1].__class__.__name__ != (
        "JSONRenderer"
    ):
        pytest.skip("LOG_FORMAT is not json")
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        if previous is not None:
            handler.setStream(previous)


def finished(lines, path: str) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line["event"] == "request_finished" and line["request"].split(" ", 1)[1] == path
    ]


def test_request_log_line_carries_request_id_and_organization(org_a, owner_a, api_a, log_lines):
    path = f"/api/v1/orgs/{org_a.slug}/stations/"

    assert api_a.get(path).status_code == 200
    assert api_a.get(path).status_code == 200

    first, second = finished(log_lines(), path)
    for line in (first, second):
        assert line["organization"] == "alpha-hospital"
        assert line["code"] == 200
        assert line["level"] == "info"
        assert line["user_id"] == owner_a.user.pk
        uuid.UUID(line["request_id"])
    assert first["request_id"] != second["request_id"]


def test_every_line_of_one_request_shares_its_request_id(org_a, api_a, log_lines):
    path = f"/api/v1/orgs/{org_a.slug}/stations/"

    api_a.get(path)

    lines = [line for line in log_lines() if line.get("request", "").endswith(path)]
    assert [line["event"] for line in lines] == ["request_started", "request_finished"]
    assert lines[0]["request_id"] == lines[1]["request_id"]


def test_organization_does_not_leak_into_the_next_request(org_a, api_a, log_lines):
    api_a.get(f"/api/v1/orgs/{org_a.slug}/stations/")
    api_a.get("/api/v1/me/")

    (line,) = finished(log_lines(), "/api/v1/me/")
    assert "organization" not in line


def _create_station(api, organization, name: str, **headers):
    response = api.post(
        f"/api/v1/orgs/{organization.slug}/stations/",
        {"name": name, "kind": "kiosk"},
        format="json",
        **headers,
    )
    assert response.status_code == 201
    return AuditEntry.objects.for_organization(organization).get(object_id=response.json()["id"])


def test_audit_entry_carries_the_request_id_of_the_log_line(org_a, api_a, log_lines):
    entry = _create_station(api_a, org_a, "Lobby")

    (line,) = finished(log_lines(), f"/api/v1/orgs/{org_a.slug}/stations/")
    assert line["code"] == 201
    uuid.UUID(line["request_id"])
    assert entry.request_id == line["request_id"]


def test_upstream_request_id_names_the_request_in_logs_and_audit(org_a, api_a, log_lines):
    # The ingress (or a client) sends X-Request-ID: logs and audit log must agree on it.
    entry = _create_station(api_a, org_a, "Lobby", HTTP_X_REQUEST_ID="ingress-7f3a")

    (line,) = finished(log_lines(), f"/api/v1/orgs/{org_a.slug}/stations/")
    assert line["request_id"] == "ingress-7f3a"
    assert entry.request_id == "ingress-7f3a"


def test_client_errors_are_logged_as_warnings_with_the_organization(org_a, api_a, log_lines):
    path = f"/api/v1/orgs/{org_a.slug}/stations/"

    assert api_a.post(path, {"colour": "red"}, format="json").status_code == 400

    (line,) = finished(log_lines(), path)
    assert line["level"] == "warning"
    assert line["code"] == 400
    assert line["organization"] == "alpha-hospital"
