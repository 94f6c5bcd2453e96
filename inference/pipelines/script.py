"""The script of a live workload: segments to speak, with a version. No torch, no Django.

One set of rules for both sides: the control plane checks an operator's update with
`parse_script` before storing it, and the live pipeline checks what it is sent again before
putting it on air.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from inference.pipelines.types import SUPPORTED_LANGUAGES, StageError

MAX_SEGMENTS = 200
# The longest live workload (torch-free, so scheduling can read it): the longest shift — a 24/7
# day on a date the clocks go back, 25 hours — requested the longest warm-up before it starts
# (SCHEDULING_WARMUP_MINUTES is at most 120).
LONGEST_DAY_S = 25 * 3600.0
MAX_WARMUP_S = 120 * 60.0
MAX_SHIFT_S = LONGEST_DAY_S + MAX_WARMUP_S
DEFAULT_LANGUAGE = "zh"


@dataclasses.dataclass(frozen=True)
class Segment:
    text: str
    language: str


@dataclasses.dataclass(frozen=True)
class Script:
    version: int
    segments: tuple[Segment, ...]

    def segments_json(self) -> list[dict[str, Any]]:
        """The segments as a spec stores them (the language always spelled out)."""
        return [{"text": s.text, "language": s.language} for s in self.segments]


def parse_script(version: object, segments: object) -> Script:
    """A script from untrusted JSON values; StageError says what is wrong."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise StageError("`script_version` must be a whole number ≥ 0.")
    if not isinstance(segments, list) or not segments:
        raise StageError("The script has no segments: give `segments`, a list of {text, language}.")
    if len(segments) > MAX_SEGMENTS:
        raise StageError(f"The script has {len(segments)} segments; the limit is {MAX_SEGMENTS}.")
    parsed = []
    for number, item in enumerate(segments, start=1):
        if not isinstance(item, dict):
            raise StageError(f"Segment {number} must be an object with `text` and `language`.")
        text, language = item.get("text"), item.get("language", DEFAULT_LANGUAGE)
        if not isinstance(text, str) or not text.strip():
            raise StageError(f"Segment {number} is empty: give the text to speak in `text`.")
        if language not in SUPPORTED_LANGUAGES:
            raise StageError(
                f"Segment {number}: language {language!r} is not supported; use one of "
                f"{', '.join(SUPPORTED_LANGUAGES)}."
            )
        parsed.append(Segment(text, str(language)))
    return Script(version, tuple(parsed))
