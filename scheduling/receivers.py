"""Reactions to other packages' signals."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from scheduling import services
from tenants.models import Membership
from tenants.signals import membership_removed


@receiver(membership_removed)
def _drop_station_grants(sender: Any, membership: Membership, **_: Any) -> None:
    services.drop_grants_of_member(membership)
