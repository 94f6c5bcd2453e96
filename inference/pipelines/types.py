"""Plain values passed between pipeline stages."""

from __future__ import annotations

import dataclasses

import numpy as np


class StageError(ValueError):
    """A stage cannot do what was asked; the message is for the person who asked (an empty
    script, an unsupported language, a missing portrait, a corrupt checkpoint)."""


@dataclasses.dataclass(frozen=True)
class PhonemeTiming:
    phoneme: str  # as the TTS backend names it (espeak-ng mnemonics for the reference backend)
    start_s: float
    end_s: float


@dataclasses.dataclass(frozen=True)
class Speech:
    """Synthesised speech: mono float32 samples in [-1, 1] and when each phoneme sounds."""

    samples: np.ndarray  # shape (n,), float32
    sample_rate: int
    phonemes: tuple[PhonemeTiming, ...]
    language: str  # "zh" (Mandarin), "yue" (Cantonese), "en"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


SUPPORTED_LANGUAGES = ("zh", "yue", "en")
