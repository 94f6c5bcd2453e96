"""Answering a question from an organisation's knowledge base, or handing it to a person.

Each entry is a curated answer with the questions it answers, in one language; translations of
one answer share a `topic`. A question is embedded (multilingual e5) and compared with every
stored question and every answer; the best entry wins if its cosine similarity clears the
threshold. Otherwise a keyword backstop (BM25 over Chinese character bigrams and English words,
numbers kept whole) may still find it: an exact term such as "12315" or "96333" that the
embedding blurs. If neither is sure, the question is handed off to a human — a wrong answer
from a government station costs more than a short wait.

The answer comes in the visitor's language when the knowledge base has it: a match on the
English entry of a topic is answered from its Chinese sibling for a Chinese question
(Cantonese questions get the Chinese entry unless a Cantonese one exists).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from inference.pipelines.language import detect_language
from inference.pipelines.types import SUPPORTED_LANGUAGES, StageError

# Calibrated on platform/ironbowl/demo_data/bureau_knowledge.json with e5-small (4-bit). e5
# similarities are compressed: held-out paraphrases score ~0.85-0.95 against their topic,
# unrelated questions ~0.75-0.86, and questions of the same shape about another agency's
# service ("how do I apply for a passport" vs "... a business licence") ~0.88 — those are not
# separable by a threshold with this model (see the test module's docstring).
DEFAULT_THRESHOLD = 0.86
# BM25 share of the best possible score (all the question's terms) the backstop needs, and in
# how many topics at most a term may occur to count as distinctive (1: it names that topic).
KEYWORD_MIN_SHARE = 0.25
DISTINCTIVE_DF = 1
MAX_QUESTION_CHARS = 1000

MatchedBy = Literal["embedding", "keyword"]


class Embedder(Protocol):
    def embed_queries(self, texts: Sequence[str]) -> torch.Tensor: ...

    def embed_passages(self, texts: Sequence[str]) -> torch.Tensor: ...


@dataclasses.dataclass(frozen=True)
class KnowledgeEntry:
    id: str
    questions: tuple[str, ...]
    answer: str
    language: str
    topic: str | None = None  # entries that translate one another share a topic

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KnowledgeEntry:
        """From `{"id", "questions", "answer", "language", "topic"?}`; KeyError, TypeError or
        ValueError when a field is missing or of the wrong kind."""
        return cls(
            id=str(item["id"]),
            questions=tuple(str(q) for q in item["questions"]),
            answer=str(item["answer"]),
            language=str(item["language"]),
            topic=str(item["topic"]) if item.get("topic") else None,
        )


@dataclasses.dataclass(frozen=True)
class Answer:
    entry_id: str | None  # None when handed off
    score: float  # cosine similarity of the best embedding match (also when handed off)
    handed_off: bool
    reason: str  # why it was answered or handed off, for the transcript and the operator
    language: str  # the question's language
    matched_by: MatchedBy | None  # None when handed off
    answer: str | None = None


@dataclasses.dataclass(frozen=True)
class Hit:
    entry: KnowledgeEntry
    score: float


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:[.:]\d+)*")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]+")
_STOP_TEXT = (
    "a an the is are was were be been do does did i my me we our you your it its of to in on "
    "for at by with from and or if can could should would will what which who whom how when "
    "where why this that these those there any some have has had get got am not no so as "
    "please tell about"
)
STOPWORDS = frozenset(_STOP_TEXT.split())


# Function characters: a bigram with one of them ("么申" from 怎么申请) names no topic.
STOP_HAN = frozenset("的了吗呢吧啊么什怎是我你他她它们在哪谁这那个就也都嗎")


def terms(text: str) -> list[str]:
    """Index terms: English words (stop words dropped), whole numbers, and Chinese character
    bigrams (single characters for one-character runs) — Chinese has no spaces and bigrams
    are the usual unit for keyword search over it."""
    lowered = text.lower()
    found = [_stem(word) for word in _WORD.findall(lowered) if word not in STOPWORDS]
    for run in _HAN_RUN.findall(lowered):
        if len(run) == 1 and run not in STOP_HAN:
            found.append(run)
        found.extend(
            run[i : i + 2]
            for i in range(len(run) - 1)
            if run[i] not in STOP_HAN and run[i + 1] not in STOP_HAN
        )
    return found


def _stem(word: str) -> str:
    """A crude English suffix strip so "recalls", "recalled" and "recall" meet."""
    if word.isdigit() or len(word) <= 4:
        return word
    for suffix in ("'s", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


class KeywordIndex:
    """Okapi BM25 over the entries' questions and answers."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.counts = [Counter(terms(document)) for document in documents]
        self.lengths = [sum(counts.values()) for counts in self.counts]
        self.average = sum(self.lengths) / max(1, len(self.lengths))
        frequency: Counter[str] = Counter()
        for counts in self.counts:
            frequency.update(counts.keys())
        self.frequency = frequency
        n = len(documents)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self.size = n

    def scores(self, query_terms: Iterable[str]) -> list[float]:
        unique = set(query_terms)
        result = []
        for counts, length in zip(self.counts, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / (self.average or 1))
            total = 0.0
            for term in unique:
                tf = counts.get(term, 0)
                if tf:
                    total += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
            result.append(total)
        return result

    def distinctive(self, term: str) -> bool:
        frequency = self.frequency.get(term, 0)
        return 0 < frequency <= DISTINCTIVE_DF


