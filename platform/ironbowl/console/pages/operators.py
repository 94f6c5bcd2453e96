"""Platform staff pages: worker pools with their workers' GPUs and slots, the workers with their
heartbeats and workloads, and the capacity calendar (reservations per GPU class ahead).

Staff only (`StaffPage`: anyone else gets the 404 of a page that does not exist). They read
across organizations through inference's operators' selectors, as the operators' API does, and
show no organization's payload (specs, results). Times are in UTC: the platform has no one time
zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Count, Prefetch, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _

from inference import capacity, selectors
from inference.api.capacity import DEFAULT_STEP_SECONDS, CalendarQuerySerializer
from inference.models import (
    ON_WORKER_STATES,
    GpuClass,
    Worker,
    WorkerPool,
    WorkerState,
    Workload,
    WorkloadState,
)
from ironbowl.console.base import StaffPage
from ironbowl.console.forms import Form, validate

# Workers shown at once, newest first (filters narrow it down).
WORKERS_SHOWN = 200
# A heartbeat older than this many intervals is shown as late.
LATE_AFTER_HEARTBEATS = 3
DAY_SECONDS = 24 * 3600
# The calendar shows this far ahead unless asked otherwise.
DEFAULT_DAYS = dt.timedelta(days=7)


class UtcStaffPage(StaffPage):
    """A staff page rendered in UTC."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with timezone.override(dt.UTC):
            response = super().dispatch(request, *args, **kwargs)
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.render()
        return response


# --- Pools ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class PoolRow:
    pool: WorkerPool
    workers: list[tuple[str, int]]  # (state's label, count) of the workers not gone
    live_workers: int
    slots: int
    slots_used: int
    gpus: int
    queued: int


