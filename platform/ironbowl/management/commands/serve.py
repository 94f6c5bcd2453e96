"""Run the whole product on this machine: ASGI web server, Celery worker and beat, and the
inference orchestrator with its local worker processes, together.

`make run` calls this after migrating and seeding. Ctrl-C (or SIGTERM) stops them all; if one
of them dies, the others are stopped too, so a half-running product never looks healthy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from ironbowl.demo import demo_logins


class Command(BaseCommand):
    help = (
        "Start the web server (ASGI, websockets), a Celery worker, beat and the inference "
        "orchestrator; stop all on Ctrl-C."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        env = self._environment()
        # Local inference workers call the control plane at the address it serves on.
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        env.setdefault("INFERENCE_CONTROL_URL", f"http://{reachable}:{port}")
        python = sys.executable
        commands = {
            "web": [
                python,
                "-m",
                "uvicorn",
                "ironbowl.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--no-access-log",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "ironbowl",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                "worker@%h",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "ironbowl",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
            "orchestrator": [
                python,
                "manage.py",
                "orchestrate",
                "--backend",
                "local",
                "--stop-workers-on-exit",
            ],
        }
        processes = {
            name: subprocess.Popen(command, env=env, cwd=settings.BASE_DIR)  # noqa: S603
            for name, command in commands.items()
        }
        url = f"http://{host}:{port}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Ironbowl is starting at {url}/",
                    f"  API docs:  {url}/api/docs/",
                    f"  Admin:     {url}/admin/",
                    "Demo logins:",
                    *demo_logins(),
                    "Press Ctrl-C to stop the web server, worker, beat and orchestrator.",
                    "",
                ]
            )
        )
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping.")
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)
        self._stop_all(processes)
        if exit_code:
            raise SystemExit(exit_code)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        platform_dir = str(settings.BASE_DIR / "platform")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [platform_dir, str(settings.BASE_DIR), env.get("PYTHONPATH")])
        )
        env.setdefault("LOG_FORMAT", "console")
        # Several processes write metrics; /metrics aggregates them (emptied at every start).
        metrics_dir = settings.DATA_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        return env

    def _stop_all(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it.")
                process.kill()
                process.wait()
        self.stdout.write("Stopped.")
