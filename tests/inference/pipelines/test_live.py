"""The live pipeline on air: HLS for the console, RTMP push to a real nginx-rtmp server.

Real throughout: espeak-ng speech, the mouth track, the torch renderer on CPU (one thread), the
label, PyAV encoding, the real-time clock, ffprobe reading what was written or recorded, and
(RTMP tests) Debian's nginx with libnginx-mod-rtmp run in the foreground, recording every
publish to FLV. Simulated: the worker around the pipeline (a WorkloadContext whose reports the
test collects), and a server outage (the test kills nginx with SIGKILL and starts it again).
No timing bounds: frames may be dropped on a slow machine; the tests check that every frame of
the shift is either sent or counted as dropped, and that what was sent is what a reader finds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch

from inference import contracts
from inference.pipelines import live, render
from inference.pipelines.encode import probe
from inference.worker.pipelines import PipelineFailed, WorkloadContext, WorkloadStopped
from tests.support import require_tool

FPS = 25
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
INSTALL_HINT = "apt-get install -y nginx libnginx-mod-rtmp"
SEGMENTS = [
    {"text": "Good evening, welcome to the live room.", "language": "en"},
    {"text": "欢迎来到直播间。", "language": "zh"},
]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv(render.ENV_OUTPUT_DIR, str(tmp_path))
    monkeypatch.setenv(render.ENV_TORCH_THREADS, "1")
    torch.set_num_threads(1)
    require_tool("ffprobe", "ffmpeg")


def _context(spec: dict, reports: list, on_report=None) -> WorkloadContext:
    def emit(kind, data):
        reports.append((kind, data))
        if on_report is not None:
            on_report(ctx, kind, data)

    assignment = contracts.Assignment("w-live", 1, "live", "live", 1, spec)
    ctx = WorkloadContext(assignment, gpus=0, emit=emit)
    return ctx


def _spec(tmp_path: Path, **extra) -> dict:
    spec = {
        "segments": SEGMENTS,
        "portrait": "reference",
        "ai_label": True,
        "duration_s": 6,
        "idle_between_s": 0.5,
        "outputs": {"hls_dir": "hls"},  # under the output directory: tmp_path
    }
    return spec | extra


def _streams(probed) -> tuple[dict, dict]:
    video = next(s for s in probed["streams"] if s["type"] == "video")
    audio = next(s for s in probed["streams"] if s["type"] == "audio")
    return video, audio


def _assert_counts_add_up(result: dict, output: str) -> None:
    assert result["frames_sent"] + result["frames_dropped"] == result["frames_total"]
    dropped_in_gaps = sum(g["frames"] for g in result["gaps"] if g["output"] in ("all", output))
    assert dropped_in_gaps == result["frames_dropped"]


def test_a_short_shift_streams_to_hls_in_real_time_and_every_frame_is_accounted(tmp_path):
    """Real: the whole pipeline for a 6 s shift of two segments looped with idle between them,
    HLS read back by ffprobe. Simulated: the worker (reports collected here)."""
    reports: list = []
    ctx = _context(_spec(tmp_path), reports)
    result = live.run(ctx)

    assert result["frames_total"] == 6 * FPS
    # The frames/s the output received lately, for the worker's heartbeat (the on-air board).
    assert 0 < ctx.stats()["fps"] <= result["frames_sent"]
    _assert_counts_add_up(result, "hls")
    probed = probe(tmp_path / "hls" / "index.m3u8")
    video, audio = _streams(probed)
    assert (video["codec"], audio["codec"]) == ("h264", "aac")
    assert (video["width"], video["height"]) == (512, 512)
    # What ffprobe decodes is what the pipeline says it sent; dropped frames are not in it.
    assert abs(video["frames"] - result["frames_sent"]) <= 2
    assert probed["duration_s"] == pytest.approx(result["frames_sent"] / FPS, abs=0.1)
    # The two ~2 s segments with 0.5 s idle loop round within 6 s.
    assert result["segments_spoken"] >= 3
    assert result["segments_by_version"] == {"1": result["segments_spoken"]}
    assert result["script_version"] == 1
    usage = [data["usage"] for kind, data in reports if kind == "usage"]
    assert sum(u.stream_minutes for u in usage) == pytest.approx(6 / 60)
    assert next(data["message"] for kind, data in reports if kind == "progress").startswith(
        "on air: segment 1/2 of v1"
    )


def test_a_script_updated_on_air_is_played_from_the_next_segment(tmp_path):
    """Real: the update reaches the workload's context while the stream is on air (from the
    report of the first segment starting, so it lands during segment 1) and goes on air at the
    next segment boundary. Simulated: the worker's hand-over of a heartbeat reply's script
    (`ctx.receive_script`, which the worker calls); the worker and control plane side are tested
    in tests/inference/worker and tests/inference/test_end_to_end.py."""
    updated = contracts.ScriptUpdate(2, ({"text": "Script two is on air now.", "language": "en"},))

    def update_once(ctx, kind, data):
        if kind == "progress" and "v1 (#1)" in data["message"] and ctx.script() is None:
            ctx.receive_script(updated)

    reports: list = []
    spec = _spec(tmp_path, duration_s=5, script_version=1)
    result = live.run(_context(spec, reports, update_once))

    assert result["script_version"] == 2
    assert result["segments_by_version"]["1"] == 1
    assert result["segments_by_version"]["2"] >= 1
    messages = [data["message"] for kind, data in reports if kind == "progress"]
    assert any("segment 1/1 of v2" in message for message in messages)
    _assert_counts_add_up(result, "hls")


def test_a_bad_script_update_keeps_the_current_script_on_air(tmp_path):
    """Real: an update the pipeline cannot take (an unsupported language; the control plane
    refuses such updates, so this is a worker talking to an older or broken control plane) is
    refused between segments and the stream goes on with version 1, saying why. Simulated: the
    delivery (`ctx.receive_script` before the stream starts)."""
    reports: list = []
    ctx = _context(_spec(tmp_path, duration_s=3), reports)
    ctx.receive_script(contracts.ScriptUpdate(5, ({"text": "hi", "language": "fr"},)))
    result = live.run(ctx)
    assert result["script_version"] == 1
    messages = [data["message"] for kind, data in reports if kind == "progress"]
    assert any("v5 ignored" in message and "'fr'" in message for message in messages)


def test_cancel_stops_the_stream_between_chunks_and_ends_the_playlist(tmp_path):
    """Real: the stream and its HLS output; the cancel arrives (ctx.stop, as the worker does on
    a cancel) when the second segment starts. Simulated: the worker's cancel message."""

    def cancel_at_second_segment(ctx, kind, data):
        if kind == "progress" and "(#2)" in data["message"]:
            ctx.stop()

    reports: list = []
    ctx = _context(_spec(tmp_path, duration_s=60), reports, cancel_at_second_segment)
    with pytest.raises(WorkloadStopped):
        live.run(ctx)

    probed = probe(tmp_path / "hls" / "index.m3u8")
    video, _ = _streams(probed)
    assert 0 < video["frames"] < 10 * FPS  # stopped long before the 60 s shift's end
    assert "#EXT-X-ENDLIST" in (tmp_path / "hls" / "index.m3u8").read_text()
    # Time on air is still reported when cancelled: about what was streamed.
    usage = [data["usage"] for kind, data in reports if kind == "usage"]
    assert sum(u.stream_minutes for u in usage) * 60 * FPS >= video["frames"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"segments": []}, "no segments"),
        ({"segments": [{"text": "hola", "language": "es"}]}, "not supported"),
        ({"duration_s": 0}, "duration_s"),
        ({"outputs": {}}, "nowhere to go"),
        ({"outputs": {"rtmp_url": "http://example.org/live"}}, "rtmp://"),
        ({"outputs": {"hls_dir": "/etc/cron.d"}}, "under the worker's output directory"),
        ({"outputs": {"hls_dir": "../../elsewhere"}}, "without '..'"),
        ({"portrait": None, "portrait_path": "/srv/media/avatars/p.png"}, "not read"),
    ],
)
def test_bad_specs_fail_with_a_reason_before_going_on_air(tmp_path, change, message):
    """Real: the spec checks. Nothing is streamed."""
    with pytest.raises(PipelineFailed, match=message):
        live.run(_context(_spec(tmp_path) | change, []))
    assert not (tmp_path / "hls").exists()


