"""Reports the worker owes the control plane, kept until the control plane has answered for them.

A report enters with its id (chosen once) and leaves only when the control plane said accepted,
duplicate or stale, so a report whose answer was lost is sent again under the same id and counts
once. With a state directory, every entry and every removal is appended to a JSONL journal, so
that a restarted worker (same state directory) replays what it still owes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, cast

from inference import contracts

log = logging.getLogger(__name__)

# Rewrite the journal once it holds this many removed entries, so it does not grow forever.
COMPACT_AFTER = 1000


def report_from_json(data: dict[str, Any]) -> contracts.Report:
    """The inverse of `Report.to_json` (the worker needs it only to replay its journal)."""
    usage = data.get("usage")
    return contracts.Report(
        report_id=str(data["report_id"]),
        workload_id=str(data["workload_id"]),
        attempt=int(data["attempt"]),
        kind=cast(contracts.ReportKind, data["kind"]),
        progress=None if data.get("progress") is None else float(data["progress"]),
        message=str(data.get("message", "")),
        usage=None if usage is None else contracts.Usage.from_json(usage),
        status=cast(contracts.ResultStatus | None, data.get("status")),
        reason=str(data.get("reason", "")),
        output=dict(data.get("output") or {}),
    )


class Outbox:
    """Thread-safe FIFO of pending reports, optionally journaled to `path`."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, contracts.Report] = {}  # insertion order is sending order
        self._path = path
        self._journal: IO[str] | None = None
        self._removed_since_compaction = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._pending = _replay(path)
            if self._pending:
                log.info("outbox: %d report(s) replayed from %s", len(self._pending), path)
            self._rewrite()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def add(self, report: contracts.Report) -> None:
        with self._lock:
            self._pending[report.report_id] = report
            self._append({"add": report.to_json()})

    def peek(self, limit: int) -> list[contracts.Report]:
        """The oldest `limit` reports, left in the outbox until `remove`."""
        with self._lock:
            return list(self._pending.values())[:limit]

    def remove(self, report_ids: Iterable[str]) -> None:
        with self._lock:
            gone = [rid for rid in report_ids if self._pending.pop(rid, None) is not None]
            if not gone:
                return
            self._removed_since_compaction += len(gone)
            if not self._pending or self._removed_since_compaction >= COMPACT_AFTER:
                self._rewrite()
            else:
                self._append({"remove": gone})

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _append(self, entry: dict[str, Any]) -> None:
        if self._journal is None:
            return
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def _rewrite(self) -> None:
        """Replace the journal by one line per pending report (atomically)."""
        if self._path is None:
            return
        if self._journal is not None:
            self._journal.close()
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for report in self._pending.values():
                out.write(json.dumps({"add": report.to_json()}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self._path)
        self._journal = self._path.open("a", encoding="utf-8")
        self._removed_since_compaction = 0


def _replay(path: Path) -> dict[str, contracts.Report]:
    pending: dict[str, contracts.Report] = {}
    if not path.exists():
        return pending
    with path.open(encoding="utf-8") as journal:
        for number, line in enumerate(journal, start=1):
            try:
                entry = json.loads(line)
                if "add" in entry:
                    report = report_from_json(entry["add"])
                    pending[report.report_id] = report
                for rid in entry.get("remove", ()):
                    pending.pop(rid, None)
            except (ValueError, KeyError, TypeError):
                # A line cut by a crash mid-write: everything before it is intact.
                log.warning("outbox: skipping unreadable line %d of %s", number, path)
    return pending
