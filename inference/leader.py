"""One active orchestrator: leadership is a lock held in the database.

On PostgreSQL a session-level advisory lock: held as long as the leader's connection lives, so a
killed leader releases it at once, and holding it writes nothing. On SQLite (the embedded
default, one machine) an exclusive lock on a file beside the database plays the same role.
Standbys poll `try_acquire` and take over when the lock frees.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import connection

# Advisory locks are per server, not per database: the key includes the database's name, so
# two installations (or a test run) on one PostgreSQL server do not block each other.
ADVISORY_BASE = 0x1B0C_4E57 << 32


def advisory_key() -> int:
    name = str(connection.settings_dict["NAME"])
    return ADVISORY_BASE | zlib.crc32(name.encode())


class Leadership:
    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key()])
                self.held = bool(cursor.fetchone()[0])
            return self.held
        path = Path(settings.DATA_DIR) / "orchestrator.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file, self.held = handle, True
        return True

    def still_held(self) -> bool:
        """On PostgreSQL the lock lives with the connection: if it dropped, so did leadership."""
        if not self.held:
            return False
        if connection.vendor == "postgresql":
            # A dropped and reopened connection no longer holds the lock: ask the server (a read).
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = %s",
                    [advisory_key()],
                )
                self.held = bool(cursor.fetchone()[0])
        return self.held

    def connection_closed(self) -> None:
        """The database connection was closed on purpose: on PostgreSQL the lock went with it
        and must be won again; the SQLite file lock does not depend on the connection."""
        if connection.vendor == "postgresql":
            self.held = False

    def release(self) -> None:
        if not self.held:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [advisory_key()])
        elif self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self.held = False
