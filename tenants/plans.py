"""What each plan allows. The billing issue moves plans into the database; until then they are
named on the organization and defined here, in one place."""

from __future__ import annotations

import dataclasses

from tenants.models import Organization


@dataclasses.dataclass(frozen=True)
class PlanLimits:
    seats: int  # concurrent digital-employee instances across all hires


PLANS: dict[str, PlanLimits] = {
    "trial": PlanLimits(seats=5),
    "standard": PlanLimits(seats=50),
    "enterprise": PlanLimits(seats=1000),
}


def limits_of(organization: Organization) -> PlanLimits:
    return PLANS.get(organization.plan, PLANS["trial"])
