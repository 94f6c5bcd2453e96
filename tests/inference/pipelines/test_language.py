"""Language detection by script. Real: the detector on real Mandarin, Cantonese and English
sentences; nothing is simulated."""

from __future__ import annotations

import pytest

from inference.pipelines.language import detect_language
from inference.pipelines.types import StageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("怎么办理营业执照？", "zh"),
        ("營業執照怎麼辦理？", "zh"),  # traditional characters are still Mandarin
        ("我想用App查一下12315的投诉进度", "zh"),  # a Latin word inside Chinese
        ("消費者投訴熱線係幾多號？", "yue"),
        ("你哋星期六開唔開門？", "yue"),
        ("佢嘅執照冇咗點算？", "yue"),
        ("What is the consumer complaints hotline?", "en"),
        ("Is the 食品经营许可证 needed for a bubble tea shop?", "en"),  # a term quoted in English
    ],
)
def test_detects_language_by_script(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_text_without_letters_takes_the_default() -> None:
    assert detect_language("12315?", default="zh") == "zh"
    assert detect_language("12315?") == "en"


@pytest.mark.parametrize(
    "text", ["", "   ", "営業許可はどこで申請できますか", "사업자 등록은 어디서 하나요?"]
)
def test_empty_or_unsupported_language_is_a_stage_error(text: str) -> None:
    with pytest.raises(StageError):
        detect_language(text)
