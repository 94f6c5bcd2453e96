"""`platform/` is a source folder, never a package: every entry point gets the standard library's
`platform` module, which uuid, prometheus_client, kubernetes, stripe and Celery's worker need.

Each entry point runs as a real process from the repository root, where a `platform` package
would be found first if one existed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from django.conf import settings

REPO = Path(settings.BASE_DIR)
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()

# uuid calls platform.system() on Linux (Python 3.11); the others import platform at import time.
PROBE = (
    "import platform, uuid, prometheus_client, kubernetes, stripe; uuid.uuid1(); "
    "print(platform.system(), platform.__file__)"
)


def in_stdlib(path: str) -> bool:
    return Path(path).resolve().parent == STDLIB


def test_platform_folder_is_not_a_package():
    assert (REPO / "platform" / "ironbowl" / "__init__.py").exists()
    assert not (REPO / "platform" / "__init__.py").exists()
    assert not (REPO / "platform.py").exists()
    assert not (REPO / "platform" / "platform.py").exists()


def test_pytest_itself_uses_the_standard_library_platform():
    import platform

    import ironbowl

    assert str(REPO / "platform") in sys.path
    assert in_stdlib(platform.__file__)
    assert platform.system()
    assert Path(ironbowl.__file__).parent == REPO / "platform" / "ironbowl"


def run(args: list[str], tmp_path: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "platform"),
        "DJANGO_SETTINGS_MODULE": "ironbowl.settings",
        "DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def assert_stdlib_platform(output: str) -> None:
    system, _, path = output.strip().splitlines()[-1].partition(" ")
    assert system == __import__("platform").system()
    assert in_stdlib(path), path


def test_manage_py_shell_uses_the_standard_library_platform(tmp_path):
    output = run(["manage.py", "shell", "-c", PROBE], tmp_path)

    assert_stdlib_platform(output)


def test_asgi_and_celery_apps_use_the_standard_library_platform(tmp_path):
    # What gunicorn/uvicorn and the Celery worker import first, then what they rely on.
    output = run(["-c", f"import ironbowl.asgi, ironbowl.celery; {PROBE}"], tmp_path)

    assert_stdlib_platform(output)


def test_celery_command_line_reports_the_platform(tmp_path):
    # `celery report` prints platform.system() and friends; with the repository root on sys.path
    # (python -m), a `platform` package there would be imported instead and break it.
    output = run(["-m", "celery", "-A", "ironbowl", "report"], tmp_path)

    assert f"system:{__import__('platform').system()}" in output
    assert "settings -> transport:" in output
