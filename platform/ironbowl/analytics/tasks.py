"""Background work of analytics; thin wrappers that call a service."""

from __future__ import annotations

from celery import shared_task

from ironbowl.analytics import conversations, retention, rollups, usage


@shared_task(name="analytics.rollup")
def rollup() -> dict[str, int | float]:
    """Recompute the stale hours and their days (`rollups.run`; safe to repeat, and two runs at
    once never interleave on a day)."""
    return rollups.run().as_dict()


@shared_task(name="analytics.convert_usage")
def convert_usage() -> dict[str, int]:
    """Usage reports whose signal was lost become usage records (`usage.convert_pending`;
    exactly once, however many run)."""
    return usage.convert_pending().as_dict()


@shared_task(name="analytics.count_interactions")
def count_interactions() -> dict[str, int]:
    """Recent conversations' exchanges whose signal was lost are counted as events
    (`conversations.count_recent`; ingestion stores each event once)."""
    return conversations.count_recent().as_dict()


@shared_task(name="analytics.maintain")
def maintain() -> dict[str, int]:
    """Raw events' partitions are made a week ahead and the expired ones dropped (on SQLite,
    expired rows deleted): `retention.enforce`."""
    report = retention.enforce()
    return {
        "partitions_made": report.partitions_made,
        "partitions_dropped": len(report.partitions_dropped),
        "rows_deleted": report.rows_deleted,
    }
