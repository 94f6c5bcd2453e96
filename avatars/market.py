"""The talent market: the avatars every organization published, and how many seats of a vendor's
avatar are hired — in aggregate only, never which institution hired them.

Both read across organizations on purpose; each does it in one place, named here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from avatars.models import (
    Avatar,
    AvatarStatus,
    ConsentScope,
    Employment,
    EmploymentStatus,
    Visibility,
)

# The hires that hold seats of an avatar: every status but terminated.
NOT_ENDED = (
    EmploymentStatus.OFFERED,
    EmploymentStatus.ONBOARDING,
    EmploymentStatus.ACTIVE,
    EmploymentStatus.SUSPENDED,
)


def on_the_market(at: dt.datetime | None = None) -> Q:
    """What puts an avatar on the talent market, for any organization to see and hire: public,
    ready, its owner active, and built under a consent that lets any organization use the
    likeness, neither revoked nor expired."""
    at = at or timezone.now()
    return Q(
        visibility=Visibility.PUBLIC,
        status=AvatarStatus.READY,
        organization__is_active=True,
        current_version__consent__scope=ConsentScope.ANY,
        current_version__consent__revoked_at__isnull=True,
        current_version__consent__expires_at__gt=at,
    )


def market_avatars(at: dt.datetime | None = None) -> QuerySet[Avatar]:
    """Every organization's avatars that may be hired by any other (`on_the_market`)."""
    # Crossing tenants is the market's purpose. The filter is what an owner published; nothing
    # private, unfinished or without a valid consent for everyone passes it.
    return (
        Avatar.objects.unscoped_dangerously()
        .filter(on_the_market(at))
        .select_related("organization", "current_version")
    )


def with_any_skill(avatars: QuerySet[Avatar], skills: Iterable[str]) -> QuerySet[Avatar]:
    """Avatars that have at least one of the skills."""
    wanted = Q()
    for skill in skills:
        wanted |= Q(skill_index__contains=f"|{skill.casefold()}|")
    return avatars.filter(wanted) if wanted else avatars


def speaking_any(avatars: QuerySet[Avatar], ranges: Iterable[str]) -> QuerySet[Avatar]:
    """Avatars with a language tag in one of the ranges (RFC 4647 basic filtering, as
    `languages.matches`): `zh` finds zh-CN and zh-Hans-CN, `yue` finds yue-HK."""
    wanted = Q()
    for language in ranges:
        tag = language.casefold()
        # The index holds `|tag|tag|`: the range itself, or the range and more subtags.
        wanted |= Q(language_index__contains=f"|{tag}|") | Q(language_index__contains=f"|{tag}-")
    return avatars.filter(wanted) if wanted else avatars


def matching_text(avatars: QuerySet[Avatar], text: str) -> QuerySet[Avatar]:
    """Avatars whose names or description contain every word of `text`, ignoring case."""
    for word in text.casefold().split():
        avatars = avatars.filter(search_text__contains=word)
    return avatars


@dataclasses.dataclass(frozen=True)
class HireStatistics:
    """How many hires of one avatar there are and how many seats they hold, by status, across
    every institution. Counts and sums only: nothing says who hired."""

    hires: dict[str, int]
    seats: dict[str, int]
    institutions: int

    @property
    def hires_not_ended(self) -> int:
        return sum(self.hires.values())

    @property
    def seats_not_ended(self) -> int:
        return sum(self.seats.values())

    def describe_not_ended(self) -> str:
        """`1 Active, 2 Suspended`: the statuses that have hires, with their counts."""
        return ", ".join(
            f"{self.hires[status]} {EmploymentStatus(status).label}"
            for status in NOT_ENDED
            if self.hires[status]
        )


def hire_statistics(avatar: Avatar) -> HireStatistics:
    """Hires of the avatar that have not ended, counted over all institutions, in one query."""
    aggregates: dict[str, Count | Sum] = {
        "institutions": Count("organization_id", distinct=True),
    }
    for status in NOT_ENDED:
        aggregates[f"hires_{status}"] = Count("id", filter=Q(status=status))
        aggregates[f"seats_{status}"] = Sum("seats", filter=Q(status=status))
    # The vendor may know how much of its avatar is hired, not by whom: this reads every
    # institution's employments of the avatar and returns only the aggregates.
    row = (
        Employment.objects.unscoped_dangerously()
        .filter(avatar_id=avatar.pk, status__in=NOT_ENDED)
        .aggregate(**aggregates)
    )
    return HireStatistics(
        hires={status: row[f"hires_{status}"] or 0 for status in NOT_ENDED},
        seats={status: row[f"seats_{status}"] or 0 for status in NOT_ENDED},
        institutions=row["institutions"] or 0,
    )
