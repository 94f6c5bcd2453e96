"""Worker pools from configuration: the chart's pools.json, or the embedded default.

`sync_pools` creates and updates pools by name and switches off pools the file no longer lists
(their workers drain; their history stays). Pools that operators made through the API are not
the file's to switch off. Every pool is validated before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from inference.models import WorkerPool

FIELDS = (
    "pipeline",
    "model",
    "gpu_class",
    "gpus_per_worker",
    "slots_per_worker",
    "image",
    "warm_minimum",
    "maximum",
    "batch",
    "node_selector",
    "tolerations",
)

# `make run`: CPU workers on this machine, one pool per pipeline.
EMBEDDED_POOLS: list[dict[str, Any]] = [
    {"name": name, "pipeline": pipeline, "gpu_class": "cpu", "gpus_per_worker": 0,
     "slots_per_worker": slots, "image": "local", "warm_minimum": warm, "maximum": maximum,
     "batch": batch}
    for name, pipeline, slots, warm, maximum, batch in (
        ("diagnostic-cpu", "diagnostic", 4, 0, 2, False),
        ("live-cpu", "live", 2, 0, 4, False),
        ("converse-cpu", "converse", 4, 0, 2, False),
        ("render-cpu", "render", 2, 0, 2, True),
        ("build-cpu", "build", 1, 0, 1, True),
    )
]  # fmt: skip


class PoolConfigError(ValueError):
    """A pool definition is invalid; the message names the pool and the field."""


def read_pools_file(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PoolConfigError(f"{path}: cannot read the pools ({error})") from error
    if not isinstance(data, list):
        raise PoolConfigError(f"{path}: expected a JSON list of pools")
    return data


def validated(definitions: list[dict[str, Any]]) -> list[WorkerPool]:
    """Build (unsaved) pools from definitions, refusing the whole set on the first error."""
    pools, seen = [], set()
    for index, definition in enumerate(definitions):
        if not isinstance(definition, dict):
            raise PoolConfigError(f"pool #{index}: expected an object")
        name = str(definition.get("name", ""))
        unknown = set(definition) - {"name", *FIELDS}
        if unknown:
            raise PoolConfigError(f"pool {name or index}: unknown fields {sorted(unknown)}")
        if name in seen:
            raise PoolConfigError(f"pool {name}: listed twice")
        seen.add(name)
        pool = WorkerPool(name=name, **{k: v for k, v in definition.items() if k != "name"})
        try:
            pool.full_clean(validate_unique=False)
        except ValidationError as error:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
            )
            raise PoolConfigError(f"pool {name or index}: {problems}") from error
        pools.append(pool)
    return pools


def sync_pools(definitions: list[dict[str, Any]]) -> list[str]:
    """Make the database's pools match the definitions; returns what changed, in words."""
    wanted = {pool.name: pool for pool in validated(definitions)}
    changes: list[str] = []
    with transaction.atomic():
        existing = {pool.name: pool for pool in WorkerPool.objects.select_for_update()}
        for name, pool in wanted.items():
            current = existing.get(name)
            if current is None:
                pool.from_config = True
                pool.save()
                changes.append(f"created {name}")
                continue
            differing = [f for f in FIELDS if getattr(current, f) != getattr(pool, f)]
            if differing or not current.is_active or not current.from_config:
                for field in differing:
                    setattr(current, field, getattr(pool, field))
                current.is_active = current.from_config = True
                current.save()
                changes.append(f"updated {name} ({', '.join(differing) or 'reactivated'})")
        for name, current in existing.items():
            if name not in wanted and current.is_active and current.from_config:
                current.is_active = False
                current.save(update_fields=["is_active", "updated_at"])
                changes.append(f"deactivated {name}")
    return changes
