"""gunicorn settings for production: ASGI workers and multiprocess Prometheus metrics.

Used as `gunicorn ironbowl.asgi:application -k uvicorn_worker.UvicornWorker -c …/gunicorn_conf.py`.
"""

from __future__ import annotations

import os
from typing import Any

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = 30
timeout = 60
accesslog = None  # django-structlog logs every request with its id
# Whose X-Forwarded-For to believe (client addresses feed rate limits and the audit log):
# set it to the ingress controller's addresses in production.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: Any) -> None:
    # The metrics folder may survive a container restart: stale files would count dead workers.
    from ironbowl.metrics_server import empty_multiprocess_dir

    empty_multiprocess_dir()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