class Pools(UtcStaffPage):
    template_name = "console/operators/pools.html"
    section = "pools"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        slots: dict[int, tuple[int, int]] = {}
        for row in (
            selectors.every_worker()
            .exclude(state=WorkerState.GONE)
            .values("pool_id", "state")
            .annotate(n=Count("id"), slots=Sum("slots"), used=Sum("slots_used"))
            .order_by()
        ):
            counts[row["pool_id"]][row["state"]] = row["n"]
            total, used = slots.get(row["pool_id"], (0, 0))
            slots[row["pool_id"]] = (total + (row["slots"] or 0), used + (row["used"] or 0))
        queued = dict(
            selectors.every_workload()
            .filter(state=WorkloadState.QUEUED)
            .values_list("pool_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        rows = []
        for pool in WorkerPool.objects.order_by("-is_active", "name"):
            by_state = counts.get(pool.pk, {})
            live = sum(by_state.values())
            total, used = slots.get(pool.pk, (0, 0))
            rows.append(
                PoolRow(
                    pool=pool,
                    workers=[
                        (str(label), by_state[value])
                        for value, label in WorkerState.choices
                        if value in by_state
                    ],
                    live_workers=live,
                    slots=total,
                    slots_used=used,
                    gpus=live * pool.gpus_per_worker,
                    queued=queued.get(pool.pk, 0),
                )
            )
        context["rows"] = rows
        return context


# --- Workers -------------------------------------------------------------------------------------


@dataclasses.dataclass
class WorkerRow:
    worker: Worker
    heartbeat_age_s: int | None
    late: bool
    workloads: list[Workload]


class Workers(UtcStaffPage):
    template_name = "console/operators/workers.html"
    section = "workers"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = Form.of(request.GET)
        state = str(form.value("state"))
        pool = str(form.value("pool"))
        pools = list(WorkerPool.objects.order_by("name").values_list("name", flat=True))
        if state and state not in WorkerState.values:
            form.add("state", _choose_from(WorkerState.values))
        if pool and pool not in pools:
            form.add("pool", _choose_from(pools))
        context = self.get_context_data(**kwargs)
        context.update(form=form, pools=pools, states=WorkerState.choices)
        if not form.ok:
            context["rows"] = []
            return self.render_to_response(context, status=400)
        workers = selectors.every_worker().prefetch_related(
            Prefetch(
                "workloads",
                queryset=selectors.every_workload()
                .filter(state__in=ON_WORKER_STATES)
                .order_by("-priority", "placed_at"),
                to_attr="on_worker",
            )
        )
        # Gone workers only when asked for.
        workers = workers.filter(state=state) if state else workers.exclude(state=WorkerState.GONE)
        if pool:
            workers = workers.filter(pool__name=pool)
        now = timezone.now()
        late_after = settings.INFERENCE_HEARTBEAT_INTERVAL_S * LATE_AFTER_HEARTBEATS
        rows = []
        for worker in workers.order_by("-created_at")[:WORKERS_SHOWN]:
            age = (
                None
                if worker.last_heartbeat_at is None
                else max(0, int((now - worker.last_heartbeat_at).total_seconds()))
            )
            alive = worker.state in (WorkerState.READY, WorkerState.DRAINING)
            late = alive and (age is None or age > late_after)
            rows.append(WorkerRow(worker, age, late, list(getattr(worker, "on_worker", []))))
        context.update(rows=rows, shown=WORKERS_SHOWN)
        return self.render_to_response(context)


def _choose_from(values: list[str]) -> str:
    return _("Choose one of: %(values)s.") % {"values": ", ".join(values)}


# --- The capacity calendar -----------------------------------------------------------------------


@dataclasses.dataclass
class CalendarCell:
    starts_at: dt.datetime
    reserved: int
    available: int
    level: str  # "", "warn" (mostly held) or "bad" (nothing left)


@dataclasses.dataclass
class CalendarDay:
    day: dt.date
    hours: list[CalendarCell | None]  # by hour of the day; None outside the range


@dataclasses.dataclass
class CalendarRow:
    gpu_class: str
    label: str
    pools: list[str]
    limit: int
    cells: list[CalendarCell]

    @property
    def days(self) -> list[CalendarDay]:
        """Hourly cells as a grid: a day a row, an hour a column."""
        days: dict[dt.date, CalendarDay] = {}
        for cell in self.cells:
            day = cell.starts_at.date()
            if day not in days:
                days[day] = CalendarDay(day, [None] * 24)
            days[day].hours[cell.starts_at.hour] = cell
        return list(days.values())


class Capacity(UtcStaffPage):
    template_name = "console/operators/capacity.html"
    section = "capacity"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        initial = {
            "start": today.strftime("%Y-%m-%dT%H:%M"),
            "end": (today + DEFAULT_DAYS).strftime("%Y-%m-%dT%H:%M"),
            "step": str(DEFAULT_STEP_SECONDS),
            "gpu_class": "",
        }
        form = Form.of(request.GET, **initial)
        query = {name: form.value(name) for name in initial if form.value(name) != ""}
        context = self.get_context_data(**kwargs)
        context.update(form=form, gpu_classes=GpuClass.choices, steps=_step_choices())
        data = validate(CalendarQuerySerializer, form, query)
        if data is None:
            context["rows"] = []
            return self.render_to_response(context, status=400)
        classes = [data["gpu_class"]] if "gpu_class" in data else selectors.offered_classes()
        pools: dict[str, list[str]] = defaultdict(list)
        for name, gpu_class in WorkerPool.objects.filter(is_active=True).values_list(
            "name", "gpu_class"
        ):
            pools[gpu_class].append(name)
        rows = []
        for gpu_class in classes:
            limit = capacity.class_capacity(gpu_class)
            steps = capacity.calendar(gpu_class, data["start"], data["end"], data["step"])
            rows.append(
                CalendarRow(
                    gpu_class=gpu_class,
                    label=str(GpuClass(gpu_class).label),
                    pools=sorted(pools.get(gpu_class, [])),
                    limit=limit,
                    cells=[
                        CalendarCell(s.starts_at, s.reserved, s.available, _level(s, limit))
                        for s in steps
                    ],
                )
            )
        context.update(
            rows=rows,
            start=data["start"],
            end=data["end"],
            hourly=data["step"] == dt.timedelta(seconds=DEFAULT_STEP_SECONDS),
            hours=range(24),
        )
        return self.render_to_response(context)


def _level(step: capacity.CalendarStep, limit: int) -> str:
    if step.reserved and step.available == 0:
        return "bad"
    if limit and step.reserved * 5 >= limit * 4:
        return "warn"
    return ""


def _step_choices() -> list[tuple[str, str]]:
    return [(str(DEFAULT_STEP_SECONDS), _("Hour")), (str(DAY_SECONDS), _("Day"))]


urlpatterns = [
    path("pools/", Pools.as_view(), name="pools"),
    path("workers/", Workers.as_view(), name="workers"),
    path("capacity/", Capacity.as_view(), name="capacity"),
]
