"""Background work of the avatars domain; thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from avatars import builds, consent, reviews


@shared_task(name="avatars.run_build", acks_late=True)
def run_build(organization_id: str, build_id: str) -> None:
    builds.run_build(organization_id, build_id)


@shared_task(name="avatars.enforce_consents")
def enforce_consents() -> int:
    return consent.enforce_lapsed_consents()


@shared_task(name="avatars.create_monthly_reviews")
def create_monthly_reviews() -> int:
    return reviews.create_monthly_reviews()
