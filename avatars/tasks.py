"""Background work of the avatars domain; thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from avatars import builds, consent, reviews, uploads


@shared_task(name="avatars.enforce_consents")
def enforce_consents() -> int:
    return consent.enforce_lapsed_consents()


@shared_task(name="avatars.create_monthly_reviews")
def create_monthly_reviews() -> int:
    return reviews.create_monthly_reviews()


@shared_task(name="avatars.requeue_stale_builds")
def requeue_stale_builds() -> int:
    """Catch up builds whose workload ended unnoticed; fail those nothing runs
    (see `builds.sweep_builds`)."""
    return builds.sweep_builds()


@shared_task(name="avatars.purge_abandoned_uploads")
def purge_abandoned_uploads() -> int:
    """Give up uploads still receiving a week after they started (`uploads.purge_abandoned_…`)."""
    return uploads.purge_abandoned_uploads()
