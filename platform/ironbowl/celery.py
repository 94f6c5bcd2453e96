"""The Celery app. Beat's schedule is static and lives here, where review sees it."""

from __future__ import annotations

import os

from celery import Celery, signals
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ironbowl.settings")

app = Celery("ironbowl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "tenants.expire_invitations": {
        "task": "tenants.expire_invitations",
        "schedule": crontab(minute="*/15"),
    },
    # Hourly: consents that expired stop their builds and suspend the hires built under them.
    "avatars.enforce_consents": {
        "task": "avatars.enforce_consents",
        "schedule": crontab(minute="5"),
    },
    # Daily: each organization's reviews open on the first run after its month ended locally.
    "avatars.create_monthly_reviews": {
        "task": "avatars.create_monthly_reviews",
        "schedule": crontab(minute="30", hour="0"),
    },
    # Every 10 minutes: builds catch up with workloads that ended unnoticed (sweep_builds).
    "avatars.requeue_stale_builds": {
        "task": "avatars.requeue_stale_builds",
        "schedule": crontab(minute="*/10"),
    },
    # Daily: uploads still receiving a week after they started are given up, their bytes freed.
    "avatars.purge_abandoned_uploads": {
        "task": "avatars.purge_abandoned_uploads",
        "schedule": crontab(minute="45", hour="3"),
    },
    # Hourly: shifts are made SCHEDULING_HORIZON_DAYS ahead, each reserving its capacity; the
    # horizon moves an hour, and shifts at risk ask for capacity again (scheduling.materialise).
    "scheduling.materialise_shifts": {
        "task": "scheduling.materialise_shifts",
        "schedule": crontab(minute="7"),
    },
    # Every minute: shifts warm up, go on duty, end or are missed (scheduling.duty.tick). Beat
    # runs as one instance; two ticks at once would still start each shift once (SKIP LOCKED).
    "scheduling.tick": {
        "task": "scheduling.tick",
        "schedule": crontab(minute="*"),
    },
    # Every minute: usage reports whose signal was lost become usage records (exactly once).
    "analytics.convert_usage": {
        "task": "analytics.convert_usage",
        "schedule": crontab(minute="*"),
    },
    # Every 5 minutes: conversations' exchanges of the last hour whose signal was lost are
    # counted as events (ingestion stores each once).
    "analytics.count_interactions": {
        "task": "analytics.count_interactions",
        "schedule": crontab(minute="*/5"),
    },
    # Every minute: hours marked stale (events ingested, shifts on duty, usage recorded) are
    # recomputed with their local days, so KPIs trail raw events by about a minute
    # (analytics.rollups). Runs that overlap skip each other's days instead of waiting.
    # Hourly: raw events' partitions made a week ahead, and the days older than each plan keeps
    # dropped whole (analytics.retention).
    "analytics.maintain": {
        "task": "analytics.maintain",
        "schedule": crontab(minute="17"),
    },
    "analytics.rollup": {
        "task": "analytics.rollup",
        "schedule": crontab(minute="*"),
    },
    # Every 15 minutes: each budget against its month's spend; the 80% and 100% alerts go out
    # once a month each, and a hard stop takes hold (billing.budgets).
    "billing.check_budgets": {
        "task": "billing.check_budgets",
        "schedule": crontab(minute="*/15"),
    },
    # Hourly: each hire's seat-days of the local days that just ended are appended to the
    # ledger (billing.seats; a day recorded already appends nothing).
    "billing.record_seat_days": {
        "task": "billing.record_seat_days",
        "schedule": crontab(minute="10"),
    },
    # Hourly: open statements (this month, last month in its grace) are re-rated from the
    # ledger, so the console shows the month so far.
    "billing.refresh_statements": {
        "task": "billing.refresh_statements",
        "schedule": crontab(minute="40"),
    },
    # Hourly: local months end at different UTC hours; each is closed two days after its end
    # (billing.statements.GRACE), in order, and then never changes.
    "billing.close_statements": {
        "task": "billing.close_statements",
        "schedule": crontab(minute="20"),
    },
    # Every minute, with Stripe configured (else it does nothing): closed statements are
    # invoiced and pending refunds asked again, failures backing off (billing.push).
    "billing.sync_stripe": {
        "task": "billing.sync_stripe",
        "schedule": crontab(minute="*"),
    },
    # Hourly (idempotent): organizations whose grace after a failed payment ran out have their
    # non-essential digital employees suspended within the hour, and hires activated while
    # suspended are suspended too (billing.dunning).
    "billing.enforce_dunning": {
        "task": "billing.enforce_dunning",
        "schedule": crontab(minute="50"),
    },
}


@signals.celeryd_init.connect
def _serve_metrics(**_: object) -> None:
    # In a pod of its own (the chart sets WORKER_METRICS_PORT) the worker's main process serves
    # what its pool processes counted (rollups, usage records). Under `serve` the port is unset:
    # their files go to the folder the web's /metrics reads.
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from ironbowl import metrics_server

        metrics_server.empty_multiprocess_dir(keep_pid=os.getpid())
        metrics_server.serve(int(port))


@signals.worker_process_shutdown.connect
def _mark_metrics_process_dead(pid: int | None = None, **_: object) -> None:
    # Multiprocess Prometheus: a dead pool child's live gauges must stop counting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]
