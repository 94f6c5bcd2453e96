"""Fixtures of the chart tests: the helm binary and renders shared within a module."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.rendering import CHART, Manifest, helm_binary, render, required_secret_args


@pytest.fixture(scope="session")
def helm() -> str:
    return helm_binary()


@pytest.fixture(scope="session")
def default_docs(helm: str) -> list[Manifest]:
    return render(helm, *required_secret_args())


@pytest.fixture(scope="session")
def full_docs(helm: str) -> list[Manifest]:
    return render(helm, "-f", str(CHART / "ci" / "all-features-values.yaml"))


@pytest.fixture(scope="session")
def gpu_docs(helm: str) -> list[Manifest]:
    return render(helm, "-f", str(CHART / "ci" / "gpu-production-values.yaml"))


@pytest.fixture(scope="session")
def kubernetes_validate() -> Any:
    from tests.helm.rendering import skip_or_fail

    try:
        import kubernetes_validate
    except ImportError:
        skip_or_fail("kubernetes-validate is not installed (pip install kubernetes-validate)")
    return kubernetes_validate
