"""The Ironbowl control plane: settings, URLs, ASGI/WSGI entry points and the Celery app."""

from ironbowl.celery import app as celery_app

__all__ = ["celery_app"]
