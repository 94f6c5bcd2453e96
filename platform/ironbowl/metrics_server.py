"""/metrics for processes that serve no HTTP of their own (the Celery worker), and the
multiprocess registry that the web's /metrics shares.

Prometheus client's multiprocess mode: with `PROMETHEUS_MULTIPROC_DIR` set, every process (a
gunicorn worker, a Celery pool child) writes its samples to files in that folder, and whoever
serves /metrics sums them at scrape time. Without it, a process's own registry is all there is.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, multiprocess, start_http_server

log = structlog.get_logger(__name__)

# Sample files are named `<type>[_<mode>]_<pid>.db` (prometheus_client's multiprocess values).
_PID_OF_FILE = re.compile(r"_(\d+)\.db$")


def multiprocess_dir() -> Path | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) if folder else None


def multiprocess_registry() -> CollectorRegistry:
    """A registry that sums the sample files of every process in PROMETHEUS_MULTIPROC_DIR."""
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)  # type: ignore[no-untyped-call]
    return aggregated


def empty_multiprocess_dir(keep_pid: int | None = None) -> None:
    """Removes what earlier runs left in the folder (an emptyDir outlives a container restart:
    their files would be summed again, and a reused pid would carry on a dead process's
    figures), except the files `keep_pid` has already opened."""
    folder = multiprocess_dir()
    for child in folder.iterdir() if folder is not None and folder.exists() else ():
        owner = _PID_OF_FILE.search(child.name)
        if keep_pid is not None and owner is not None and int(owner.group(1)) == keep_pid:
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink(missing_ok=True)


def serve(port: int) -> None:
    """Serves /metrics on `port` from a daemon thread of this process: every process's samples
    when the multiprocess folder is set, else this process's own (prometheus_client's server,
    as `manage.py orchestrate` uses)."""
    if multiprocess_dir() is None:
        log.warning(
            "metrics_without_multiprocess_dir",
            hint="set PROMETHEUS_MULTIPROC_DIR: pool processes' samples are not seen without it",
        )
        start_http_server(port)
    else:
        start_http_server(port, registry=multiprocess_registry())
    log.info("metrics_serving", port=port, pid=os.getpid())