# -- RTMP against a real nginx-rtmp --------------------------------------------------------


class Nginx:
    """Debian's nginx with the RTMP module, in the foreground on a free port, recording each
    publish to its own FLV file (record_unique)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records = root / "records"
        self.records.mkdir(parents=True)
        with socket.socket() as probe_socket:
            probe_socket.bind(("127.0.0.1", 0))
            self.port = probe_socket.getsockname()[1]
        self.config = root / "nginx.conf"
        self.config.write_text(
            f"""
load_module {RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        application live {{
            live on;
            record all;
            record_path {self.records};
            record_unique on;
        }}
    }}
}}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/station-key"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("nginx") or "nginx", "-c", str(self.config), "-p", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {(self.root / 'error.log').read_text()}")

    def kill(self) -> None:
        """The server goes away without a goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Graceful stop: recordings are finished."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def recordings(self) -> list[Path]:
        return sorted(self.records.glob("*.flv"))


@pytest.fixture
def nginx(tmp_path):
    if shutil.which("nginx") is None or not RTMP_MODULE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"nginx with the RTMP module is required in CI: {INSTALL_HINT}")
        pytest.skip(f"nginx with the RTMP module is not installed ({INSTALL_HINT})")
    server = Nginx(tmp_path / "nginx")
    server.start()
    yield server
    server.stop()


def test_rtmp_push_is_received_and_recorded_by_nginx(tmp_path, nginx):
    """Real: nginx-rtmp receives the push and records it; ffprobe reads the recording. Only the
    RTMP output is used, so it is the station's output the counts refer to."""
    spec = _spec(tmp_path, duration_s=5, outputs={"rtmp_url": nginx.url})
    result = live.run(_context(spec, []))
    nginx.stop()

    _assert_counts_add_up(result, "rtmp")
    assert result["reconnects"] == 0
    assert "station-key" not in json.dumps(result)  # the stream key is a secret
    (recording,) = nginx.recordings()
    probed = probe(recording)
    video, audio = _streams(probed)
    assert (video["codec"], audio["codec"]) == ("h264", "aac")
    assert abs(video["frames"] - result["frames_sent"]) <= 2
    # FLV gives no per-stream duration; the container's is the recorded time.
    assert probed["duration_s"] == pytest.approx(result["frames_sent"] / FPS, abs=0.25)


