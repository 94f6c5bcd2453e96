"""`manage.py serve` — what `make run` starts — runs web, worker and beat, and stops them all.

Real processes on the embedded default (SQLite, file broker) in a temporary DATA_DIR.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(settings.BASE_DIR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (our own local server)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def embedded_env(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "PYTEST_VERSION", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=os.pathsep.join([str(REPO / "platform"), str(REPO)]),
    )
    return env


def _manage(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _checks_done(env) -> bool:
    """Whether every demo system check succeeded, read by a separate process."""
    script = (
        "from inference.models import Workload;"
        "rows = Workload.objects.unscoped_dangerously().filter("
        "idempotency_key='demo-system-check');"
        "print(rows.count(), rows.filter(state='succeeded').count())"
    )
    last = _manage(env, "shell", "-c", script).stdout.strip().splitlines()[-1].split()
    return len(last) == 2 and last[0] == last[1] != "0"


def _on_duty(env) -> set[str]:
    """The kinds of station with a shift on duty, read by a separate process."""
    script = (
        "from scheduling.models import Shift;"
        "rows = Shift.objects.unscoped_dangerously().filter(state='on_duty');"
        "print('on duty:', *sorted(set(rows.values_list('station__kind', flat=True))))"
    )
    last = _manage(env, "shell", "-c", script).stdout.strip().splitlines()[-1]
    return set(last.removeprefix("on duty:").split())


def test_serve_runs_the_product_and_stops_everything_on_ctrl_c(embedded_env):
    _manage(embedded_env, "migrate", "--noinput", "-v", "0")
    seeded = _manage(embedded_env, "seed_demo").stdout
    assert "qinghe-hospital" in seeded
    assert "Demo data already present" in _manage(embedded_env, "seed_demo").stdout

    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=REPO,
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serve.stdout), daemon=True)
    reader.start()

    def printed(text: str) -> bool:
        return any(text in line for line in list(lines))

    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status == 200, "the web server never became ready"
        assert json.loads(body)["checks"] == {"database": "ok", "broker": "ok"}
        status, _ = _get(f"http://127.0.0.1:{port}/api/docs/")
        assert status == 200
        # A foreign Host header is refused for the app but not for probes.
        assert _get(f"http://127.0.0.1:{port}/healthz", Host="10.0.0.7:8000")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/api/v1/me/", Host="evil.example")[0] == 400
        # The worker and beat are real processes: wait until they say they are up.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            printed(" ready.") and printed("beat: Starting")
        ):
            time.sleep(0.2)
        assert printed(" ready."), "the Celery worker never became ready"
        assert printed("beat: Starting"), "beat never started"
        # The orchestrator leads, starts a local worker, and the demo's system checks finish.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not _checks_done(embedded_env):
            time.sleep(0.5)
        assert printed("leader_acquired"), "the orchestrator never took the lead"
        assert _checks_done(embedded_env), "the demo system checks did not finish"
        # Beat's first tick (at the next minute) opens the bureau's 24/7 desk and requests the
        # hospital's rehearsal stream; a local worker puts it on air, into HLS.
        wanted = {"web_widget", "live_room"}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not wanted <= _on_duty(embedded_env):
            time.sleep(2)
        assert wanted <= _on_duty(embedded_env), "the demo's shifts did not go on duty"
        # On duty means the stream runs; the playlist appears once its first segment is written.
        renders = Path(embedded_env["DATA_DIR"]) / "media" / "renders"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(renders.glob("station-*/index.m3u8")):
            time.sleep(1)
        assert list(renders.glob("station-*/index.m3u8")), "the rehearsal streams no HLS"
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
        reader.join(timeout=10)
        serve.stdout.close()
    output = "".join(lines)
    assert serve.returncode == 0, output
    assert "Ironbowl is starting at" in output
    assert "password for all: ironbowl-demo" in output
    assert "Stopped." in output
    # No process of the group is left behind.
    with pytest.raises(ProcessLookupError):
        os.killpg(serve.pid, 0)
