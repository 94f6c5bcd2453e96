"""Usage records: what workers reported using, turned into the ledger billing rates.

Each stored `inference.UsageReport` becomes one record per non-zero quantity, exactly once: a
`ConvertedUsageReport` row written in the same transaction says the report is done, and its
unique report id (with the records' unique `source_id`) makes a second conversion — a replayed
signal, the sweep racing the receiver, two sweeps — a no-op. Two paths run the same code: the
receiver of `inference.signals.usage_reported`, promptly after a report commits, and the sweep
`convert_pending` (every minute), for reports whose signal was lost.

The ledger is append-only (the ORM refuses changes, and on PostgreSQL a trigger); a correction
is a reversing record (`reverse`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import structlog
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars.models import Employment
from inference.models import UsageReport
from ironbowl.analytics import marks, metrics
from ironbowl.analytics.models import ConvertedUsageReport, UsageRecord, UsageType
from scheduling.models import Station
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)

# A report's quantity fields, and the usage type each becomes.
QUANTITIES = (
    ("stream_minutes", UsageType.STREAM_MINUTES),
    ("gpu_seconds", UsageType.GPU_SECONDS),
    ("rendered_seconds", UsageType.RENDERED_SECONDS),
    ("interactions", UsageType.INTERACTIONS),
)
PLACES = Decimal("0.000001")  # UsageRecord.quantity: 20 digits, 6 after the point
LARGEST = Decimal(10) ** 14
MAX_REASON = 500

# The sweep: reports in batches, oldest first, a bounded number of batches per run.
BATCH = 500
MAX_BATCHES = 20
# Below the floor every report is converted, so the sweep's anti-join starts there instead of
# at the first report ever. It is only a shortcut: it lives in the cache, and it is dropped an
# hour after it was first set, so a sweep then looks at every report again.
FLOOR_KEY = "analytics:usage-report-floor"
FLOOR_LIFETIME = dt.timedelta(hours=1)
# A report not visible yet (its transaction still open) was stored within this long: the floor
# never passes reports younger than this.
SETTLE = dt.timedelta(minutes=10)


def source_id(report_pk: int, usage_type: str) -> str:
    return f"usage-report:{report_pk}:{usage_type}"


@dataclasses.dataclass
class Conversion:
    """What a conversion did: reports converted (with or without records), records written,
    reports another conversion had done already, reports that failed (left for the sweep)."""

    converted: int = 0
    records: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: Conversion) -> None:
        self.converted += other.converted
        self.records += other.records
        self.skipped += other.skipped
        self.failed += other.failed

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def convert_reports(report_ids: Iterable[int]) -> Conversion:
    """Converts the given usage reports, of any organization, that are not converted yet.

    Cross-tenant by design (the sweep spans every organization): each report's records belong
    to the report's own organization, and the employment and station named by its workload's
    spec count only when they are that organization's.
    """
    result = Conversion()
    reports = list(
        UsageReport.objects.unscoped_dangerously()
        .filter(pk__in=list(report_ids))
        .filter(~Exists(ConvertedUsageReport.objects.filter(report_id=OuterRef("pk"))))
        .select_related("organization", "workload")
        .order_by("pk")
    )
    attributions = _attributions(reports)
    for report in reports:
        try:
            records = _convert(report, *attributions[report.pk])
        except Exception:  # one bad report must not hold up the others; the sweep retries it
            logger.exception("usage_conversion_failed", usage_report_id=report.pk)
            result.failed += 1
            continue
        if records is None:
            result.skipped += 1
        else:
            result.converted += 1
            result.records += records
    return result


def _convert(
    report: UsageReport, employment_id: uuid.UUID | None, station_id: uuid.UUID | None
) -> int | None:
    """Writes the report's records and marks it converted, in one transaction; None when
    another conversion got there first (its row for the report already exists)."""
    records = [
        UsageRecord(
            organization_id=report.organization_id,
            source_id=source_id(report.pk, usage_type),
            usage_type=usage_type,
            quantity=quantity,
            gpu_class=report.gpu_class,
            employment_id=employment_id,
            station_id=station_id,
            workload_id=report.workload_id,
            occurred_at=report.reported_at,
        )
        for usage_type, quantity in _quantities(report)
    ]
    try:
        with transaction.atomic():
            # First: a racing conversion of the same report waits here for the other's commit,
            # then fails on the unique report id and writes nothing.
            ConvertedUsageReport.objects.create(report_id=report.pk)
            if records:
                # A record already there (its report's row removed by hand to convert it again)
                # is the same record: keep it.
                UsageRecord.objects.for_organization(report.organization).bulk_create(
                    records, ignore_conflicts=True
                )
            if any(record.usage_type == UsageType.GPU_SECONDS for record in records):
                marks.mark_hours(report.organization, [report.reported_at])
    except IntegrityError:
        return None
    for record in records:
        metrics.USAGE_RECORDS.labels(record.usage_type).inc()
    return len(records)


def _quantities(report: UsageReport) -> list[tuple[str, Decimal]]:
    found: list[tuple[str, Decimal]] = []
    for field, usage_type in QUANTITIES:
        value = getattr(report, field)
        try:
            quantity = Decimal(str(value)).quantize(PLACES, rounding=ROUND_HALF_EVEN)
        except InvalidOperation:  # not a finite number
            quantity = None
        if quantity is None or not 0 <= quantity < LARGEST:
            # The protocol refuses negative quantities; an absurd one is not billed, but said.
            logger.error(
                "usage_quantity_refused", usage_report_id=report.pk, field=field, value=str(value)
            )
            continue
        if quantity:
            found.append((usage_type, quantity))
    return found


def _spec_id(spec: Any, key: str) -> uuid.UUID | None:
    value = spec.get(key) if isinstance(spec, dict) else None
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _attributions(
    reports: list[UsageReport],
) -> dict[int, tuple[uuid.UUID | None, uuid.UUID | None]]:
    """(employment id, station id) of each report, from its workload's spec: an id that is not
    a row of the report's own organization (removed, mistyped, another's) is left out."""
    named = {
        report.pk: (
            _spec_id(report.workload.spec, "employment"),
            _spec_id(report.workload.spec, "station"),
        )
        for report in reports
    }
    employments = {employment for employment, _station in named.values() if employment}
    stations = {station for _employment, station in named.values() if station}
    # Pairs of (id, organization): a report counts an id only together with its organization.
    known_employments = _with_organizations(Employment, employments)
    known_stations = _with_organizations(Station, stations)
    attributions = {}
    for report in reports:
        employment, station = named[report.pk]
        attributions[report.pk] = (
            employment if (employment, report.organization_id) in known_employments else None,
            station if (station, report.organization_id) in known_stations else None,
        )
    return attributions


# --- The sweep ----------------------------------------------------------------------------------


def pending_reports(after: int = 0, limit: int = BATCH) -> list[int]:
    """Ids of reports above `after` not converted yet, oldest first (an anti-join)."""
    converted = ConvertedUsageReport.objects.filter(report_id=OuterRef("pk"))
    return list(
        UsageReport.objects.unscoped_dangerously()
        .filter(pk__gt=after)
        .filter(~Exists(converted))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def convert_pending(
    *, batch: int = BATCH, max_batches: int = MAX_BATCHES, now: dt.datetime | None = None
) -> Conversion:
    """The safety net: converts every report whose signal was lost, oldest first, at most
    `max_batches` batches per run (the next run goes on). Safe to run twice at once."""
    now = now or timezone.now()
    cached = cache.get(FLOOR_KEY)
    floor, floor_expires = cached if cached and cached[1] > now else (0, now + FLOOR_LIFETIME)
    total = Conversion()
    after, caught_up = floor, False
    for _batch in range(max_batches):
        ids = pending_reports(after, batch)
        if ids:
            total.add(convert_reports(ids))
            after = ids[-1]
        if len(ids) < batch:
            caught_up = True
            break
    if caught_up and not total.failed:
        # Every report above the floor that this run could see is converted; one not visible
        # yet was stored within SETTLE, so the floor may move up to the last report before that.
        settled = (
            UsageReport.objects.unscoped_dangerously()
            .filter(pk__gt=floor, reported_at__lt=now - SETTLE)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        lifetime = (floor_expires - now).total_seconds()
        cache.set(FLOOR_KEY, (settled or floor, floor_expires), timeout=lifetime)
    if total.converted or total.failed:
        logger.info("usage_converted", **total.as_dict())
    return total


# --- Corrections --------------------------------------------------------------------------------

# What a reversal sets itself; every other column of the record is carried as it is, so that it
# is rated exactly like the record it cancels (a seat-day's `unit_price`, the hire, the moment).
_REVERSAL_OWN = frozenset(
    {"id", "organization", "source_id", "quantity", "recorded_at", "reverses"}
)


def reversal_source_id(record: UsageRecord) -> str:
    return f"reversal:{record.pk}"


@transaction.atomic
def reverse(
    organization: Organization, record: UsageRecord, reason: str, actor: Actor
) -> UsageRecord:
    """Appends the record that cancels `record` (the opposite quantity, with every other field
    of it: the same moment, attribution and price), audited with the reason. A record is
    reversed at most once, and a reversal is never reversed (record the quantity again
    instead)."""
    if record.organization_id != organization.pk:
        raise ValueError("the record is not this organization's")
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise DomainError(
            "reason_required",
            _("Say why the record is reversed, in at most %(limit)s characters.")
            % {"limit": MAX_REASON},
            field="reason",
        )
    if record.reverses_id is not None:
        raise ConflictError(
            "reversal_not_reversible",
            _("This record is itself a reversal; record the quantity again instead."),
        )
    carried = {
        field.attname: getattr(record, field.attname)
        for field in UsageRecord._meta.concrete_fields
        if field.name not in _REVERSAL_OWN
    }
    reversal = UsageRecord(
        **carried,
        organization=organization,
        source_id=reversal_source_id(record),
        quantity=-record.quantity,
        reverses=record,
    )
    try:
        with transaction.atomic():
            reversal.save(force_insert=True)
    except IntegrityError:
        raise ConflictError(
            "already_reversed", _("This record has been reversed already.")
        ) from None
    audit.record(
        actor,
        organization,
        "usage.reverse",
        reversal,
        after={**audit.snapshot(reversal), "reason": reason},
    )
    if record.usage_type == UsageType.GPU_SECONDS:
        marks.mark_hours(organization, [record.occurred_at])
    return reversal


def reversal_of(organization: Organization, record: UsageRecord) -> UsageRecord | None:
    found: UsageRecord | None = (
        UsageRecord.objects.for_organization(organization)
        .filter(source_id=reversal_source_id(record), reverses=record)
        .select_related("organization")
        .first()
    )
    return found


def ensure_reversed(
    organization: Organization, record: UsageRecord, reason: str, actor: Actor
) -> tuple[UsageRecord, bool]:
    """`reverse`, safe to repeat: the record's reversal and whether this call made it. Asking
    again (a retried request, two at once) answers the reversal made first, unchanged."""
    if record.reverses_id is None and (existing := reversal_of(organization, record)):
        return existing, False
    try:
        return reverse(organization, record, reason, actor), True
    except ConflictError as error:
        existing = reversal_of(organization, record) if error.code == "already_reversed" else None
        if existing is None:
            raise
        return existing, False


# --- Reading ------------------------------------------------------------------------------------


def records_between(
    organization: Organization, start: dt.datetime, end: dt.datetime
) -> QuerySet[UsageRecord]:
    """The organization's records (reversals included) that occurred in [start, end)."""
    return UsageRecord.objects.for_organization(organization).filter(
        occurred_at__gte=start, occurred_at__lt=end
    )


def totals(records: QuerySet[UsageRecord], *by: str) -> list[dict[str, Any]]:
    """Net quantities (reversals subtracted) of the records, grouped by the named columns."""
    return list(records.order_by().values(*by).annotate(quantity=Sum("quantity")).order_by(*by))


def _with_organizations(
    model: type[Employment] | type[Station], ids: set[uuid.UUID]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(id, organization id) of those rows (reports of several organizations in one batch)."""
    if not ids:
        return set()
    rows = model.objects.unscoped_dangerously().filter(pk__in=ids)
    return set(rows.values_list("pk", "organization_id"))
