"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers. Checks nothing else, so a slow database never restarts the web pods."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure means not ready; say which
        return f"{type(error).__name__}: {error}"
    return None


def _check_broker() -> str | None:
    if settings.REDIS_URL:
        import redis

        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
            client.ping()
            client.close()
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None
    queue = settings.CELERY_BROKER_DIR / "queue"
    if not queue.is_dir():
        return f"broker folder {queue} is missing"
    return None


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    ready = all(problem is None for problem in checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
