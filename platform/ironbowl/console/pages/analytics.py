"""The analytics section: KPIs over time, comparisons across employees and stations, and ROI.

Each page reads its range from a form in the query string, checked by the API's own query
serializers and `kpis.window` (a bad date, or an end before the start, is shown next to its
field). The figures come from the selectors the API calls (`kpis.series`, `kpis.totals_by`,
`roi.report`, `roi.scorecards`), in the organization's time zone; the CSV export links to the
API's own CSV, which the console's session opens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars.models import Employment
from ironbowl.analytics import kpis, roi
from ironbowl.analytics.api.kpis import DIMENSIONS, SORTS
from ironbowl.analytics.api.serializers import (
    CompareQuerySerializer,
    KpiQuerySerializer,
    RoiQuerySerializer,
)
from ironbowl.analytics.models import UsageType
from ironbowl.console import charts
from ironbowl.console.base import OrganizationPage
from ironbowl.console.formats import exact, money, percent, price
from ironbowl.console.forms import Form, validate
from ironbowl.console.names import avatar_name, display_name
from scheduling.models import Station
from tenants.errors import DomainError
from tenants.roles import Permission
from tenants.scoping import TenantOwned

METRIC_LABELS: dict[str, Any] = {
    "visits": gettext_lazy("Visits"),
    "unique_viewers": gettext_lazy("Unique viewers"),
    "peak_viewers": gettext_lazy("Peak viewers"),
    "average_viewers": gettext_lazy("Average viewers"),
    "interactions": gettext_lazy("Interactions"),
    "handoffs": gettext_lazy("Handoffs to a person"),
    "answered_share": gettext_lazy("Answered without a person"),
    "comments": gettext_lazy("Comments"),
    "sessions": gettext_lazy("Sessions"),
    "broadcast_hours": gettext_lazy("Broadcast hours"),
    "gpu_hours": gettext_lazy("GPU hours"),
}
GRANULARITY_LABELS = (
    (kpis.HOUR, gettext_lazy("By the hour")),
    (kpis.DAY, gettext_lazy("By the day")),
    (kpis.WEEK, gettext_lazy("By the week")),
    (kpis.MONTH, gettext_lazy("By the month")),
)
DIMENSION_LABELS = (
    ("employment", gettext_lazy("Digital employees")),
    ("station", gettext_lazy("Stations")),
)
# What ROI's lines price (cost: seat-days and usage types) or value (outcomes).
ITEM_LABELS: dict[str, Any] = {
    **{kind.value: kind.label for kind in UsageType},
    "visits": METRIC_LABELS["visits"],
    "viewer_hours": gettext_lazy("Viewer-hours"),
    "answered_without_person": METRIC_LABELS["answered_share"],
}
# The charts of the time series: each a title and the KPIs drawn as its lines.
TREND_CHARTS = (
    (gettext_lazy("Activity"), ("visits", "interactions", "handoffs", "comments")),
    (gettext_lazy("Audience"), ("unique_viewers", "peak_viewers", "average_viewers")),
    (gettext_lazy("Time on air and GPU time"), ("broadcast_hours", "gpu_hours")),
)
# A comparison's bar chart shows the first rows; the table shows them all.
CHART_ROWS = 20
BUCKET_FORMATS = {
    kpis.HOUR: "%m-%d %H:%M",
    kpis.DAY: "%m-%d",
    kpis.WEEK: "%Y-%m-%d",
    kpis.MONTH: "%Y-%m",
}


def shown(name: str, value: float | int | None) -> str:
    """A KPI as people read it: a share in percent, hours to two places, counts whole."""
    if value is None:
        return "—"
    if name == "answered_share":
        return percent(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"


def bucket_label(bucket: kpis.Bucket, span: kpis.Window) -> str:
    return bucket.starts_at.astimezone(span.zone).strftime(BUCKET_FORMATS[span.granularity])


def covered(span: kpis.Window) -> dict[str, dt.date]:
    """The local days a window covers (its end is exclusive)."""
    last = span.end - dt.timedelta(microseconds=1)
    return {
        "first": span.start.astimezone(span.zone).date(),
        "last": last.astimezone(span.zone).date(),
    }


class AnalyticsPage(OrganizationPage):
    """A page of KPIs over a range typed into a form (GET): the form, checked, and the window."""

    section = "analytics"
    permissions = {"get": Permission.ANALYTICS_VIEW}
    query_serializer: ClassVar[type[Any]]
    # The query fields the page reads (and hands on to the API's CSV).
    query_fields: ClassVar[tuple[str, ...]] = ("from", "to")

    def initial(self) -> dict[str, Any]:
        """The last seven local days, today included (the API's default range)."""
        today = timezone.localdate()
        first = today - dt.timedelta(days=kpis.DEFAULT_DAYS - 1)
        return {"from": first.isoformat(), "to": today.isoformat()}

    def read_query(self) -> tuple[Form, dict[str, Any] | None, dict[str, str]]:
        """The form as typed (or its defaults), the query the API's serializer read from it
        (None when a field is wrong), and the fields given, as typed."""
        form = Form.of(self.request.GET, **self.initial())
        given = {
            name: str(form.values[name])
            for name in self.query_fields
            if form.values.get(name) not in (None, "")
        }
        return form, validate(self.query_serializer, form, given), given

    def window(
        self, form: Form, query: Mapping[str, Any], granularity: str = kpis.DAY
    ) -> kpis.Window | None:
        try:
            return kpis.window(
                self.organization,
                query.get("from"),
                query.get("to"),
                granularity,
                now=timezone.now(),
            )
        except DomainError as error:
            form.fail(error)
            return None

    def check_owned(
        self, form: Form, model: type[TenantOwned], pk: uuid.UUID | None, name: str, message: str
    ) -> None:
        """Another organization's id is refused exactly like one that does not exist."""
        if pk is not None and not self.owned(model).filter(pk=pk).exists():
            form.add(name, message)

    def employment_choices(self) -> list[tuple[uuid.UUID, str]]:
        rows = self.owned(Employment).select_related("avatar", "position").order_by("created_at")
        return [(e.pk, f"{avatar_name(e.avatar)} · {e.position.title}") for e in rows]

    def employee_names(self, ids: list[Any]) -> dict[Any, tuple[str, str]]:
        """Each employment's name (in the page's language, as everywhere in the console; the
        API's CSV names them its own way) and position title, in one query."""
        rows = (
            self.owned(Employment)
            .filter(pk__in=ids)
            .values_list("pk", "avatar__name_zh", "avatar__name_en", "position__title")
        )
        return {pk: (display_name(zh, en), title) for pk, zh, en, title in rows}

    def station_choices(self) -> list[tuple[uuid.UUID, str]]:
        return list(self.owned(Station).order_by("name", "id").values_list("pk", "name"))

    def api_csv(self, name: str, given: Mapping[str, str]) -> str:
        """The API's CSV of what the page shows (the console's session signs it in)."""
        url = reverse(name, args=[self.organization.slug])
        return f"{url}?{urlencode({**given, 'format': 'csv'})}"


class Trends(AnalyticsPage):
    """KPIs per hour, day, week or month of the range, of the organization, one employee or
    one station: totals, charts and the table of buckets."""

    template_name = "console/analytics/index.html"
    query_serializer = KpiQuerySerializer
    query_fields = ("from", "to", "granularity", "employment", "station")

    def initial(self) -> dict[str, Any]:
        return {**super().initial(), "granularity": kpis.DAY}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form, query, given = self.read_query()
        found = None
        if query is not None:
            employment, station = query.get("employment"), query.get("station")
            self.check_owned(
                form, Employment, employment, "employment", _("There is no such employee.")
            )
            self.check_owned(form, Station, station, "station", _("There is no such station."))
            span = self.window(form, query, query["granularity"])
            if span is not None and form.ok:
                found = kpis.series(
                    self.organization, span, employment_id=employment, station_id=station
                )
        context.update(
            form=form,
            granularities=GRANULARITY_LABELS,
            employments=self.employment_choices(),
            stations=self.station_choices(),
        )
        if found is not None:
            context.update(self.figures(found), csv_url=self.api_csv("analytics-kpis", given))
        return context

    def figures(self, found: kpis.Series) -> dict[str, Any]:
        span = found.window
        labels = [bucket_label(bucket, span) for bucket, _tally in found.buckets]
        per_bucket = [tally.kpis() for _bucket, tally in found.buckets]
        totals = found.totals.kpis()
        trend_charts = [
            (
                title,
                charts.line_chart(
                    labels,
                    [
                        charts.Series(str(METRIC_LABELS[name]), [row[name] for row in per_bucket])
                        for name in names
                    ],
                    title=str(title),
                ),
            )
            for title, names in TREND_CHARTS
        ]
        return {
            "span": covered(span),
            "granularity": span.granularity,
            "totals": [
                (name, METRIC_LABELS[name], shown(name, totals[name])) for name in kpis.METRICS
            ],
            "charts": trend_charts,
            "headings": [METRIC_LABELS[name] for name in kpis.METRICS],
            "buckets": [
                (label, [shown(name, row[name]) for name in kpis.METRICS])
                for label, row in zip(labels, per_bucket, strict=True)
            ],
        }


class Compare(AnalyticsPage):
    """KPI totals of the range per digital employee or per station, highest first: a bar chart
    of the KPI sorted by, and the table of every KPI."""

    template_name = "console/analytics/compare.html"
    query_serializer = CompareQuerySerializer
    query_fields = ("from", "to", "by", "sort")

    def initial(self) -> dict[str, Any]:
        return {**super().initial(), "by": "employment", "sort": "visits"}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form, query, given = self.read_query()
        context.update(
            form=form,
            dimensions=DIMENSION_LABELS,
            sorts=[(name, METRIC_LABELS[name]) for name in SORTS],
        )
        if query is None:
            return context
        by, sort = query["by"], query["sort"]
        if by not in DIMENSIONS:
            form.add("by", _("Compare by employment or station."))
        if sort not in SORTS:
            form.add("sort", _("Sort by one of: %(names)s.") % {"names": ", ".join(SORTS)})
        span = self.window(form, query)
        if span is None or not form.ok:
            return context
        rows = self.rows(span, by, sort)
        items = [(row["name"], row[sort] or 0) for row in rows[:CHART_ROWS]]
        title = _("%(kpi)s per %(dimension)s") % {
            "kpi": METRIC_LABELS[sort],
            "dimension": dict(DIMENSION_LABELS)[by],
        }
        context.update(
            span=covered(span),
            by=by,
            sort_label=METRIC_LABELS[sort],
            chart=charts.bar_chart(items, title=title) if items else None,
            charted=len(items),
            headings=[METRIC_LABELS[name] for name in kpis.METRICS],
            rows=[
                {**row, "shown": [shown(name, row[name]) for name in kpis.METRICS]} for row in rows
            ],
            csv_url=self.api_csv("analytics-compare", given),
        )
        return context

    def rows(self, span: kpis.Window, by: str, sort: str) -> list[dict[str, Any]]:
        """As the API's comparison answers them: highest first, then by name."""
        tallies = kpis.totals_by(self.organization, span, by)
        keys = [key for key in tallies if key is not None]
        names = (
            self.employee_names(keys)
            if by == "employment"
            else DIMENSIONS[by](self.organization, keys)
        )
        unattributed = _("Not attributed")
        rows: list[dict[str, Any]] = []
        for key, tally in tallies.items():
            name, position = names.get(key, (None, None)) if key is not None else (None, None)
            rows.append(
                {"id": key, "name": name or unattributed, "position": position, **tally.kpis()}
            )
        rows.sort(
            key=lambda row: (-(row[sort] or 0), row["id"] is None, row["name"], str(row["id"]))
        )
        return rows


# ROI has four decimal places: as a percentage, two.
ROI_PLACES = 2


def line_rows(lines: Sequence[roi.Line], currency: str) -> list[dict[str, str]]:
    return [
        {
            "item": str(ITEM_LABELS.get(line.item, line.item)),
            "quantity": exact(line.quantity),
            "unit": price(line.unit, currency),
            "amount": money(line.amount, currency),
        }
        for line in lines
    ]


class Roi(AnalyticsPage):
    """What the organization's (or one employee's) outcomes were worth against what they cost,
    and which prices costed them; per employee when the whole organization is shown."""

    template_name = "console/analytics/roi.html"
    query_serializer = RoiQuerySerializer
    query_fields = ("from", "to", "employment")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form, query, given = self.read_query()
        context.update(form=form, employments=self.employment_choices())
        if query is None:
            return context
        employment = query.get("employment")
        self.check_owned(
            form, Employment, employment, "employment", _("There is no such employee.")
        )
        span = self.window(form, query)
        if span is None or not form.ok:
            return context
        found = roi.report(self.organization, span, employment_id=employment)
        valuation = found.valuation
        currency = valuation.currency
        context.update(
            span=covered(span),
            report=found,
            currency=currency,
            value=money(valuation.value, currency),
            cost=money(valuation.cost, currency),
            net=money(valuation.net, currency),
            roi=percent(valuation.roi, ROI_PLACES),
            values_set=valuation.values_set,
            billing_rates=valuation.rates == "billing",
            costs=line_rows(valuation.costs, currency),
            outcomes=line_rows(valuation.outcomes, currency),
            seat_days=found.seat_days,
            viewer_hours=exact(found.viewer_hours),
        )
        if employment is None:
            context.update(
                scorecards=[
                    {
                        "name": avatar_name(card.employment.avatar),
                        "position": card.employment.position.title,
                        "cost": money(card.valuation.cost, currency),
                        "value": money(card.valuation.value, currency),
                        "net": money(card.valuation.net, currency),
                        "roi": percent(card.valuation.roi, ROI_PLACES),
                    }
                    for card in roi.scorecards(self.organization, span)
                ],
                csv_url=self.api_csv("analytics-scorecards", given),
            )
        return context


urlpatterns = [
    path("analytics/", Trends.as_view(), name="analytics"),
    path("analytics/compare/", Compare.as_view(), name="analytics-compare"),
    path("analytics/roi/", Roi.as_view(), name="analytics-roi"),
]
