"""A real Kubernetes control plane for tests: etcd, kube-apiserver, controller manager, scheduler.

The binaries come from `scripts/fetch-kube.sh` (Kubernetes 1.20 built from Debian's source
package, etcd from Debian), found through IRONBOWL_KUBE_BIN or ~/.cache/ironbowl/kube/bin. Every
process runs on 127.0.0.1 with free ports in a temporary folder. There is no kubelet: the
simulated one in `tests.inference.kubernetes.kubelet` registers GPU nodes and moves pods through
their phases, while the real scheduler binds pods, the real quota admission refuses them, the
real Job and garbage collector controllers do their part.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BUILD_HINT = "build them once with `bash scripts/fetch-kube.sh` (about 15 minutes, cached)"


def kube_bin_dir() -> Path | None:
    """The folder holding all four binaries, or None."""
    candidates = [os.environ.get("IRONBOWL_KUBE_BIN", "")]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidates.append(str(cache / "ironbowl" / "kube" / "bin"))
    for candidate in candidates:
        if candidate and all(os.access(Path(candidate) / name, os.X_OK) for name in BINARIES):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class KubeCluster:
    url: str
    token: str
    ca_file: Path
    workdir: Path

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"BearerToken": self.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        configuration.ssl_ca_cert = str(self.ca_file)
        return client.ApiClient(configuration)


class _Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        self.running.append((name, process))
        return process

    def check(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, process in reversed(self.running):
            process.terminate()
        for _, process in reversed(self.running):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, ca_file: Path, token: str, processes: _Processes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        processes.check()
        if ca_file.exists():
            request = urllib.request.Request(  # noqa: S310 - https to our own apiserver
                f"{url}/readyz", headers={"Authorization": f"Bearer {token}"}
            )
            try:
                context = ssl.create_default_context(cafile=str(ca_file))
                with urllib.request.urlopen(request, context=context, timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (OSError, ssl.SSLError) as error:
                last = str(error)
        time.sleep(0.2)
    raise RuntimeError(f"kube-apiserver not ready after {timeout}s: {last}")


def _kubeconfig(path: Path, url: str, token: str, ca_file: Path) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{url}", certificate-authority: "{ca_file}"}}
users:
- name: test
  user: {{token: "{token}"}}
contexts:
- name: test
  context: {{cluster: test, user: test}}
current-context: test
"""
    )


@contextlib.contextmanager
def running_cluster(bin_dir: Path, workdir: Path, timeout: float = 90.0) -> Iterator[KubeCluster]:
    """Starts the control plane and stops it on exit (its logs stay in `workdir`)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to make the service-account key pair")
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    sa_key, sa_pub = workdir / "sa.key", workdir / "sa.pub"
    subprocess.run(
        [openssl, "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True
    )
    subprocess.run(
        [openssl, "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)],
        check=True,
        capture_output=True,
    )
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    url = f"https://127.0.0.1:{api_port}"
    certs = workdir / "certs"
    certs.mkdir()
    ca_file = certs / "apiserver.crt"  # self-signed by the apiserver at start
    processes = _Processes(workdir)
    try:
        processes.start(
            "etcd",
            [
                str(bin_dir / "etcd"),
                f"--data-dir={workdir / 'etcd'}",
                "--name=default",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
            ],
        )
        processes.start(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={certs}",
                f"--token-auth-file={workdir / 'tokens.csv'}",
                "--authorization-mode=AlwaysAllow",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--watch-cache=true",
                "--v=1",
            ],
        )
        _wait_ready(url, ca_file, token, processes, timeout)
        kubeconfig = workdir / "kubeconfig"
        _kubeconfig(kubeconfig, url, token, ca_file)
        processes.start(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                "--controllers=*,-nodelifecycle,-serviceaccount-token",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                f"--service-account-private-key-file={sa_key}",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        processes.start(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                "--v=1",
            ],
        )
        yield KubeCluster(url=url, token=token, ca_file=ca_file, workdir=workdir)
    finally:
        processes.stop()
