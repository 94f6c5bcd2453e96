"""Which language a visitor wrote in: Mandarin ("zh"), Cantonese ("yue") or English ("en").

Decided by script, not a model: a question is a line of text, and the three languages the
stations serve are told apart reliably by their letters. Han characters mean Chinese; written
Cantonese is Chinese with characters Mandarin does not use (嘅 咗 唔 冇 佢 ...), so one of those
makes it "yue"; Latin letters mean English. Kana or Hangul mean a language we do not serve, a
StageError the caller turns into a hand-off.
"""

from __future__ import annotations

import unicodedata

from inference.pipelines.types import StageError

# Characters of written Cantonese that standard written Chinese does not use (or uses so rarely
# that one in a short question is a Cantonese signal).
# (Left out on purpose: 晒 仔 咪 咋 係 — common in Mandarin too.)
CANTONESE_CHARS = frozenset("嘅咗唔冇佢嚟喺啲咩嘢乜嗰噉哋睇畀嘞囉嗮攞搵揾喎啩冚嚿餸乸嬲瞓攰嗱嘥")
# Words of written Cantonese made of characters Mandarin also uses alone.
CANTONESE_WORDS = (
    "點解",
    "点解",
    "幾多",
    "几多",
    "邊度",
    "边度",
    "邊個",
    "边个",
    "而家",
    "係咪",
    "系咪",
)
MAX_CHARS = 2000  # a question, not a document


def _is_han(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0x20000 <= code <= 0x2EBEF  # extensions B-F (HKSCS Cantonese characters live here)
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
    )


def _is_kana_or_hangul(char: str) -> bool:
    code = ord(char)
    return 0x3040 <= code <= 0x30FF or 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF


def detect_language(text: str, default: str = "en") -> str:
    """One of "zh", "yue" or "en". Text with no letters at all (a bare "12315?") gets `default`, the
    conversation's language so far. Empty or non-text input, and Japanese or Korean, raise
    StageError."""
    if not isinstance(text, str) or not text.strip():
        raise StageError("the question is empty; type or say a question")
    sample = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    han = latin = other = 0
    for char in sample:
        if _is_han(char):
            han += 1
        elif _is_kana_or_hangul(char):
            other += 1
        elif char.isalpha():
            if "LATIN" in unicodedata.name(char, ""):
                latin += 1
            else:
                other += 1
    if other and other >= han:
        raise StageError(
            "this station answers in Mandarin, Cantonese or English; please ask in one of them"
        )
    # A Chinese sentence often carries a Latin word ("App", "QR"); an English one rarely
    # carries Han, so a few Han characters outweigh several Latin letters.
    if han and han * 3 >= latin:
        if any(char in CANTONESE_CHARS for char in sample) or any(
            word in sample for word in CANTONESE_WORDS
        ):
            return "yue"
        return "zh"
    if latin:
        return "en"
    return default
