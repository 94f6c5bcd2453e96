"""What each plan allows. The billing issue moves plans into the database; until then they are
named on the organization and defined here, in one place."""

from __future__ import annotations

import dataclasses

from tenants.models import Organization


@dataclasses.dataclass(frozen=True)
class PlanLimits:
    seats: int  # concurrent digital-employee instances across all hires
    # Concurrent inference slots per GPU class (a class not named has none).
    gpu_slots: dict[str, int] = dataclasses.field(default_factory=dict)
    gpu_hours_per_month: int = 0
    # Fair-share weight among organizations waiting at the same priority.
    share_weight: int = 1
    # How long raw analytics events are kept (rollups are kept for good).
    event_retention_days: int = 30


PLANS: dict[str, PlanLimits] = {
    "trial": PlanLimits(
        seats=5, gpu_slots={"cpu": 8, "l4": 4, "h100": 2}, gpu_hours_per_month=50, share_weight=1
    ),
    "standard": PlanLimits(
        seats=50,
        gpu_slots={"cpu": 32, "l4": 32, "h100": 16, "a100": 16},
        gpu_hours_per_month=2_000,
        share_weight=4,
        event_retention_days=90,
    ),
    "enterprise": PlanLimits(
        seats=1000,
        gpu_slots={"cpu": 512, "l4": 512, "h100": 256, "h200": 128, "a100": 256},
        gpu_hours_per_month=100_000,
        share_weight=16,
        event_retention_days=400,
    ),
}


def retention_classes() -> list[int]:
    """Every event retention period a plan has (raw events are partitioned by it)."""
    return sorted({plan.event_retention_days for plan in PLANS.values()})


def limits_of(organization: Organization) -> PlanLimits:
    return PLANS.get(organization.plan, PLANS["trial"])
