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
}


@signals.worker_process_shutdown.connect
def _mark_metrics_process_dead(pid: int | None = None, **_: object) -> None:
    # Multiprocess Prometheus: a dead pool child's live gauges must stop counting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]
