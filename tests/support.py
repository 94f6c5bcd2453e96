"""Helpers shared by tests."""

from __future__ import annotations

from django.apps import apps

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
