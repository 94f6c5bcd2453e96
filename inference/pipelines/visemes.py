"""The mouth-openness track: how far the mouth is open in each video frame, 0 (shut) to 1.

Two sources, multiplied: what is being said (the phoneme's class: open vowels high, rounded
vowels mid, m/b/p shut, pauses 0) and how loud it is (the audio's RMS in the frame, normalised).
The phoneme gives the shape a formant voice's loudness alone would miss (a loud "m" keeps the
lips closed); the loudness makes the mouth shut whenever the audio is silent, and ties openness
to what a viewer hears. A light asymmetric smoothing follows: the mouth opens fast and closes a
little slower, as lips do, without hiding a bilabial.

Frames: frame i covers [i/fps, (i+1)/fps) of the audio and there are round(duration × fps)
frames, rounding halves up, so the video (n_frames / fps) and the audio differ by at most half
a frame. Phoneme names are espeak-ng mnemonics (the reference backend); an unknown name counts as
a generic consonant, and speech with no phoneme timings at all is driven by loudness alone.
"""

from __future__ import annotations

import math

import numpy as np

from inference.pipelines.types import Speech

SILENT = 0.0
CLOSED = 0.05  # m, b, p: lips together
LABIODENTAL = 0.15  # f, v: lower lip against teeth
CONSONANT = 0.3  # tongue consonants: the jaw stays partly open
NO_TIMINGS = 0.6  # class used when a backend gives no phoneme timings

# Openness of each vowel letter in espeak-ng's mnemonics (across en, cmn, yue voices); a vowel
# phoneme (diphthong, glide + vowel) opens as far as its most open letter.
_VOWEL_LETTERS = {
    "a": 1.0,
    "A": 1.0,
    "{": 1.0,
    "V": 0.8,
    "0": 0.8,
    "E": 0.6,
    "e": 0.6,
    "3": 0.6,
    "@": 0.6,
    "&": 0.6,
    "o": 0.55,
    "O": 0.55,
    "i": 0.4,
    "I": 0.4,
    "u": 0.35,
    "U": 0.35,
    "y": 0.35,
    "Y": 0.35,
}

ATTACK = 0.8  # share of a rise taken in one frame
RELEASE = 0.5  # share of a fall taken in one frame
FLOOR = 0.02  # below this the mouth is shut (ends the smoothing's tail)
ENERGY_EXPONENT = 0.6  # < 1: quiet syllables still open the mouth visibly
REFERENCE_PERCENTILE = 95.0


def frame_count(duration_s: float, fps: int) -> int:
    """round(duration × fps), halves up: the video is within half a frame of the audio."""
    return max(0, math.floor(duration_s * fps + 0.5))


def phoneme_openness(phoneme: str) -> float:
    """How far a phoneme opens the mouth, 0..1, from its espeak-ng mnemonic."""
    if not phoneme or phoneme.startswith("_"):
        return SILENT
    first = phoneme[0]
    if first in "mbp":
        return CLOSED
    if first in "fv":
        return LABIODENTAL
    if first in _VOWEL_LETTERS:
        return max(_VOWEL_LETTERS.get(letter, 0.0) for letter in phoneme)
    return CONSONANT


def _frame_bounds(speech: Speech, fps: int) -> np.ndarray:
    """Sample index where each frame starts, plus the end of the last frame."""
    n_frames = frame_count(speech.duration_s, fps)
    return np.round(np.arange(n_frames + 1) * (speech.sample_rate / fps)).astype(np.int64)


def energy_envelope(speech: Speech, fps: int = 25) -> np.ndarray:
    """RMS of the samples in each frame (float32, shape (n_frames,)); past the audio's end
    counts as silence."""
    bounds = _frame_bounds(speech, fps)
    samples = speech.samples.astype(np.float64)
    squares = np.concatenate([[0.0], np.cumsum(samples * samples)])
    starts, ends = bounds[:-1], bounds[1:]
    clipped_starts = np.minimum(starts, len(samples))
    clipped_ends = np.minimum(ends, len(samples))
    total = squares[clipped_ends] - squares[clipped_starts]
    widths = np.maximum(ends - starts, 1)
    rms: np.ndarray = np.sqrt(np.maximum(total, 0.0) / widths)
    return rms.astype(np.float32)


def _normalised_energy(energy: np.ndarray) -> np.ndarray:
    """Energy over a robust loud level (a high percentile of the sounding frames), clipped to 1:
    one loud click does not shrink every other syllable."""
    if not len(energy) or float(energy.max()) <= 0.0:
        return np.zeros_like(energy, dtype=np.float64)
    sounding = energy[energy > 0.05 * energy.max()]
    reference = float(np.percentile(sounding, REFERENCE_PERCENTILE))
    return np.clip(energy / reference, 0.0, 1.0).astype(np.float64)


def _class_track(speech: Speech, fps: int) -> np.ndarray:
    """Per frame, the phonemes' openness weighted by how much of the frame each covers; time
    covered by no phoneme (silence added around the speech) counts as closed."""
    n_frames = frame_count(speech.duration_s, fps)
    if not speech.phonemes:
        return np.full(n_frames, NO_TIMINGS)
    track = np.zeros(n_frames)
    frame_s = 1.0 / fps
    for timing in speech.phonemes:
        openness = phoneme_openness(timing.phoneme)
        if openness <= 0.0 or timing.end_s <= timing.start_s:
            continue
        first = max(0, int(timing.start_s * fps))
        last = min(n_frames - 1, math.ceil(timing.end_s * fps) - 1)
        for index in range(first, last + 1):
            frame_start = index * frame_s
            overlap = min(timing.end_s, frame_start + frame_s) - max(timing.start_s, frame_start)
            if overlap > 0:
                track[index] += openness * overlap / frame_s
    return np.clip(track, 0.0, 1.0)


def _smooth(target: np.ndarray) -> np.ndarray:
    """One-pole follower, fast up and slower down; values under FLOOR become 0."""
    out = np.zeros_like(target)
    level = 0.0
    for index, value in enumerate(target):
        rate = ATTACK if value > level else RELEASE
        level += rate * (value - level)
        out[index] = level
    out[out < FLOOR] = 0.0
    return out


def mouth_track(speech: Speech, fps: int = 25) -> np.ndarray:
    """Mouth openness per video frame: float32, shape (round(duration × fps),), values 0..1."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    loudness = _normalised_energy(energy_envelope(speech, fps)) ** ENERGY_EXPONENT
    target = _class_track(speech, fps) * loudness
    track: np.ndarray = np.clip(_smooth(target), 0.0, 1.0)
    return track.astype(np.float32)
