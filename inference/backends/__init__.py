"""Orchestrator backends, chosen by INFERENCE_BACKEND (`local` by default, `kubernetes`)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from inference.backends.base import Backend


def make_backend(name: str | None = None) -> Backend:
    name = name or settings.INFERENCE_BACKEND
    if name == "local":
        from inference.backends.local import LocalBackend

        # Local workers write renders straight into the media folder the web serves.
        renders = Path(settings.MEDIA_ROOT) / "renders"
        return LocalBackend(
            state_dir=Path(settings.DATA_DIR) / "workers",
            extra_env={"IRONBOWL_OUTPUT_DIR": str(renders)},
        )
    if name == "kubernetes":
        from inference.backends.kubernetes import KubernetesBackend

        return KubernetesBackend.from_environment(
            namespace_prefix=settings.KUBERNETES_NAMESPACE_PREFIX,
            kueue_queue=settings.KUBERNETES_KUEUE_QUEUE or None,
            target_version=settings.KUBERNETES_TARGET_VERSION,
        )
    raise ValueError(f"unknown inference backend {name!r}: use local or kubernetes")
