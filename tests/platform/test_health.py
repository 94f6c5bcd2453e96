"""Liveness and readiness probes.

Failures are real, not mocked checks: the database connection is pointed at a path or port where
nothing answers, the broker at a closed Redis port or a data folder without its broker queue.
"""

from __future__ import annotations

import contextlib
import socket

import pytest
from django.db import connection


def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def unreachable_database(tmp_path):
    """Reconnect the default connection to a database that cannot be opened, then restore it."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(tmp_path / "no-such-folder" / "db.sqlite3")
    else:
        connection.settings_dict["HOST"] = "127.0.0.1"
        connection.settings_dict["PORT"] = closed_port()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_healthz_answers_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_database_and_broker_answer(db, client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


# transactional_db: the connection is closed mid-test, which a test wrapped in a transaction
# cannot survive.
@pytest.mark.django_db(transaction=True)
def test_readyz_names_an_unreachable_database_while_healthz_stays_ok(client, tmp_path):
    with unreachable_database(tmp_path):
        ready = client.get("/readyz")
        alive = client.get("/healthz")

    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"] == "ok"
    assert body["checks"]["database"].startswith("OperationalError")
    assert alive.status_code == 200
    # Restored: the next probe sees the database again.
    assert client.get("/readyz").status_code == 200


def test_readyz_names_an_unreachable_redis_broker(db, client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("ConnectionError")


def test_readyz_names_a_missing_filesystem_broker(db, client, settings, tmp_path):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_DIR = tmp_path / "data" / "broker"  # never created

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert "broker folder" in body["checks"]["broker"]
    assert "missing" in body["checks"]["broker"]


def test_readyz_is_ready_with_a_filesystem_broker_in_place(db, client, settings, tmp_path):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_DIR = tmp_path / "broker"
    (tmp_path / "broker" / "queue").mkdir(parents=True)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"
