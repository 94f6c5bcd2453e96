"""Rendering the chart with a real `helm` for the tests, and reading what it rendered.

helm comes from $IRONBOWL_HELM or <repo>/.cache/tools/bin/helm (`bash scripts/fetch-helm.sh`
installs it offline). Without it the chart tests skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "ironbowl"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "ironbowl"
NAMESPACE = "ironbowl-system"
KUBE_VERSIONS = ("1.30.0", "1.33.0")  # the target versions (DESIGN.md, issue 4)

Manifest = dict[str, Any]

SECRET_KEY = "test-only-" + "x" * 50
REQUIRED_SECRETS = {
    "secretKey": SECRET_KEY,
    "databaseUrl": "postgres://ironbowl:pw@postgres:5432/ironbowl",
    "redisUrl": "redis://redis:6379/0",
}


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _helm_path() -> Path:
    configured = os.environ.get("IRONBOWL_HELM")
    return Path(configured) if configured else REPO_ROOT / ".cache" / "tools" / "bin" / "helm"


def helm_binary() -> str:
    path = _helm_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        skip_or_fail(f"helm not found at {path}: run scripts/fetch-helm.sh")
    return str(path)


def set_args(values: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        args += ["--set-string", f"{key}={value}"]
    return args


def required_secret_args(**overrides: str) -> list[str]:
    values = {f"secrets.{key}": value for key, value in REQUIRED_SECRETS.items()}
    values.update(overrides)
    return set_args({key: value for key, value in values.items() if value is not None})


@functools.cache
def run_template(
    helm: str, kube_version: str, args: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render(helm: str, *args: str, kube_version: str = "1.33.0") -> list[Manifest]:
    result = run_template(helm, kube_version, tuple(args))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(helm: str, *args: str) -> str:
    result = run_template(helm, "1.33.0", tuple(args))
    assert result.returncode != 0, "rendering should have failed"
    return result.stderr


def by_kind(docs: list[Manifest], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_specs(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Pod":
            specs[name] = doc["spec"]
        elif doc["kind"] in ("Deployment", "Job"):
            specs[name] = doc["spec"]["template"]["spec"]
    return specs


def containers(spec: dict[str, Any]) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any], docs: list[Manifest] | None = None) -> dict[str, Any]:
    """The container's environment as Kubernetes builds it: the keys of the ConfigMaps named in
    envFrom (from `docs`), then `env`, which wins."""
    env: dict[str, Any] = {}
    config_maps = by_kind(docs or [], "ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source and source["configMapRef"]["name"] in config_maps:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for item in container["env"]:
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def container_of(docs: list[Manifest], deployment: str) -> dict[str, Any]:
    """The first container of the Deployment `<release>-<deployment>`."""
    spec = by_kind(docs, "Deployment")[f"{RELEASE}-{deployment}"]["spec"]["template"]["spec"]
    return dict(spec["containers"][0])


def default_values() -> dict[str, Any]:
    """The chart's values.yaml, for tests that change one part of it."""
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def values_file(folder: Path, values: dict[str, Any]) -> str:
    """`values` written as a values file: `--set` cannot change one item of a list."""
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)
