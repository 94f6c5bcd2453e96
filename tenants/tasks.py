"""Periodic and background work for tenants; thin wrappers around services."""

from celery import shared_task

from tenants import services


@shared_task(name="tenants.expire_invitations")
def expire_invitations() -> int:
    return services.expire_invitations()
