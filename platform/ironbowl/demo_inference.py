"""The demo's inference: the embedded CPU pools and a system check for each demo organization.

Each check is a diagnostic workload that holds a CPU slot for a few seconds, so that `make run`
shows the orchestrator starting a local worker, the workload running and reporting usage, and
the idle worker being stopped afterwards. Idempotent: a check is submitted once per organization.
"""

from __future__ import annotations

from inference import services as inference
from inference.pools import EMBEDDED_POOLS, sync_pools
from tenants.models import Organization

CHECK_SECONDS = 5.0


def seed_inference(slugs: list[str]) -> list[str]:
    created = [f"pool {change}" for change in sync_pools(EMBEDDED_POOLS)]
    for organization in Organization.objects.filter(slug__in=slugs).order_by("slug"):
        _workload, new = inference.submit(
            organization,
            kind="render",
            spec={"seconds": CHECK_SECONDS, "message": "demo system check"},
            pool_name="diagnostic-cpu",
            idempotency_key="demo-system-check",
        )
        if new:
            created.append(f"{organization.slug} system check")
    return created
