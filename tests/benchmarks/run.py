"""`make bench`: run the benchmarks on a throwaway database and write bench-report/.

    python -m tests.benchmarks.run [--iterations N] [--warmup N] [--output DIR] [--only NAME]

Uses the database that DATABASE_URL names (SQLite or PostgreSQL) only to create and drop a
separate benchmark database beside it, the way Django's test runner does; the development data
is never read or written. Writes report.json and report.md, and prints the markdown.
Benchmarks are not tests: nothing here fails because something is slow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.benchmarks.bench_api import BenchmarkSection

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DATABASE_SUFFIX = "_bench"


def _prepare_environment() -> None:
    source = str(REPO_ROOT / "platform")
    if source not in sys.path:
        sys.path.insert(0, source)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ironbowl.settings")
    # Request logs would flood the terminal; their cost depends on where logs go, not on the API.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # One caller making thousands of requests a minute: real limits would answer 429. The
    # throttles still run (cache reads and writes), only with limits that are never reached.
    os.environ["THROTTLE_ORGANIZATION_RATE"] = "1000000/second"
    os.environ["THROTTLE_KEY_RATE"] = "1000000/second"


@contextmanager
def throwaway_database() -> Iterator[None]:
    """A fresh, migrated database under its own name, dropped afterwards (even on error)."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    original_name = connection.settings_dict["NAME"]
    test_settings = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        # Not the test suite's file: a test run beside the benchmark must not lose its database.
        test_settings["NAME"] = str(
            Path(settings.DATA_DIR) / f"ironbowl{BENCH_DATABASE_SUFFIX}.sqlite3"
        )
    else:
        test_settings["NAME"] = f"{original_name}{BENCH_DATABASE_SUFFIX}"
    setup_test_environment()
    try:
        connection.creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False, keepdb=False
        )
        try:
            yield
        finally:
            connection.creation.destroy_test_db(original_name, verbosity=0, keepdb=False)
    finally:
        teardown_test_environment()


def describe_environment() -> dict[str, Any]:
    import django
    import rest_framework
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
            database = f"SQLite {cursor.fetchone()[0]}"
        else:
            database = connection.display_name
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "database": database,
        "database_vendor": connection.vendor,
        "cache": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1],
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "os": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def render_markdown(environment: dict[str, Any], sections: list[BenchmarkSection]) -> str:
    env = environment
    lines = [
        "# Ironbowl benchmarks",
        "",
        f"- date: {env['date']}, commit: {env['commit'] or 'unknown'}",
        f"- database: {env['database']}; cache (throttling): {env['cache']}",
        f"- {env['python']}, Django {env['django']}, DRF {env['djangorestframework']}",
        f"- machine: {env['cpu_count']} CPUs ({env['cpus_usable']} usable), "
        f"{env['cpu_model'] or 'unknown model'}, {env['os']}",
        "",
        "Absolute times depend on the machine and on what else it runs: compare them only "
        "between reports from the same machine. Ratios to a baseline measured in the same run "
        "travel better. How to read this: tests/benchmarks/README.md.",
    ]
    for number, section in enumerate(sections, start=1):
        lines += ["", f"## {number}. {section.title}", "", section.markdown]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500, help="timed calls per case")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per case first")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-report")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this entry (repeatable)"
    )
    options = parser.parse_args(argv)
    if options.iterations < 2:
        parser.error("--iterations must be at least 2 (p99 needs samples)")

    _prepare_environment()
    import django

    django.setup()
    from tests.benchmarks import (
        bench_analytics,
        bench_api,
        bench_billing,
        bench_console,
        bench_duty,
        bench_inference,
        bench_market,
        bench_pipelines,
        bench_scheduling,
        bench_upload,
    )

    timed = {"iterations": options.iterations, "warmup": options.warmup}
    entries: list[tuple[str, Callable[[], BenchmarkSection]]] = [
        ("api", lambda: bench_api.run(**timed)),
        ("market", lambda: bench_market.run(**timed)),
        ("upload", bench_upload.run),
        ("inference", bench_inference.run),
        ("pipelines", bench_pipelines.run),
        ("scheduling", lambda: bench_scheduling.run(**timed)),
        ("analytics", lambda: bench_analytics.run(**timed)),
        ("billing", bench_billing.run),
        ("console", lambda: bench_console.run(**timed)),
        ("duty", bench_duty.run),  # last: it leaves its 10,000 shifts behind
    ]
    unknown = set(options.only or ()) - {name for name, _run in entries}
    if unknown:
        parser.error(f"--only: no entry {', '.join(sorted(unknown))}")
    with throwaway_database():
        environment = describe_environment()
        sections = [run() for name, run in entries if not options.only or name in options.only]

    markdown = render_markdown(environment, sections)
    report = {
        "schema": 1,
        "environment": environment,
        "entries": [{"name": s.name, "title": s.title, **s.data} for s in sections],
    }
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (options.output / "report.md").write_text(markdown)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
