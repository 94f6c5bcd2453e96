"""The model-backend registry, the shared-model cache and checkpoint loading.

Real: torch (saving and loading real checkpoints on disk, `weights_only` unpickling), threads
racing for one model. Simulated: the backends and loaders are small stand-ins defined here.
"""

from __future__ import annotations

import importlib.util
import pickle
import threading
import time

import pytest
import torch

from inference.pipelines import models
from inference.pipelines.models import (
    Registry,
    SharedModels,
    checkpoint_path,
    load_state_dict,
)
from inference.pipelines.types import StageError

WAIT_S = 10  # a condition that does not come true within this is a failure, not a slow pass


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed: torch.Tensor = self.norm(self.linear(x))
        return normed


class Smuggled:
    """Not a tensor: a checkpoint holding this must not be unpickled."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_a_registered_backend_is_created_with_options():
    """`create` calls the factory registered under (stage, name) with the options given."""
    registry = Registry()
    registry.register("tts", "echo", lambda **options: ("echo", options))

    assert registry.create("tts", "echo", voice="yue") == ("echo", {"voice": "yue"})
    assert registry.names("tts") == ("echo",)
    assert registry.names("llm") == ()


def test_an_unknown_backend_names_the_ones_available():
    """Asking for a backend that is not registered is a StageError listing the known ones."""
    registry = Registry()
    registry.register("renderer", "warp", object)

    with pytest.raises(StageError, match=r"no renderer backend named 'musetalk'; available: warp"):
        registry.create("renderer", "musetalk")


def test_an_unknown_stage_is_refused():
    """Only tts, renderer, embedder and llm are stages."""
    with pytest.raises(StageError, match="unknown stage 'asr'"):
        Registry().register("asr", "whisper", object)


def test_a_name_cannot_be_taken_by_a_second_factory():
    """Re-registering the same factory is harmless (a module imported twice); a different
    factory under the same name is refused rather than silently replacing the first."""
    registry = Registry()
    registry.register("embedder", "e5", object)
    registry.register("embedder", "e5", object)

    with pytest.raises(ValueError, match="already registered"):
        registry.register("embedder", "e5", dict)


def test_the_module_functions_use_the_process_registry():
    """`models.register`/`models.create` are the process-wide registry the worker uses."""
    factory = lambda **options: options  # noqa: E731 - identity is what is checked
    models.register("llm", "test-identity", factory)

    assert models.create("llm", "test-identity", url="http://llm.invalid") == {
        "url": "http://llm.invalid"
    }
    assert "test-identity" in models.registry.names("llm")


def test_a_model_is_loaded_once_and_shared():
    """Two slots asking for the same key get the same object; the loader runs once."""
    cache = SharedModels()
    calls = []

    def load():
        calls.append(1)
        return object()

    first = cache.get(("renderer", "warp", "cpu"), load)
    second = cache.get(("renderer", "warp", "cpu"), load)

    assert first is second
    assert len(calls) == 1
    assert cache.loaded() == (("renderer", "warp", "cpu"),)


def test_two_slots_asking_at_the_same_moment_share_one_load():
    """Slot A starts loading and is held inside its loader; slot B asks for the same key and
    is seen waiting for A's load (it does not start its own). When A's load finishes both
    hold the same object and the loader ran once. Real threads; the loader is a stand-in."""
    cache = SharedModels()
    started, release = threading.Event(), threading.Event()
    calls = []
    results: dict[str, object] = {}

    def load():
        calls.append(threading.current_thread().name)
        started.set()
        assert release.wait(WAIT_S)
        return object()

    def slot(name):
        results[name] = cache.get("model", load)

    slot_a = threading.Thread(target=slot, args=("a",), name="a")
    slot_a.start()
    assert started.wait(WAIT_S)
    slot_b = threading.Thread(target=slot, args=("b",), name="b")
    slot_b.start()
    assert wait_for(lambda: cache.waiting() == {"model": 1})
    release.set()
    slot_a.join(WAIT_S)
    slot_b.join(WAIT_S)

    assert calls == ["a"]
    assert results["a"] is results["b"]
    assert cache.waiting() == {}


def test_a_failed_load_reaches_the_waiters_and_is_retried_later():
    """A loader that fails raises in the slot that ran it and in the slot that waited on it;
    nothing is cached, so the next request loads again."""
    cache = SharedModels()
    started, release = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}

    def failing_load():
        started.set()
        assert release.wait(WAIT_S)
        raise StageError("checkpoint is corrupt")

    def slot(name):
        try:
            cache.get("model", failing_load)
        except StageError as error:
            errors[name] = error

    slot_a = threading.Thread(target=slot, args=("a",))
    slot_a.start()
    assert started.wait(WAIT_S)
    slot_b = threading.Thread(target=slot, args=("b",))
    slot_b.start()
    assert wait_for(lambda: cache.waiting() == {"model": 1})
    release.set()
    slot_a.join(WAIT_S)
    slot_b.join(WAIT_S)

    assert set(errors) == {"a", "b"}
    assert cache.get("model", lambda: "reloaded") == "reloaded"


def test_a_checkpoint_round_trips_into_a_fresh_module(tmp_path):
    """A real torch checkpoint: a module's state_dict saved with torch.save, read back through
    load_state_dict into a freshly initialised module, which then computes the same outputs."""
    torch.manual_seed(1)
    trained = Tiny()
    path = tmp_path / "tiny.pt"
    torch.save(trained.state_dict(), path)
    torch.manual_seed(2)
    fresh = Tiny()
    x = torch.randn(5, 4)
    assert not torch.equal(fresh(x), trained(x))

    fresh.load_state_dict(load_state_dict(path))

    assert torch.equal(fresh(x), trained(x))


def test_a_truncated_checkpoint_is_reported_as_corrupt(tmp_path):
    """The first half of a real checkpoint file → StageError naming the file."""
    path = tmp_path / "tiny.pth"
    torch.save(Tiny().state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(StageError, match=r"tiny\.pth is corrupt or not a state dict"):
        load_state_dict(path)


@pytest.mark.parametrize(
    "payload",
    [{"weight": torch.zeros(2), "extra": Smuggled()}, {"hook": print}],
    ids=["custom-class", "callable"],
)
def test_a_checkpoint_with_arbitrary_objects_is_refused(tmp_path, payload):
    """A pickle holding a custom class or a callable is refused by weights_only unpickling
    (nothing in it runs) and reported as a StageError."""
    path = tmp_path / "hostile.pt"
    torch.save(payload, path)

    with pytest.raises(StageError, match="not tensors, refused unread") as refused:
        load_state_dict(path)

    assert "weights_only" not in str(refused.value)


def test_a_plain_pickle_is_refused(tmp_path):
    """A classic pickle (not torch's zip format) under a .pt name is refused."""
    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))

    with pytest.raises(StageError, match="corrupt or not a state dict"):
        load_state_dict(path)


