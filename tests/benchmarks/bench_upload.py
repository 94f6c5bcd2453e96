"""Benchmark: a chunked upload through the API against writing the same bytes straight to disk.

Sends 64 MiB of random bytes as a resumable upload through the whole Django stack with the test
client: POST uploads/ (start), eight PUTs of 8 MiB with Content-Range (middleware, API-key
authentication, organization and permission checks, throttling, the chunk parser, the row lock,
the write at the offset), then POST …/complete/ (the SHA-256 of the stored file is checked). Beside
it, in the same run and interleaved with it: the same bytes written to a file in the same folder
in 8 MiB writes (the baseline), and the same with the SHA-256 computed as the bytes go.

The upload's purpose is `document` with its size limit raised for the run: the content check of
footage (PyAV reading the container's header) would need a real video, and costs the same for
any size. Nothing is fsynced, by the API or the baselines. Needs Django set up on a throwaway
database: `tests.benchmarks.run` does that.
"""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from tenants import services
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.roles import Permission
from tests.benchmarks.bench_api import BenchmarkSection, _new_organization

MIB = 1024 * 1024
SIZE = 64 * MIB
CHUNK = 8 * MIB
ROUNDS = 7
WARMUP = 1


def _disk_write(folder: Path, payload: bytes, *, digest: bool) -> Callable[[], None]:
    """Write the payload to a new file in CHUNK-sized writes (optionally hashing), then remove."""

    def run() -> None:
        path = folder / "baseline.bin"
        sha = hashlib.sha256() if digest else None
        view = memoryview(payload)
        with path.open("wb") as stream:
            for offset in range(0, len(payload), CHUNK):
                piece = view[offset : offset + CHUNK]
                stream.write(piece)
                if sha is not None:
                    sha.update(piece)
        path.unlink()

    return run


class ApiUpload:
    """One whole upload through the API; keeps the time of each phase of the last call."""

    def __init__(self, client: Client, organization: Organization, token: str, payload: bytes):
        self.client = client
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        self.list_url = reverse("upload-list", kwargs={"org": organization.slug})
        self.organization = organization
        self.payload = payload
        self.sha256 = hashlib.sha256(payload).hexdigest()
        self.phases: dict[str, list[float]] = {"start": [], "chunks": [], "complete": []}

    def _check(self, response: Any, expected: int) -> Any:
        if response.status_code != expected:
            raise RuntimeError(f"upload answered {response.status_code}: {response.content!r}")
        return response.json()

    def __call__(self) -> None:
        started = time.perf_counter()
        body = {
            "purpose": "document",
            "filename": "bench.txt",
            "content_type": "text/plain",
            "size": len(self.payload),
        }
        created = self._check(
            self.client.post(self.list_url, body, content_type="application/json", **self.auth),
            201,
        )
        detail = reverse(
            "upload-detail", kwargs={"org": self.organization.slug, "pk": created["id"]}
        )
        sent = time.perf_counter()
        view = memoryview(self.payload)
        for offset in range(0, len(self.payload), CHUNK):
            piece = bytes(view[offset : offset + CHUNK])
            end = offset + len(piece) - 1
            self._check(
                self.client.put(
                    detail,
                    piece,
                    content_type="application/octet-stream",
                    HTTP_CONTENT_RANGE=f"bytes {offset}-{end}/{len(self.payload)}",
                    **self.auth,
                ),
                200,
            )
        chunks_done = time.perf_counter()
        done = self._check(
            self.client.post(
                f"{detail}complete/",
                {"sha256": self.sha256},
                content_type="application/json",
                **self.auth,
            ),
            200,
        )
        finished = time.perf_counter()
        if done["status"] != "complete":
            raise RuntimeError(f"upload did not complete: {done}")
        self.phases["start"].append(sent - started)
        self.phases["chunks"].append(chunks_done - sent)
        self.phases["complete"].append(finished - chunks_done)
        # Each round starts from an empty folder, as the baselines do.
        shutil.rmtree(Path(settings.MEDIA_ROOT) / "uploads", ignore_errors=True)


