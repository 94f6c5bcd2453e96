"""pools.json, the chart's contract with the orchestrator's pool loader, and the refusal of bad
pool values.

Real: helm template with the chart's schema and templates; the JSON the orchestrator would read.
Simulated: nothing; the loader itself is tested with the inference package.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helm.rendering import (
    CHART,
    KUBE_VERSIONS,
    RELEASE,
    Manifest,
    by_kind,
    default_values,
    render,
    required_secret_args,
    run_template,
    values_file,
)

CONTRACT_KEYS = {
    "name",
    "pipeline",
    "model",
    "gpu_class",
    "gpus_per_worker",
    "slots_per_worker",
    "image",
    "warm_minimum",
    "maximum",
    "batch",
    "node_selector",
    "tolerations",
}
PIPELINES = {"diagnostic", "live", "converse", "render", "build"}
GPU_CLASSES = {"h200", "h100", "a100", "l4", "cpu"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pools_of(docs: list[Manifest]) -> list[dict[str, Any]]:
    config_map = by_kind(docs, "ConfigMap")[f"{RELEASE}-pools"]
    pools = json.loads(config_map["data"]["pools.json"])
    assert isinstance(pools, list)
    return pools


def with_pools(tmp_path: Path, pools: list[dict[str, Any]]) -> tuple[str, ...]:
    inference = default_values()["inference"]
    inference["pools"] = pools
    return (*required_secret_args(), "-f", values_file(tmp_path, {"inference": inference}))


def pool(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "render-l4",
        "pipeline": "render",
        "gpuClass": "l4",
        "slotsPerWorker": 2,
        "maximum": 4,
        **overrides,
    }


@pytest.mark.parametrize("fixture", ["default_docs", "full_docs", "gpu_docs"])
def test_pools_json_keeps_the_contract(fixture: str, request: pytest.FixtureRequest) -> None:
    pools = pools_of(request.getfixturevalue(fixture))
    assert pools
    for item in pools:
        assert set(item) == CONTRACT_KEYS, item["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", item["name"])
        assert len(item["name"]) <= 40
        assert item["pipeline"] in PIPELINES
        assert item["gpu_class"] in GPU_CLASSES
        for key in ("gpus_per_worker", "slots_per_worker", "warm_minimum", "maximum"):
            assert isinstance(item[key], int) and not isinstance(item[key], bool), key
        assert (item["gpus_per_worker"] == 0) == (item["gpu_class"] == "cpu")
        assert isinstance(item["batch"], bool)
        assert all(isinstance(value, str) for value in item["node_selector"].values())
        assert item["image"]
    assert len({item["name"] for item in pools}) == len(pools)


def test_default_pools_merge_their_gpu_class(default_docs: list[Manifest]) -> None:
    pools = {item["name"]: item for item in pools_of(default_docs)}
    assert set(pools) == {"live-h100", "converse-l4", "render-l4", "build-h100"}
    assert pools["live-h100"]["pipeline"] == "live"
    assert pools["live-h100"]["gpus_per_worker"] == 1
    assert pools["live-h100"]["slots_per_worker"] == 4
    assert pools["live-h100"]["warm_minimum"] == 1
    assert pools["converse-l4"]["slots_per_worker"] == 8
    assert pools["converse-l4"]["warm_minimum"] == 2
    assert pools["render-l4"]["batch"] is True
    assert pools["build-h100"]["batch"] is True
    assert pools["live-h100"]["batch"] is False
    assert pools["live-h100"]["node_selector"] == {"ironbowl.io/gpu-class": "h100"}
    assert pools["converse-l4"]["node_selector"] == {"ironbowl.io/gpu-class": "l4"}
    assert pools["render-l4"]["tolerations"] == [GPU_TOLERATION]
    assert pools["live-h100"]["image"] == "ironbowl-worker:0.1.0"


def test_a_pools_own_selector_and_tolerations_add_to_its_class(gpu_docs: list[Manifest]) -> None:
    pools = {item["name"]: item for item in pools_of(gpu_docs)}
    assert pools["live-h100"]["node_selector"] == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "ironbowl.io/reserved": "public-service",
    }
    assert pools["live-h100"]["tolerations"] == [
        GPU_TOLERATION,
        {
            "key": "ironbowl.io/reserved",
            "operator": "Equal",
            "value": "public-service",
            "effect": "NoSchedule",
        },
    ]
    assert pools["diagnostic-cpu"]["gpus_per_worker"] == 0  # the default of a cpu pool
    assert pools["diagnostic-cpu"]["tolerations"] == []
    assert pools["diagnostic-cpu"]["node_selector"] == {"node-pool": "general"}
    assert pools["render-a100"]["gpus_per_worker"] == 2
    assert pools["converse-l4"]["image"] == "registry.example.org/ironbowl-worker:1.4.2"
    assert pools["build-h100"]["image"].startswith("registry.example.org/ironbowl-builder@sha256:")


def test_a_pool_selector_overrides_its_class_per_key(helm: str, tmp_path: Path) -> None:
    docs = render(
        helm,
        *with_pools(tmp_path, [pool(nodeSelector={"ironbowl.io/gpu-class": "l4-24gb"})]),
    )
    (item,) = pools_of(docs)
    assert item["node_selector"] == {"ironbowl.io/gpu-class": "l4-24gb"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pool(pipeline="stream"), "/inference/pools/0/pipeline"),
        (pool(gpuClass="t4"), "/inference/pools/0/gpuClass"),
        (pool(name="Render_L4"), "/inference/pools/0/name"),
        (pool(name="r" * 41), "/inference/pools/0/name"),
        (pool(slotsPerWorker=0), "/inference/pools/0/slotsPerWorker"),
        (pool(gpusPerWorker=9), "/inference/pools/0/gpusPerWorker"),
        (pool(maxReplicas=3), "maxReplicas"),
        (
            pool(tolerations=[{"key": "a", "operator": "Exists", "tolerationSeconds": 5}]),
            "tolerationSeconds",
        ),
        ({"name": "render-l4", "pipeline": "render", "gpuClass": "l4"}, "slotsPerWorker"),
    ],
    ids=[
        "pipeline",
        "gpu-class",
        "name-not-dns",
        "name-too-long",
        "no-slots",
        "too-many-gpus",
        "unknown-key",
        "toleration-seconds",
        "missing-required",
    ],
)
def test_bad_pool_values_are_refused_by_the_schema(
    helm: str, tmp_path: Path, bad: dict[str, Any], message: str
) -> None:
    result = run_template(helm, "1.33.0", with_pools(tmp_path, [bad]))
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ([pool(), pool()], 'the pool name "render-l4" is used twice'),
        ([pool(gpuClass="cpu", gpusPerWorker=1)], "a cpu pool requests no GPUs"),
        ([pool(gpusPerWorker=0)], "a l4 pool needs gpusPerWorker of at least 1"),
        ([pool(warmMinimum=9)], "warmMinimum (9 slots) is more than the pool can hold"),
    ],
    ids=["duplicate-name", "cpu-with-gpus", "gpu-without-gpus", "warm-over-capacity"],
)
def test_inconsistent_pools_fail_naming_the_pool(
    helm: str, tmp_path: Path, pools: list[dict[str, Any]], message: str
) -> None:
    result = run_template(helm, "1.33.0", with_pools(tmp_path, pools))
    assert result.returncode != 0
    assert "inference.pools[" in result.stderr
    assert message in result.stderr


def test_unknown_gpu_class_settings_are_refused(helm: str) -> None:
    result = run_template(
        helm,
        "1.33.0",
        (*required_secret_args(), "--set", "inference.gpuClasses.t4.nodeSelector.a=b"),
    )
    assert result.returncode != 0
    assert "t4" in result.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_the_kubernetes_validate_command_accepts_the_gpu_setup(
    helm: str, tmp_path: Path, kube_version: str
) -> None:
    """The same check as the library test, through the `kubernetes-validate --strict` command
    that CI documentation shows, over the rendered multi-document file."""
    result = run_template(
        helm, kube_version, ("-f", str(CHART / "ci" / "gpu-production-values.yaml"))
    )
    assert result.returncode == 0, result.stderr
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(result.stdout)
    command = Path(sys.executable).with_name("kubernetes-validate")
    checked = subprocess.run(
        [str(command), "--strict", "-k", kube_version, str(manifests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "INFO" in checked.stdout and "ERROR" not in checked.stdout