def test_a_checkpoint_that_is_not_a_flat_state_dict_is_refused(tmp_path):
    """Tensors nested under a key (a training checkpoint) are not a state dict to load."""
    path = tmp_path / "training.pt"
    torch.save({"model": Tiny().state_dict(), "step": torch.tensor(10)}, path)

    with pytest.raises(StageError, match="not a state dict"):
        load_state_dict(path)


@pytest.mark.parametrize("name", ["weights.bin", "weights.ckpt", "weights.onnx"])
def test_other_formats_are_refused(tmp_path, name):
    """Only .safetensors, .pt and .pth are read."""
    path = tmp_path / name
    path.write_bytes(b"\x00" * 16)

    with pytest.raises(StageError, match="not a supported format"):
        load_state_dict(path)


def test_a_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(StageError, match="does not exist"):
        load_state_dict(tmp_path / "absent.pt")


@pytest.mark.skipif(
    importlib.util.find_spec("safetensors") is not None, reason="safetensors is installed"
)
def test_safetensors_without_the_package_says_what_to_do(tmp_path):
    """Without the `safetensors` package a .safetensors checkpoint is a StageError that says
    to install it or convert the checkpoint (real: this image lacks the package)."""
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x00" * 16)

    with pytest.raises(StageError, match="safetensors` package is not installed"):
        load_state_dict(path)


def test_checkpoints_resolve_inside_the_model_store(tmp_path, monkeypatch):
    """Names are resolved under IRONBOWL_MODEL_STORE; one that climbs out is refused, and with
    no store configured the error says which variable to set."""
    monkeypatch.setenv(models.ENV_MODEL_STORE, str(tmp_path))
    assert checkpoint_path("renderer/warp.pt") == tmp_path.resolve() / "renderer" / "warp.pt"

    with pytest.raises(StageError, match="outside the model store"):
        checkpoint_path("../elsewhere/warp.pt")

    monkeypatch.delenv(models.ENV_MODEL_STORE)
    with pytest.raises(StageError, match=models.ENV_MODEL_STORE):
        checkpoint_path("renderer/warp.pt")


def wait_for(condition, timeout_s: float = WAIT_S) -> bool:
    """Poll for a condition another thread makes true; False if it is not true in time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
