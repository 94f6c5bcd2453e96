"""Endpoints: KPIs over time, scorecards per digital employee, comparisons, ROI, and what the
organization's outcomes are worth. Reading needs analytics.view; setting outcome values needs
analytics.manage.

KPIs, scorecards and comparisons also answer as CSV (`?format=csv` or `Accept: text/csv`): a
header row, times in the organization's zone, UTF-8 with a byte-order mark so that Excel reads
Chinese names. Errors are always JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from avatars.models import Employment
from ironbowl.analytics import kpis, roi
from ironbowl.analytics.api.serializers import (
    CompareQuerySerializer,
    CompareSerializer,
    KpiQuerySerializer,
    KpiSeriesSerializer,
    OutcomeValuesSerializer,
    RangeQuerySerializer,
    RoiQuerySerializer,
    RoiSerializer,
    ScorecardsSerializer,
)
from ironbowl.api.base import OrganizationAPIView
from scheduling.models import Station
from tenants.errors import DomainError
from tenants.models import Organization
from tenants.roles import Permission as P

CSV = "text/csv"
# A cell that starts like a formula is prefixed so that a spreadsheet shows it as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvRenderer(BaseRenderer):
    """Rows (a header first) as CSV, UTF-8 with a byte-order mark."""

    media_type = CSV
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n")
        for row in data or []:
            writer.writerow([_cell(value) for value in row])
        return out.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


# --- Query parameters, for the schema -------------------------------------------------------------

RANGE_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.STR,
        description="A date (from its local midnight) or an ISO 8601 time (without an offset: "
        "in the organization's time zone). Default: seven local days before `to`.",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.STR,
        description="A date (that day included) or an ISO 8601 time (exclusive). Default: the "
        "end of today, local time.",
    ),
]
EMPLOYMENT_PARAMETER = OpenApiParameter(
    "employment", OpenApiTypes.UUID, description="One employment only (404 if not yours)."
)
STATION_PARAMETER = OpenApiParameter(
    "station", OpenApiTypes.UUID, description="One station only (404 if not yours)."
)
FORMAT_PARAMETER = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    enum=["json", "csv"],
    description="`csv` for a spreadsheet (as `Accept: text/csv`).",
)


def _bad_query(*codes: str) -> OpenApiResponse:
    named = ", ".join(f"`{code}`" for code in ("invalid", "bad_range", "range_too_long", *codes))
    return OpenApiResponse(description=f"{named}: see `detail` (and `fields` for `invalid`).")


NOT_FOUND = OpenApiResponse(description="No such organization, employment or station.")


def _csv_or(serializer: Any, *codes: str) -> dict[Any, Any]:
    return {
        (200, "application/json"): serializer,
        (200, CSV): OpenApiTypes.STR,
        400: _bad_query(*codes, "bad_format"),
        404: NOT_FOUND,
    }


# --- Views ----------------------------------------------------------------------------------------


class AnalyticsView(OrganizationAPIView):
    """Shared by the analytics endpoints: a range read from the query, ids checked against the
    organization (a foreign id answers exactly like a missing one: 404), CSV on request."""

    renderer_classes = [JSONRenderer, CsvRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:  # DRF's answer to an unknown ?format=
            formats = ", ".join(renderer.format for renderer in self.renderer_classes)
            raise DomainError(
                "bad_format",
                _("This endpoint answers in these formats: %(formats)s.") % {"formats": formats},
                field="format",
            ) from None

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and isinstance(
            getattr(response, "accepted_renderer", None), CsvRenderer
        ):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
        return response

    def query(self, serializer_class: type[Any]) -> dict[str, Any]:
        query = serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return dict(query.validated_data)

    def owned(self, model: type[Employment] | type[Station], pk: uuid.UUID | None) -> None:
        """404 unless the id names one of the organization's rows."""
        if (
            pk is not None
            and not model.objects.for_organization(self.organization).filter(pk=pk).exists()
        ):
            raise exceptions.NotFound()

    def wants_csv(self) -> bool:
        return isinstance(getattr(self.request, "accepted_renderer", None), CsvRenderer)

    def csv(self, name: str, span: kpis.Window, rows: Iterable[Sequence[Any]]) -> Response:
        filename = (
            f"{name}-{self.organization.slug}-{span.start.astimezone(span.zone):%Y%m%d}-"
            f"{(span.end - dt.timedelta(microseconds=1)).astimezone(span.zone):%Y%m%d}.csv"
        )
        return Response(
            list(rows), headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )


def _range(span: kpis.Window) -> dict[str, Any]:
    return {"from": span.start, "to": span.end, "time_zone": str(span.zone)}


def _local(instant: dt.datetime, span: kpis.Window) -> str:
    return instant.astimezone(span.zone).isoformat()


def _figures(tally: kpis.Tally) -> list[Any]:
    figures = tally.kpis()
    return [figures[name] for name in kpis.METRICS]


