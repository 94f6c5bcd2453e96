"""Helpers for tests that race two transactions against PostgreSQL's row locks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection


def require_row_locks() -> None:
    """Skip on SQLite (fail under CI, which runs PostgreSQL): SQLite has no row locks (it
    ignores SELECT FOR UPDATE) and lets one writer in at a time, so there is no race to test."""
    if connection.vendor == "postgresql":
        return
    reason = (
        "Racing transactions need PostgreSQL's row locks: SQLite ignores SELECT FOR UPDATE (and "
        "SKIP LOCKED) and lets one writer in at a time, so there is no race to test. Run with "
        "DATABASE_URL=postgres://… (CI does)."
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def in_thread(name: str, work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `work` in a thread with its own database connection; its result (or the error it
    raised, so that the test reports it instead of losing it in the thread) lands in the dict."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except BaseException as error:
            out["error"] = error
        finally:
            connection.close()

    return threading.Thread(target=run, name=name), out


def someone_waits_for_a_lock(timeout: float = 60.0) -> bool:
    """Whether another connection to this database is seen waiting for a lock within `timeout`."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)  # polling a condition, with a deadline
    return False