def test_the_stream_survives_the_rtmp_server_going_away(tmp_path, nginx):
    """Real: nginx is killed (SIGKILL) once it has recorded some of the stream and started again
    2 s later on the same port; the pipeline reconnects and the new publish is recorded.
    Simulated: the outage (a test thread kills and restarts the server)."""
    outage: dict = {}

    def break_the_server():
        while not nginx.recordings() or nginx.recordings()[0].stat().st_size < 50_000:
            time.sleep(0.05)
        nginx.kill()
        outage["killed"] = True
        time.sleep(2)
        nginx.start()

    saboteur = threading.Thread(target=break_the_server, daemon=True)
    saboteur.start()
    spec = _spec(tmp_path, duration_s=12, outputs={"rtmp_url": nginx.url})
    result = live.run(_context(spec, []))
    saboteur.join(5)
    nginx.stop()

    assert outage.get("killed")
    assert "station-key" not in json.dumps(result)  # not even in the errors of the gaps
    assert result["reconnects"] >= 1
    rtmp_gaps = [gap for gap in result["gaps"] if gap["output"] == "rtmp"]
    assert rtmp_gaps and all(gap["frames"] > 0 for gap in rtmp_gaps)
    assert result["frames_dropped"] >= sum(gap["frames"] for gap in rtmp_gaps) > 0
    _assert_counts_add_up(result, "rtmp")
    recordings = nginx.recordings()
    assert len(recordings) >= 2  # one per publish: before the outage and after it
    video, audio = _streams(probe(recordings[-1]))
    assert (video["codec"], audio["codec"]) == ("h264", "aac")
    assert video["frames"] > 0
    # Nothing was recorded twice: the recordings hold no more than what was sent.
    recorded = sum(_streams(probe(path))[0]["frames"] or 0 for path in recordings)
    assert recorded <= result["frames_sent"] + 2