class KnowledgeBase:
    """An in-memory index of one organisation's entries. Build once per knowledge-base version
    and share it between the slots.

    Entries of one topic (translations) are scored together: a topic's score is the mean of
    its best stored-question similarity and its best answer similarity, over all languages, so
    a Chinese question also benefits from the English wording of the same entry."""

    def __init__(
        self,
        entries: Sequence[KnowledgeEntry],
        embedder: Embedder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        if not entries:
            raise StageError("the knowledge base has no entries; add questions and answers")
        ids = [entry.id for entry in entries]
        if len(set(ids)) != len(ids):
            raise StageError("knowledge-base entry ids must be unique")
        for entry in entries:
            if not entry.questions or not entry.answer.strip():
                raise StageError(f"entry {entry.id!r} needs at least one question and an answer")
            if entry.language not in SUPPORTED_LANGUAGES:
                raise StageError(f"entry {entry.id!r} has unsupported language {entry.language!r}")
        self.entries = tuple(entries)
        self.embedder = embedder
        self.threshold = threshold
        groups: dict[str, list[KnowledgeEntry]] = {}
        for entry in self.entries:
            groups.setdefault(entry.topic or entry.id, []).append(entry)
        self.groups = tuple(groups.values())
        group_of = {entry.id: g for g, members in enumerate(self.groups) for entry in members}
        questions = [(group_of[e.id], q) for e in self.entries for q in e.questions]
        self._question_group = torch.tensor([g for g, _ in questions], dtype=torch.long)
        self._answer_group = torch.tensor([group_of[e.id] for e in self.entries], dtype=torch.long)
        self._questions = embedder.embed_queries([q for _, q in questions]).float()
        self._answers = embedder.embed_passages([e.answer for e in self.entries]).float()
        self.keywords = KeywordIndex(
            [
                " ".join(f"{' '.join(e.questions)} {e.answer}" for e in group)
                for group in self.groups
            ]
        )

    @classmethod
    def from_json(cls, path: Path | str, embedder: Embedder, **options: float) -> KnowledgeBase:
        """Load `{"entries": [{"id", "questions", "answer", "language", "topic"?}, ...]}`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            entries = [KnowledgeEntry.from_json(item) for item in data["entries"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StageError(f"cannot read the knowledge base {path}: {error}") from error
        return cls(entries, embedder, **options)

    def search(self, question: str, k: int = 5, language: str = "en") -> list[Hit]:
        """The `k` best topics by embedding, best first, each as its entry in `language`
        (or the closest language the topic has)."""
        query = self.embedder.embed_queries([question])[0].float()
        scores = self._group_scores(query)
        order = torch.argsort(scores, descending=True)[:k].tolist()
        return [Hit(self._in_language(self.groups[g], language), float(scores[g])) for g in order]

    def _group_scores(self, query: torch.Tensor) -> torch.Tensor:
        empty = torch.full((len(self.groups),), -1.0)
        by_question = empty.scatter_reduce(
            0, self._question_group, self._questions @ query, reduce="amax"
        )
        by_answer = empty.scatter_reduce(
            0, self._answer_group, self._answers @ query, reduce="amax"
        )
        return (by_question + by_answer) / 2

    def answer(self, question: str, language: str | None = None) -> Answer:
        """The curated answer to `question`, or a hand-off with the reason. `language` is the
        detected language when the caller already knows it."""
        text = (question or "").strip()
        if not text:
            raise StageError("the question is empty; type or say a question")
        if len(text) > MAX_QUESTION_CHARS:
            raise StageError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        try:
            language = language or detect_language(text)
        except StageError as error:
            return Answer(None, 0.0, True, str(error), language or "und", None)
        query = self.embedder.embed_queries([text])[0].float()
        scores = self._group_scores(query)
        best = int(torch.argmax(scores))
        score = float(scores[best])
        entry = self._in_language(self.groups[best], language)
        query_terms = terms(text)
        if score >= self.threshold:
            reason = f"embedding match {score:.3f} >= threshold {self.threshold:.3f}"
            return Answer(entry.id, score, False, reason, language, "embedding", entry.answer)
        keyword = self._keyword_match(query_terms)
        if keyword is not None:
            group, shared = keyword
            entry = self._in_language(self.groups[group], language)
            reason = f"embedding unsure ({score:.3f}); keyword match on {', '.join(shared)}"
            return Answer(entry.id, score, False, reason, language, "keyword", entry.answer)
        reason = (
            f"no entry is close enough (best {entry.id} at {score:.3f} < threshold "
            f"{self.threshold:.3f}) and no distinctive keyword matched: handed to a person"
        )
        return Answer(None, score, True, reason, language, None)

    def _shared_distinctive(self, query_terms: Sequence[str], group: int) -> list[str]:
        counts = self.keywords.counts[group]
        return sorted({t for t in query_terms if counts.get(t) and self.keywords.distinctive(t)})

    def _keyword_match(self, query_terms: Sequence[str]) -> tuple[int, list[str]] | None:
        """The topic the question's distinctive terms point at, when BM25 is clear about it:
        it shares a rare term (a hotline number, a permit's name), its score is a fair share
        of what a perfect match would score, and no other topic comes close."""
        if not query_terms:
            return None
        scores = self.keywords.scores(query_terms)
        ranked = sorted(range(len(scores)), key=lambda g: scores[g], reverse=True)
        best = ranked[0]
        shared = self._shared_distinctive(query_terms, best)
        if not shared:
            return None
        perfect = sum(self.keywords.idf.get(t, 0.0) for t in set(query_terms))
        if perfect <= 0 or scores[best] / (perfect * (self.keywords.k1 + 1)) < KEYWORD_MIN_SHARE:
            return None
        if len(ranked) > 1 and scores[ranked[1]] > 0.8 * scores[best]:
            return None
        return best, shared

    @staticmethod
    def _in_language(group: Sequence[KnowledgeEntry], language: str) -> KnowledgeEntry:
        by_language = {entry.language: entry for entry in group}
        for wanted in (language, "zh") if language == "yue" else (language,):
            if wanted in by_language:
                return by_language[wanted]
        return group[0]
