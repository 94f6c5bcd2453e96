"""Helpers shared by tests."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from django.apps import apps

from ironbowl.channel_layers import redis_channel_layer

# The project's own apps: every table a request could write to lives in one of them.
PROJECT_APPS = ("tenants", "scheduling", "avatars", "inference")


def database_rows() -> dict[str, list[tuple[object, ...]]]:
    """Every row of every project table: equal before and after means nothing was written."""
    rows = {}
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS:
            continue
        # The base manager is the plain one: a test may read across tenants.
        rows[model._meta.label] = list(model._base_manager.order_by("pk").values_list())
    return rows


def require_tool(command: str, package: str) -> None:
    """Skip the test when `command` is not installed here; fail it under CI (env CI set), which
    installs every tool the tests use, so that a missing one cannot pass as skipped."""
    if shutil.which(command) is not None:
        return
    reason = f"{command} (Debian package {package}) is not installed"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it")
    pytest.skip(reason)


def layer_settings(kind: str) -> dict[str, Any]:
    """Channel layer settings for the websocket tests: in memory, or channels-redis on REDIS_URL
    (required in CI)."""
    if kind == "in-memory":
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but REDIS_URL is empty")
        pytest.skip("REDIS_URL is not set")
    return {"default": redis_channel_layer(redis_url, prefix="ironbowl-test")}
