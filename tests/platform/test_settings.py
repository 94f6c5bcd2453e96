"""Start-up configuration from the environment, as an operator meets it.

Every case starts a real Python process that imports the settings (cwd: the repository root,
PYTHONPATH: platform/), with an environment stripped of the variables Ironbowl reads. The
processes of one module run side by side.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ironbowl.config import Config

REPO = Path(settings.BASE_DIR)
POSTGRES = "postgres://ironbowl:db-password-1@db.internal:5432/ironbowl"
REDIS = "redis://redis.internal:6379/0"
STRONG_KEY = secrets.token_urlsafe(50)

PRINT_SETTINGS = textwrap.dedent(
    """
    import json
    from django.conf import settings
    import ironbowl.settings as s
    print(json.dumps({
        "DEBUG": s.DEBUG,
        "SECRET_KEY": s.SECRET_KEY,
        "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
        "SESSION_COOKIE_SECURE": getattr(s, "SESSION_COOKIE_SECURE", False),
        "CSRF_COOKIE_SECURE": getattr(s, "CSRF_COOKIE_SECURE", False),
        "SECURE_SSL_REDIRECT": getattr(s, "SECURE_SSL_REDIRECT", False),
        "SECURE_PROXY_SSL_HEADER": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
        "SECURE_HSTS_SECONDS": getattr(s, "SECURE_HSTS_SECONDS", 0),
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": getattr(s, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False),
        "SECURE_HSTS_PRELOAD": getattr(s, "SECURE_HSTS_PRELOAD", False),
        "database": s.DATABASES["default"]["ENGINE"],
        "database_host": s.DATABASES["default"].get("HOST"),
        "cache": s.CACHES["default"]["BACKEND"],
        "channel_layer": s.CHANNEL_LAYERS["default"]["BACKEND"],
        "broker": s.CELERY_BROKER_URL,
        "staticfiles": s.STORAGES["staticfiles"]["BACKEND"],
    }))
    """
)

PRODUCTION = {
    "IRONBOWL_ENV": "production",
    "SECRET_KEY": STRONG_KEY,
    "DATABASE_URL": POSTGRES,
    "REDIS_URL": REDIS,
    "ALLOWED_HOSTS": "console.ironbowl.example, api.ironbowl.example",
}

# name: (environment, the variable the message must name)
REFUSALS = {
    "mysql": ({"DATABASE_URL": "mysql://admin:db-password-1@db/ironbowl"}, "DATABASE_URL"),
    "time-zone": ({"TIME_ZONE": "Mars/Base"}, "TIME_ZONE"),
    "throttle-rate": ({"THROTTLE_ORGANIZATION_RATE": "lots"}, "THROTTLE_ORGANIZATION_RATE"),
    "mode": ({"IRONBOWL_ENV": "staging"}, "IRONBOWL_ENV"),
    "production-without-key": ({**PRODUCTION, "SECRET_KEY": ""}, "SECRET_KEY"),
    "production-short-key": ({**PRODUCTION, "SECRET_KEY": "short-secret-123"}, "SECRET_KEY"),
    "production-sqlite": ({**PRODUCTION, "DATABASE_URL": ""}, "DATABASE_URL"),
    "production-without-redis": ({**PRODUCTION, "REDIS_URL": ""}, "REDIS_URL"),
}


def clean_environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The test process's environment without anything Ironbowl reads, plus the overrides."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Config.model_fields and name not in ("DJANGO_SETTINGS_MODULE", "CI")
    }
    env.update(
        PYTHONPATH=str(REPO / "platform"),
        DJANGO_SETTINGS_MODULE="ironbowl.settings",
        DATA_DIR=str(data_dir),
    )
    env.update(overrides)
    return {name: value for name, value in env.items() if value != ""}


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every process of this module at once; collect (exit code, stdout, stderr)."""
    folder = tmp_path_factory.mktemp("settings")
    processes = {
        name: start(["-c", "import ironbowl.settings"], clean_environment(folder / name, **env))
        for name, (env, _) in REFUSALS.items()
    }
    processes["production"] = start(
        ["-c", PRINT_SETTINGS], clean_environment(folder / "production", **PRODUCTION)
    )
    processes["deploy-check"] = start(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        clean_environment(folder / "deploy-check", **PRODUCTION),
    )
    processes["development"] = start(["-c", PRINT_SETTINGS], clean_environment(folder / "dev"))
    processes["development-elsewhere"] = start(
        ["-c", PRINT_SETTINGS], clean_environment(folder / "elsewhere")
    )
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = (process.returncode, stdout, stderr)
    results["folder"] = folder
    return results


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_value_stops_start_up_naming_the_variable(runs, case):
    variable = REFUSALS[case][1]
    code, stdout, stderr = runs[case]

    assert code == 2, stderr
    assert stderr.startswith("Ironbowl cannot start; fix these environment variables:\n")
    assert variable in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    # Secrets in a refused value are not echoed into logs.
    assert "db-password-1" not in stderr
    assert "short-secret-123" not in stderr


def production_settings(runs) -> dict[str, Any]:
    code, stdout, stderr = runs["production"]
    assert code == 0, stderr
    values: dict[str, Any] = json.loads(stdout)
    return values


def test_production_turns_on_what_a_public_https_site_needs(runs):
    values = production_settings(runs)

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SECRET_KEY"] == STRONG_KEY
    assert values["ALLOWED_HOSTS"] == ["console.ironbowl.example", "api.ironbowl.example"]
    assert values["staticfiles"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_production_uses_postgresql_and_redis_everywhere(runs):
    values = production_settings(runs)

    assert values["database"] == "django.db.backends.postgresql"
    assert values["database_host"] == "db.internal"
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert values["channel_layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["broker"] == REDIS


def test_production_passes_djangos_deployment_checks(runs):
    code, stdout, stderr = runs["deploy-check"]

    assert code == 0, stdout + stderr
    assert "no issues" in stdout


def test_development_needs_no_services(runs):
    code, stdout, stderr = runs["development"]
    assert code == 0, stderr
    values = json.loads(stdout)

    assert values["database"] == "django.db.backends.sqlite3"
    assert values["channel_layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["broker"] == "filesystem://"
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert (runs["folder"] / "dev" / "broker" / "queue").is_dir()


def test_development_secret_key_is_generated_once_and_kept(runs):
    first = json.loads(runs["development"][1])["SECRET_KEY"]
    elsewhere = json.loads(runs["development-elsewhere"][1])["SECRET_KEY"]
    key_file = runs["folder"] / "dev" / "secret_key"

    again = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=clean_environment(runs["folder"] / "dev"),
        timeout=120,
        check=True,
    )

    assert json.loads(again.stdout)["SECRET_KEY"] == first
    assert len(first) >= 50
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert elsewhere != first
