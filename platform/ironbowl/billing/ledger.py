"""Appending usage to the ledger (analytics' `UsageRecord`) from outside the worker protocol:
the service an import or an integration would call. Nothing calls it yet — there is no API for
it — so its checks are the contract such a caller will get.

Every entry is checked before anything is written: a usage type the ledger knows (seat-days
excepted: billing derives them from the hires' history), a quantity that is a finite,
non-negative number with at most six decimal places and 15 significant digits (what SQLite,
storing decimals as doubles, keeps exactly too), a source id outside the ledger's own
(`usage-report:`, `seat:`, `reversal:`), an aware time not in the future, an employment of the
organization. One bad entry refuses the batch, with the entry and the reason, and nothing is
written. The ledger is append-only: a source id already recorded with the same usage is that
usage again and appends nothing, so a retried batch is harmless; the same source id with other
usage (type, quantity, hire or time) is refused as a conflict. A correction is a reversing
record (`ironbowl.analytics.usage.reverse`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars.models import Employment
from ironbowl.analytics import marks
from ironbowl.analytics.models import UsageRecord, UsageType
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

APPENDABLE = frozenset(UsageType.values) - {UsageType.SEAT_DAYS}
LARGEST = Decimal(10) ** 14  # UsageRecord.quantity: 20 digits, 6 after the point
PLACES = 6
# What every supported database keeps exactly (SQLite stores decimals as doubles).
SIGNIFICANT = 15
SOURCE_ID_LENGTH = 100
# Clocks differ a little; usage stamped further ahead than this is a mistake.
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_ENTRIES = 10_000
# The ledger's own source ids: worker reports, seat-days and reversals.
RESERVED_PREFIXES = ("usage-report:", "seat:", "reversal:")
# An insert racing another with the same source ids fails on the unique (organization,
# source_id) once the other commits; it reads the ledger again and inserts the rest.
RACE_RETRIES = 3
# What a repeated source id must match to be the same usage again.
SAME_USAGE = ("usage_type", "quantity", "employment_id", "occurred_at")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Appended:
    """What a batch did: records it inserted, and entries that were in the ledger already
    (recorded before, or by a batch racing this one)."""

    appended: int
    duplicates: int


def _refuse(
    index: int, name: str, code: str, detail: str, error: type[DomainError] = DomainError
) -> DomainError:
    return error(
        code,
        _("Entry %(index)d: %(detail)s") % {"index": index, "detail": detail},
        field=f"entries.{index}.{name}",
    )


def _quantity(index: int, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
        raise _refuse(index, "quantity", "invalid_quantity", _("the quantity is not a number."))
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        raise _refuse(
            index, "quantity", "invalid_quantity", _("the quantity is not a number.")
        ) from None
    if not quantity.is_finite():
        raise _refuse(index, "quantity", "invalid_quantity", _("the quantity is not a number."))
    if quantity < 0:
        raise _refuse(
            index,
            "quantity",
            "negative_quantity",
            _("the quantity is negative; a correction is a reversal of the record."),
        )
    if quantity >= LARGEST:
        raise _refuse(index, "quantity", "quantity_too_large", _("the quantity is too large."))
    shape = quantity.normalize().as_tuple()
    exponent = shape.exponent if isinstance(shape.exponent, int) else 0
    if exponent < -PLACES or len(shape.digits) > SIGNIFICANT:
        raise _refuse(
            index,
            "quantity",
            "quantity_too_precise",
            _(
                "the quantity has more than %(places)d decimal places or %(digits)d "
                "significant digits."
            )
            % {"places": PLACES, "digits": SIGNIFICANT},
        )
    return quantity


def _checked(
    organization: Organization, entries: Sequence[Mapping[str, Any]], now: dt.datetime
) -> list[UsageRecord]:
    if len(entries) > MAX_ENTRIES:
        raise DomainError(
            "too_many_entries",
            _("At most %(limit)d entries at once.") % {"limit": MAX_ENTRIES},
            field="entries",
        )
    records: list[UsageRecord] = []
    named: dict[int, uuid.UUID] = {}
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise _refuse(index, "entry", "invalid_entry", _("an entry is a mapping of fields."))
        usage_type = entry.get("usage_type")
        if usage_type not in APPENDABLE:
            raise _refuse(
                index,
                "usage_type",
                "unknown_usage_type",
                _("%(type)r is not a usage type; use one of %(types)s.")
                % {"type": usage_type, "types": ", ".join(sorted(APPENDABLE))},
            )
        quantity = _quantity(index, entry.get("quantity"))
        source_id = entry.get("source_id")
        if not isinstance(source_id, str) or not 0 < len(source_id) <= SOURCE_ID_LENGTH:
            raise _refuse(
                index,
                "source_id",
                "invalid_source_id",
                _("a source id of 1 to %(limit)d characters is required.")
                % {"limit": SOURCE_ID_LENGTH},
            )
        if source_id.startswith(RESERVED_PREFIXES):
            raise _refuse(
                index,
                "source_id",
                "reserved_source_id",
                _("source ids starting with %(prefixes)s are the ledger's own.")
                % {"prefixes": ", ".join(RESERVED_PREFIXES)},
            )
        if source_id in seen:
            raise _refuse(
                index, "source_id", "duplicate_source_id", _("the batch repeats this source id.")
            )
        seen.add(source_id)
        occurred_at = entry.get("occurred_at")
        if not isinstance(occurred_at, dt.datetime) or timezone.is_naive(occurred_at):
            raise _refuse(
                index, "occurred_at", "invalid_time", _("a time with its UTC offset is required.")
            )
        if occurred_at > now + CLOCK_SKEW:
            raise _refuse(index, "occurred_at", "future_time", _("the time is in the future."))
        employment = entry.get("employment_id")
        if employment is not None:
            try:
                named[index] = uuid.UUID(str(employment))
            except ValueError:
                raise _refuse(
                    index, "employment_id", "unknown_employment", _("no such employment.")
                ) from None
        records.append(
            UsageRecord(
                organization=organization,
                source_id=source_id,
                usage_type=usage_type,
                quantity=quantity,
                employment_id=named.get(index),
                occurred_at=occurred_at,
                recorded_at=now,
            )
        )
    if named:
        known = set(
            Employment.objects.for_organization(organization)
            .filter(pk__in=set(named.values()))
            .values_list("pk", flat=True)
        )
        for index, employment_id in named.items():
            if employment_id not in known:  # another organization's looks the same as none
                raise _refuse(
                    index, "employment_id", "unknown_employment", _("no such employment.")
                )
    return records


def insert_new(
    ledger: QuerySet[UsageRecord],
    records: Sequence[UsageRecord],
    stored: Callable[[], Mapping[str, T]],
    check: Callable[[UsageRecord, T], None] | None = None,
) -> list[UsageRecord]:
    """Insert those of `records` whose source id the ledger does not hold yet, and return
    exactly the ones inserted; call it in a transaction. `stored` reads which of the records'
    source ids the ledger holds (with what `check` compares with the record: it raises to refuse
    them all). A record is never updated: one stored meanwhile by a racing insert stays as it
    was."""
    attempt = 0
    while True:
        attempt += 1
        found = stored()
        if check is not None:
            for record in records:
                if record.source_id in found:
                    check(record, found[record.source_id])
        fresh = [record for record in records if record.source_id not in found]
        try:
            with transaction.atomic():
                ledger.bulk_create(fresh, batch_size=1000)
        except IntegrityError:
            if attempt >= RACE_RETRIES:
                raise
            for record in fresh:  # a batch inserted before the failure was rolled back
                record.pk, record._state.adding = None, True
            continue
        return fresh


def append_usage(
    organization: Organization,
    entries: Sequence[Mapping[str, Any]],
    *,
    now: dt.datetime | None = None,
) -> Appended:
    """Append `entries` (mappings of usage_type, quantity, source_id, occurred_at and an
    optional employment_id) to the organization's ledger, all or nothing."""
    now = now or timezone.now()
    records = _checked(organization, entries, now)
    if not records:
        return Appended(0, 0)
    ledger = UsageRecord.objects.for_organization(organization)
    places = {record.source_id: index for index, record in enumerate(records)}

    def stored() -> dict[str, tuple[Any, ...]]:
        rows = ledger.filter(source_id__in=list(places)).values_list("source_id", *SAME_USAGE)
        return {source_id: tuple(usage) for source_id, *usage in rows}

    def same_usage(record: UsageRecord, usage: tuple[Any, ...]) -> None:
        if tuple(getattr(record, name) for name in SAME_USAGE) != usage:
            raise _refuse(
                places[record.source_id],
                "source_id",
                "source_id_conflict",
                _(
                    "the source id is recorded already with other usage (type, quantity, "
                    "hire or time); a correction is a reversal of that record."
                ),
                ConflictError,
            )

    with transaction.atomic():
        fresh = insert_new(ledger, records, stored, same_usage)
        gpu = [record.occurred_at for record in fresh if record.usage_type == UsageType.GPU_SECONDS]
        if gpu:
            marks.mark_hours(organization, gpu)  # rollups count GPU seconds
    return Appended(appended=len(fresh), duplicates=len(records) - len(fresh))