def _measure(cases: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each case, round-robin with a rotating order (load falls on all)."""
    for _ in range(WARMUP):
        for call in cases.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    gc.collect()
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - began)
    return samples


def _mib_per_s(seconds: float) -> float:
    return SIZE / MIB / seconds


def run(*, rounds: int = ROUNDS) -> BenchmarkSection:
    organization = _new_organization("bench-upload", "Upload tenant")
    _key, token = services.create_api_key(
        SYSTEM, organization, name="benchmark", scopes=[Permission.UPLOADS_MANAGE]
    )
    payload = os.urandom(SIZE)
    folder = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=settings.DATA_DIR))
    limits = {
        **settings.UPLOAD_LIMITS,
        "document": {**settings.UPLOAD_LIMITS["document"], "max_bytes": SIZE},
    }
    try:
        with override_settings(MEDIA_ROOT=folder / "media", UPLOAD_LIMITS=limits):
            baseline_dir = folder / "baseline"
            baseline_dir.mkdir()
            upload = ApiUpload(Client(), organization, token, payload)
            samples = _measure(
                {
                    "disk": _disk_write(baseline_dir, payload, digest=False),
                    "disk_sha256": _disk_write(baseline_dir, payload, digest=True),
                    "api": upload,
                },
                rounds,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in samples.items()}
    phases = {name: statistics.median(values[WARMUP:]) for name, values in upload.phases.items()}
    data = {
        "endpoint": "POST uploads/, PUT uploads/{id}/ × 8, POST uploads/{id}/complete/",
        "authentication": "API key (Bearer), scope uploads.manage",
        "bytes": SIZE,
        "chunk_bytes": CHUNK,
        "rounds": rounds,
        "warmup": WARMUP,
        "median_seconds": {name: round(value, 4) for name, value in median.items()},
        "mib_per_s": {name: round(_mib_per_s(value), 1) for name, value in median.items()},
        "api_phase_median_seconds": {name: round(value, 4) for name, value in phases.items()},
        "chunks_only_mib_per_s": round(_mib_per_s(phases["chunks"]), 1),
        "ratio_api_to_disk": round(median["disk"] / median["api"], 3),
        "ratio_api_to_disk_sha256": round(median["disk_sha256"] / median["api"], 3),
    }
    return BenchmarkSection(
        name="chunked_upload",
        title="Chunked upload throughput: 64 MiB in 8 MiB chunks through the API vs. disk",
        markdown=_markdown(data),
        data=data,
    )


def _markdown(data: dict[str, Any]) -> str:
    speed, seconds = data["mib_per_s"], data["median_seconds"]
    phases = data["api_phase_median_seconds"]
    lines = [
        f"{data['bytes'] // MIB} MiB of random bytes in {data['chunk_bytes'] // MIB} MiB chunks, "
        f"as one resumable upload: {data['endpoint']}, with an {data['authentication']}, through "
        "Django's test client (the request body is copied in memory as a server would read it "
        f"from the socket). {data['rounds']} rounds after {data['warmup']} warm-up, interleaved; "
        "medians. Ratio: the API's throughput as a fraction of the baseline's (1 would be as "
        "fast as the disk).",
        "",
        "| case | median s | MiB/s | API ÷ case (throughput) |",
        "|---|---:|---:|---:|",
        f"| write to disk, 8 MiB writes (baseline) | {seconds['disk']:.3f} | {speed['disk']:.0f} "
        f"| {data['ratio_api_to_disk']:.2f} |",
        f"| write to disk + SHA-256 | {seconds['disk_sha256']:.3f} | "
        f"{speed['disk_sha256']:.0f} | {data['ratio_api_to_disk_sha256']:.2f} |",
        f"| upload through the API (start, chunks, complete) | {seconds['api']:.3f} | "
        f"{speed['api']:.0f} | 1 |",
        "",
        f"Where the API's time goes (medians): start {phases['start'] * 1000:.1f} ms; the "
        f"chunks {phases['chunks'] * 1000:.0f} ms ({data['chunks_only_mib_per_s']:.0f} MiB/s); "
        f"complete (reading the file back for its SHA-256) {phases['complete'] * 1000:.0f} ms.",
    ]
    return "\n".join(lines)
