"""The mouth-openness track, driven by real espeak-ng speech (Debian's libespeak-ng1).

Real: the speech and its phoneme timings. Simulated where a test says so: silence added around
the speech with `with_silence`, and pure tones standing in for audio where only the arithmetic
of the energy envelope is under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference.pipelines.tts import EspeakTTS, with_silence
from inference.pipelines.types import PhonemeTiming, Speech
from inference.pipelines.visemes import (
    energy_envelope,
    frame_count,
    mouth_track,
    phoneme_openness,
)

FPS = 25

SENTENCES = {
    "en": "Good morning, and welcome to Qinghe People's Hospital. How can I help you today?",
    "zh": "你好，欢迎来到清河人民医院。请问您今天需要什么帮助？",
    "yue": "你好，歡迎嚟到清河人民醫院。請問你今日需要乜嘢幫助？",
}

# Many m/b/p next to open vowels.
LABIAL_SENTENCES = {
    "en": "My mum made a big map by the bay. Father saw a car far away.",
    "zh": "爸爸妈妈买了面包，大家都很开心。",
    "yue": "爸爸媽媽買咗麵包，大家都好開心。",
}


@pytest.fixture(scope="module")
def tts() -> EspeakTTS:
    return EspeakTTS()


def phoneme_at(speech: Speech, time_s: float) -> str | None:
    for timing in speech.phonemes:
        if timing.start_s <= time_s < timing.end_s:
            return timing.phoneme
    return None


def test_frame_count_rounds_half_up() -> None:
    """Pure arithmetic: round(duration × fps) with halves up, never more than half a frame off."""
    assert frame_count(1.0, 25) == 25
    assert frame_count(1.02, 25) == 26  # 25.5 frames
    assert frame_count(1.019, 25) == 25
    assert frame_count(0.0, 25) == 0
    for duration in np.linspace(0.01, 9.99, 97):
        assert abs(frame_count(float(duration), 30) / 30 - duration) <= 0.5 / 30 + 1e-12


@pytest.mark.parametrize("language", ["en", "zh", "yue"])
def test_track_has_one_value_per_video_frame(tts: EspeakTTS, language: str) -> None:
    """Real speech: the track and the energy envelope have round(duration × fps) frames, values
    in 0..1, and the mouth actually moves."""
    speech = tts.synthesize(SENTENCES[language], language)
    for fps in (25, 30):
        track = mouth_track(speech, fps)
        expected = frame_count(speech.duration_s, fps)
        assert track.shape == (expected,)
        assert energy_envelope(speech, fps).shape == (expected,)
        assert track.dtype == np.float32
        assert float(track.min()) >= 0.0
        assert float(track.max()) <= 1.0
        assert float(track.max()) > 0.5


@pytest.mark.parametrize("language", ["en", "zh", "yue"])
def test_mouth_is_shut_in_silence_before_and_after(tts: EspeakTTS, language: str) -> None:
    """Real speech with 0.5 s of silence added at both ends (simulated lead-in and tail): every
    frame of the lead-in is shut, and the tail is shut once the mouth has had 0.3 s to close."""
    speech = with_silence(tts.synthesize(SENTENCES[language], language), 0.5, 0.5)
    track = mouth_track(speech, FPS)
    assert not track[: int(0.5 * FPS)].any()
    speech_end_s = speech.duration_s - 0.5
    assert not track[int(np.ceil((speech_end_s + 0.3) * FPS)) :].any()
    assert track[int(0.5 * FPS) : int(speech_end_s * FPS)].any()


def test_mouth_shuts_in_a_pause_between_sentences(tts: EspeakTTS) -> None:
    """Real speech: espeak-ng pauses ~0.3 s after a full stop; frames late in that pause, where
    the audio is silent, are shut."""
    speech = tts.synthesize("Hello there. Welcome to the clinic.", "en")
    pauses = [t for t in speech.phonemes if t.phoneme == "_:" and t.end_s - t.start_s > 0.25]
    assert pauses
    track = mouth_track(speech, FPS)
    energy = energy_envelope(speech, FPS)
    pause = pauses[0]
    late = range(int(np.ceil((pause.start_s + 0.2) * FPS)), int(pause.end_s * FPS))
    assert len(late) >= 1
    for index in late:
        assert energy[index] == 0.0
        assert track[index] == 0.0


@pytest.mark.parametrize("language", ["en", "zh", "yue"])
def test_openness_follows_audio_energy(tts: EspeakTTS, language: str) -> None:
    """Real speech: the mouth track and the per-frame RMS of the audio it came from are
    strongly correlated (Pearson r > 0.5), so a viewer sees the mouth move with the sound."""
    for text in (SENTENCES[language], LABIAL_SENTENCES[language]):
        speech = with_silence(tts.synthesize(text, language), 0.3, 0.3)
        track = mouth_track(speech, FPS)
        energy = energy_envelope(speech, FPS)
        r = float(np.corrcoef(track, energy)[0, 1])
        assert r > 0.5, (language, text, r)


@pytest.mark.parametrize("language", ["en", "zh", "yue"])
def test_lips_close_for_m_b_p(tts: EspeakTTS, language: str) -> None:
    """Real speech full of m/b/p beside open vowels: frames whose centre falls in a bilabial
    are on average much less open than frames in an open vowel, though both are loud."""
    speech = tts.synthesize(LABIAL_SENTENCES[language], language)
    track = mouth_track(speech, FPS)
    bilabial, open_vowel = [], []
    for index, value in enumerate(track):
        phoneme = phoneme_at(speech, (index + 0.5) / FPS)
        if phoneme is None:
            continue
        if phoneme[0] in "mbp":
            bilabial.append(float(value))
        elif phoneme_openness(phoneme) >= 1.0:
            open_vowel.append(float(value))
    assert len(bilabial) >= 3
    assert len(open_vowel) >= 3
    assert np.mean(bilabial) < 0.5 * np.mean(open_vowel)


def test_phoneme_classes() -> None:
    """Pure table lookup on espeak-ng mnemonics from the en, cmn and yue voices."""
    open_vowels = ["a", "A:", "aa", "aI", "Au", "ua"]
    rounded = ["oU", "O:", "o", "u:", "yu"]
    bilabial = ["m", "b", "p", "ph"]
    for name in open_vowels:
        assert phoneme_openness(name) == 1.0
    for name in rounded:
        assert 0.3 <= phoneme_openness(name) < 1.0
    for name in bilabial:
        assert phoneme_openness(name) < 0.1
    for name in ("_", "_:", "_|", ""):
        assert phoneme_openness(name) == 0.0
    assert phoneme_openness("f") < phoneme_openness("t") < phoneme_openness("a")


def test_energy_envelope_is_frame_rms() -> None:
    """Simulated audio (a 440 Hz tone, then silence): the envelope is the RMS of each frame's
    samples, A/√2 for the tone and 0 for the silence; a partial last frame is padded with
    silence."""
    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    samples = np.concatenate([tone, np.zeros(rate + 320, np.float32)])  # 2.02 s: 50.5 frames
    speech = Speech(samples, rate, (), "en")
    energy = energy_envelope(speech, FPS)
    assert energy.shape == (51,)
    np.testing.assert_allclose(energy[:25], 0.5 / np.sqrt(2), rtol=0.01)
    assert not energy[25:].any()


def test_without_timings_loudness_drives_the_mouth() -> None:
    """Simulated speech from another backend with no phoneme timings (tone bursts and gaps):
    the mouth opens in the bursts, shuts in the gaps, and follows the energy."""
    rate = 16000
    burst = (0.4 * np.sin(2 * np.pi * 220 * np.arange(rate // 2) / rate)).astype(np.float32)
    gap = np.zeros(rate // 2, np.float32)
    speech = Speech(np.concatenate([gap, burst, gap, burst, gap]), rate, (), "en")
    track = mouth_track(speech, FPS)
    assert track.shape == (frame_count(speech.duration_s, FPS),)
    assert track[15:25].min() > 0.3  # inside the first burst
    assert not track[:12].any()
    assert not track[34:37].any()  # late in the middle gap
    assert float(np.corrcoef(track, energy_envelope(speech, FPS))[0, 1]) > 0.5


def test_pause_phonemes_keep_the_mouth_shut_even_with_sound() -> None:
    """Simulated: a loud tone labelled as a pause phoneme stays shut, the same tone labelled as
    an open vowel opens the mouth: the phoneme class gates the loudness."""
    rate = 16000
    tone = (0.4 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    as_pause = Speech(tone, rate, (PhonemeTiming("_:", 0.0, 1.0),), "en")
    as_vowel = Speech(tone, rate, (PhonemeTiming("a", 0.0, 1.0),), "en")
    assert not mouth_track(as_pause, FPS).any()
    assert mouth_track(as_vowel, FPS)[5:20].min() > 0.9
