"""Reactions to other packages' signals."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from avatars.models import EmploymentStatus
from avatars.signals import employment_status_changed
from inference.models import WorkloadKind
from inference.signals import workload_changed
from scheduling import duty, services
from tenants.models import Membership
from tenants.roles import Role
from tenants.signals import membership_removed, membership_role_changed


@receiver(membership_removed)
def _drop_station_grants(sender: Any, membership: Membership, **_: Any) -> None:
    services.drop_grants_of_member(membership)


@receiver(membership_role_changed)
def _drop_grants_of_former_operator(sender: Any, membership: Membership, **_: Any) -> None:
    # Per-station grants are for operators; other roles operate all stations or none.
    if membership.role != Role.OPERATOR:
        services.drop_grants_of_member(membership)


@receiver(workload_changed, dispatch_uid="scheduling.duty.follow_workload")
def _follow_stream(
    sender: Any, organization_id: Any, workload_id: Any, kind: str, state: str, **_: Any
) -> None:
    # A shift's stream came on air, ended or failed: its shift follows (duty.tick catches up
    # with a signal that was lost). Queued, admitted and placed change nothing for a shift.
    if kind == WorkloadKind.LIVE and state in duty.STREAM_MOVES:
        duty.follow_workload(organization_id, workload_id)


@receiver(employment_status_changed, dispatch_uid="scheduling.duty.stand_down")
def _stand_down_shifts(
    sender: Any, organization_id: Any, employment_id: Any, to_status: str, **_: Any
) -> None:
    if to_status in (EmploymentStatus.SUSPENDED, EmploymentStatus.TERMINATED):
        duty.stand_down(organization_id, employment_id, to_status)