class KpiView(AnalyticsView):
    permission_map = {"get": P.ANALYTICS_VIEW}

    @extend_schema(
        tags=["analytics"],
        parameters=[
            *RANGE_PARAMETERS,
            OpenApiParameter(
                "granularity",
                OpenApiTypes.STR,
                enum=list(kpis.GRANULARITIES),
                description="Bucket size in the organization's time zone (weeks start on "
                "Monday). Default: day. A range spans at most 31 days by the hour, 366 by the "
                "day, 731 by the week, 1827 by the month.",
            ),
            EMPLOYMENT_PARAMETER,
            STATION_PARAMETER,
            FORMAT_PARAMETER,
        ],
        responses=_csv_or(KpiSeriesSerializer, "bad_granularity"),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """KPIs per bucket over the range (every bucket, empty ones with zeros) and their
        totals: counts add up; peak is the highest bucket; unique viewers are merged."""
        query = self.query(KpiQuerySerializer)
        span = kpis.window(
            self.organization,
            query.get("from"),
            query.get("to"),
            query["granularity"],
            now=timezone.now(),
        )
        employment, station = query.get("employment"), query.get("station")
        self.owned(Employment, employment)
        self.owned(Station, station)
        found = kpis.series(self.organization, span, employment_id=employment, station_id=station)
        if self.wants_csv():
            header = ["starts_at", "ends_at", *kpis.METRICS]
            rows = (
                [_local(bucket.starts_at, span), _local(bucket.ends_at, span), *_figures(tally)]
                for bucket, tally in found.buckets
            )
            return self.csv("kpis", span, [header, *rows])
        answer = {
            **_range(span),
            "granularity": span.granularity,
            "employment": employment,
            "station": station,
            "totals": found.totals.kpis(),
            "series": [
                {"starts_at": bucket.starts_at, "ends_at": bucket.ends_at, **tally.kpis()}
                for bucket, tally in found.buckets
            ],
        }
        return Response(KpiSeriesSerializer(answer).data)


def _roi_fields(valuation: roi.Valuation, seat_days: int, viewer_hours: Decimal) -> dict[str, Any]:
    return {
        "currency": valuation.currency,
        "seat_days": seat_days,
        "viewer_hours": viewer_hours,
        "cost": valuation.cost,
        "value": valuation.value,
        "net": valuation.net,
        "roi": valuation.roi,
    }


def _employment_name(employment: Employment) -> str:
    return employment.avatar.name_zh or employment.avatar.name_en


SCORECARD_COLUMNS = (
    "employment",
    "name",
    "position",
    "status",
    *kpis.METRICS,
    "visits_per_broadcast_hour",
    "interactions_per_broadcast_hour",
    "seat_days",
    "viewer_hours",
    "currency",
    "cost",
    "value",
    "net",
    "roi",
)


class ScorecardView(AnalyticsView):
    permission_map = {"get": P.ANALYTICS_VIEW}

    @extend_schema(
        tags=["analytics"],
        parameters=[*RANGE_PARAMETERS, FORMAT_PARAMETER],
        responses=_csv_or(ScorecardsSerializer),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One row per employment active or at work in the range (whole local days, at most
        366): its KPIs, answered share, per-broadcast-hour rates, cost, value and ROI."""
        query = self.query(RangeQuerySerializer)
        span = kpis.day_window(
            self.organization, query.get("from"), query.get("to"), now=timezone.now()
        )
        rows = [
            {
                "employment": card.employment.pk,
                "name": _employment_name(card.employment),
                "position": card.employment.position.title,
                "status": card.employment.status,
                **card.tally.kpis(),
                "visits_per_broadcast_hour": card.per_broadcast_hour(card.tally.visits),
                "interactions_per_broadcast_hour": card.per_broadcast_hour(card.tally.interactions),
                **_roi_fields(card.valuation, card.seat_days, card.viewer_hours),
            }
            for card in roi.scorecards(self.organization, span)
        ]
        data = ScorecardsSerializer({**_range(span), "results": rows}).data
        if self.wants_csv():
            table = ([row[name] for name in SCORECARD_COLUMNS] for row in data["results"])
            return self.csv("scorecards", span, [list(SCORECARD_COLUMNS), *table])
        return Response(data)


Names = dict[uuid.UUID, tuple[str, str | None]]


def _employment_names(organization: Organization, ids: list[uuid.UUID]) -> Names:
    """Each employment's avatar name and position title, in one query."""
    rows = (
        Employment.objects.for_organization(organization)
        .filter(pk__in=ids)
        .values_list("pk", "avatar__name_zh", "avatar__name_en", "position__title")
    )
    return {pk: (name_zh or name_en, title) for pk, name_zh, name_en, title in rows}


def _station_names(organization: Organization, ids: list[uuid.UUID]) -> Names:
    rows = Station.objects.for_organization(organization).filter(pk__in=ids)
    return {pk: (name, None) for pk, name in rows.values_list("pk", "name")}


DIMENSIONS: dict[str, Callable[[Organization, list[uuid.UUID]], Names]] = {
    "employment": _employment_names,
    "station": _station_names,
}
SORTS = kpis.METRICS


class CompareView(AnalyticsView):
    permission_map = {"get": P.ANALYTICS_VIEW}

    @extend_schema(
        tags=["analytics"],
        parameters=[
            *RANGE_PARAMETERS,
            OpenApiParameter(
                "by", OpenApiTypes.STR, enum=list(DIMENSIONS), description="Default: employment."
            ),
            OpenApiParameter(
                "sort",
                OpenApiTypes.STR,
                enum=list(SORTS),
                description="The KPI to sort by, highest first (default: visits).",
            ),
            EMPLOYMENT_PARAMETER,
            STATION_PARAMETER,
            FORMAT_PARAMETER,
        ],
        responses=_csv_or(CompareSerializer, "bad_dimension", "bad_sort"),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """KPI totals per employment or per station over the range (whole local days, at most
        366), highest first; a row with a null id gathers what is not attributed to one."""
        query = self.query(CompareQuerySerializer)
        by, sort = query["by"], query["sort"]
        if by not in DIMENSIONS:
            raise DomainError("bad_dimension", _("Compare by employment or station."), "by")
        if sort not in SORTS:
            raise DomainError(
                "bad_sort",
                _("Sort by one of: %(names)s.") % {"names": ", ".join(SORTS)},
                field="sort",
            )
        span = kpis.day_window(
            self.organization, query.get("from"), query.get("to"), now=timezone.now()
        )
        employment, station = query.get("employment"), query.get("station")
        self.owned(Employment, employment)
        self.owned(Station, station)
        tallies = kpis.totals_by(
            self.organization, span, by, employment_id=employment, station_id=station
        )
        names = DIMENSIONS[by](self.organization, [key for key in tallies if key is not None])
        rows: list[dict[str, Any]] = []
        for key, tally in tallies.items():
            name, position = names.get(key, (None, None)) if key is not None else (None, None)
            rows.append({"id": key, "name": name, "position": position, **tally.kpis()})
        rows.sort(key=lambda row: (-(row[sort] or 0), row["name"] or "\uffff", str(row["id"])))
        if self.wants_csv():
            header = ["id", "name", "position", *kpis.METRICS]
            table = ([row[name] for name in header] for row in rows)
            return self.csv(f"compare-{by}", span, [header, *table])
        answer = {**_range(span), "by": by, "sort": sort, "results": rows}
        return Response(CompareSerializer(answer).data)


class RoiView(AnalyticsView):
    permission_map = {"get": P.ANALYTICS_VIEW}
    renderer_classes = [JSONRenderer]

    @extend_schema(
        tags=["analytics"],
        parameters=[*RANGE_PARAMETERS, EMPLOYMENT_PARAMETER],
        responses={200: RoiSerializer, 400: _bad_query(), 404: NOT_FOUND},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Outcomes valued at the organization's outcome values against cost (the billing plan's
        prices, or list rates when the plan bills in another currency), over the range (whole
        local days, at most 366), of the organization or one employment."""
        query = self.query(RoiQuerySerializer)
        span = kpis.day_window(
            self.organization, query.get("from"), query.get("to"), now=timezone.now()
        )
        employment = query.get("employment")
        self.owned(Employment, employment)
        found = roi.report(self.organization, span, employment_id=employment)
        valuation = found.valuation
        answer = {
            **_range(span),
            **_roi_fields(valuation, found.seat_days, found.viewer_hours),
            "employment": employment,
            "values_set": valuation.values_set,
            "rates": valuation.rates,
            "kpis": found.tally.kpis(),
            "costs": valuation.costs,
            "outcomes": valuation.outcomes,
        }
        return Response(RoiSerializer(answer).data)


class OutcomeValuesView(AnalyticsView):
    permission_map = {"get": P.ANALYTICS_VIEW, "put": P.ANALYTICS_MANAGE}
    renderer_classes = [JSONRenderer]

    @extend_schema(tags=["analytics"], responses=OutcomeValuesSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """What the organization's outcomes are worth (CNY and zeros until it says)."""
        return Response(OutcomeValuesSerializer(roi.outcome_values(self.organization)).data)

    @extend_schema(
        tags=["analytics"],
        request=OutcomeValuesSerializer,
        responses={200: OutcomeValuesSerializer, 400: OpenApiResponse(description="A field.")},
    )
    def put(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Set what a visit, an interaction, a viewer-hour and a question answered without a
        person are worth (not negative), in CNY or USD; audited."""
        payload = OutcomeValuesSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        saved = roi.set_outcome_values(self.actor, self.organization, **payload.validated_data)
        return Response(OutcomeValuesSerializer(saved).data)
