"""Model backends per stage (tts, renderer, embedder, llm): a registry of factories, a
process-wide cache so the slots of one worker share one loaded copy of each model, and safe
checkpoint loading from the model store.

Nothing here downloads anything: production backends read checkpoints that the deployment put
under the model store (`IRONBOWL_MODEL_STORE`), and reference backends ship in packages.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar, cast

import torch

from inference.pipelines.types import StageError

STAGES = ("tts", "renderer", "embedder", "llm")
ENV_MODEL_STORE = "IRONBOWL_MODEL_STORE"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")

T = TypeVar("T")
Factory = Callable[..., Any]


class Registry:
    """Backends by (stage, name). A backend is whatever its factory returns; the stage's caller
    knows the protocol it expects (a TTS has `synthesise`, a renderer `render`, ...)."""

    def __init__(self) -> None:
        self._factories: dict[tuple[str, str], Factory] = {}
        self._lock = threading.Lock()

    def register(self, stage: str, name: str, factory: Factory) -> None:
        """Add a backend. Registering the same factory twice is a no-op (a module imported
        twice); a different factory under a taken name is a mistake and raises ValueError."""
        _check_stage(stage)
        if not name:
            raise ValueError("a backend needs a name")
        with self._lock:
            existing = self._factories.get((stage, name))
            if existing is not None and existing is not factory:
                raise ValueError(f"{stage} backend {name!r} is already registered")
            self._factories[(stage, name)] = factory

    def create(self, stage: str, name: str, **options: Any) -> Any:
        """A new backend instance; `options` go to the factory (checkpoint path, device, ...).
        An unknown stage or name is a configuration error the operator can fix: StageError
        naming what is available."""
        _check_stage(stage)
        with self._lock:
            factory = self._factories.get((stage, name))
        if factory is None:
            known = ", ".join(self.names(stage)) or "none"
            raise StageError(f"no {stage} backend named {name!r}; available: {known}")
        return factory(**options)

    def names(self, stage: str) -> tuple[str, ...]:
        _check_stage(stage)
        with self._lock:
            return tuple(sorted(name for (s, name) in self._factories if s == stage))


class _Loading:
    """A load in progress: later callers for the same key wait on it instead of loading."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: object = None
        self.error: BaseException | None = None
        self.waiters = 0


class SharedModels:
    """Loaded models by key, each loaded once per process even when several slots ask at the
    same moment. Different keys load in parallel; a failed load is not cached (the next caller
    tries again) and the callers that waited on it get its error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, object] = {}
        self._loading: dict[Hashable, _Loading] = {}

    def get(self, key: Hashable, loader: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                return cast(T, self._values[key])
            load = self._loading.get(key)
            owner = load is None
            if load is None:
                load = self._loading[key] = _Loading()
            else:
                load.waiters += 1
        if not owner:
            load.done.wait()
            if load.error is not None:
                raise load.error
            return cast(T, load.value)
        try:
            value = loader()
        except BaseException as error:
            load.error = error
            with self._lock:
                del self._loading[key]
            load.done.set()
            raise
        load.value = value
        with self._lock:
            self._values[key] = value
            del self._loading[key]
        load.done.set()
        return value

    def loaded(self) -> tuple[Hashable, ...]:
        with self._lock:
            return tuple(self._values)

    def waiting(self) -> dict[Hashable, int]:
        """Keys being loaded now and how many callers wait for each (for metrics and tests)."""
        with self._lock:
            return {key: load.waiters for key, load in self._loading.items()}

    def forget(self, key: Hashable) -> None:
        """Drop a model (to reload a new checkpoint); slots that hold it keep their reference."""
        with self._lock:
            self._values.pop(key, None)


registry = Registry()
shared_models = SharedModels()


def register(stage: str, name: str, factory: Factory) -> None:
    registry.register(stage, name, factory)


def create(stage: str, name: str, **options: Any) -> Any:
    return registry.create(stage, name, **options)


def shared(key: Hashable, loader: Callable[[], T]) -> T:
    """The process-wide copy of the model under `key`, loaded by `loader` on first use. Use a
    key that names what was loaded, e.g. ("renderer", "warp", checkpoint_path, "cuda")."""
    return shared_models.get(key, loader)


# -- checkpoints ---------------------------------------------------------------------------


def model_store() -> Path | None:
    """The directory production checkpoints are read from, or None when none is configured."""
    value = os.environ.get(ENV_MODEL_STORE, "").strip()
    return Path(value) if value else None


def checkpoint_path(relative: str) -> Path:
    """Resolve a checkpoint named relative to the model store; refuses names that leave it."""
    store = model_store()
    if store is None:
        raise StageError(
            f"checkpoint {relative!r} needs a model store; set {ENV_MODEL_STORE} to the "
            "directory holding the checkpoints"
        )
    root = store.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise StageError(f"checkpoint {relative!r} is outside the model store {root}")
    return path


def load_state_dict(path: Path | str, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Tensors by name from a `.safetensors` file (when the `safetensors` package is installed)
    or a `.pt`/`.pth` file read with `torch.load(weights_only=True)`, which refuses pickled
    code and arbitrary objects. Anything else, or a file that does not hold a flat mapping of
    names to tensors, is a StageError."""
    path = Path(path)
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise StageError(
            f"checkpoint {path} is not a supported format; use one of "
            + ", ".join(CHECKPOINT_SUFFIXES)
        )
    if not path.is_file():
        raise StageError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        loaded = _load_safetensors(path, device)
    else:
        try:
            loaded = torch.load(path, map_location=device, weights_only=True)
        # torch.load raises many types for a damaged or hostile file (UnpicklingError,
        # RuntimeError from the zip reader, EOFError, ValueError...); all mean the same here.
        except Exception as error:
            raise _corrupt(path, error) from error
    return _as_state_dict(path, loaded)


def _load_safetensors(path: Path, device: str) -> object:
    try:
        safetensors_torch = importlib.import_module("safetensors.torch")
    except ImportError as error:
        raise StageError(
            f"checkpoint {path} is a .safetensors file but the `safetensors` package is not "
            "installed in this image; install it, or convert the checkpoint to .pt"
        ) from error
    try:
        return cast(object, safetensors_torch.load_file(str(path), device=device))
    except Exception as error:  # SafetensorError, OSError: the file is damaged
        raise _corrupt(path, error) from error


def _as_state_dict(path: Path, loaded: object) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise _corrupt(path, TypeError(f"it holds a {type(loaded).__name__}"))
    return cast(dict[str, torch.Tensor], loaded)


def _corrupt(path: Path, error: BaseException) -> StageError:
    return StageError(
        f"checkpoint {path} is corrupt or not a state dict (a mapping of names to tensors): "
        f"{_reason(error)}"
    )


def _reason(error: BaseException) -> str:
    """One line on why loading failed. torch's weights_only refusal is a page of advice that
    ends by suggesting weights_only=False, which an operator must not be told to do for a file
    of unknown origin; only the refused object's name is kept."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    for line in text.splitlines():
        if marker in line:
            refused = line.split(marker, 1)[1].strip().split(" was not an allowed global")[0]
            return f"it holds objects that are not tensors, refused unread ({refused})"
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return first_line or type(error).__name__


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
