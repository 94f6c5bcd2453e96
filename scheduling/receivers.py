"""Reactions to other packages' signals."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from scheduling import services
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
