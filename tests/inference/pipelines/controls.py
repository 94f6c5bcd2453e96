"""The control plane's file endpoints for pipelines run in-process: what a worker's transfer
helpers talk to, on folders (the endpoints have their own tests in
tests/inference/test_worker_artifacts.py, and the end-to-end tests run the whole path)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any


class LocalControl:
    """The control plane's file endpoints, on folders: inputs by name, outputs kept in memory.
    `refuse` maps an input or output name to the errors its next transfers raise, in order."""

    def __init__(self, inputs: dict[str, Path]) -> None:
        self.inputs = inputs
        self.outputs: dict[str, bytes] = {}
        self.refuse: dict[str, list[Exception]] = {}
        self.calls: list[tuple[str, str, int]] = []

    def _maybe_refuse(self, name: str) -> None:
        errors = self.refuse.get(name)
        if errors:
            raise errors.pop(0)

    def download_input(self, workload_id: str, attempt: int, name: str, destination: Path) -> None:
        self.calls.append(("download", name, attempt))
        self._maybe_refuse(name)
        shutil.copyfile(self.inputs[name], destination)

    def upload_output(
        self, workload_id: str, attempt: int, name: str, source: Path, sha256: str
    ) -> dict[str, Any]:
        self.calls.append(("upload", name, attempt))
        self._maybe_refuse(name)
        self.outputs[name] = source.read_bytes()
        return {"name": name, "sha256": hashlib.sha256(self.outputs[name]).hexdigest()}
