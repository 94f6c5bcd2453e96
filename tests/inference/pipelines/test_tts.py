"""Text to speech on the real espeak-ng library (Debian's libespeak-ng1) and real pypinyin.

Nothing is simulated in this module: every test synthesises with the installed engine.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from inference.pipelines.tts import MAX_SCRIPT_CHARS, EspeakTTS, to_pinyin, with_silence
from inference.pipelines.types import Speech, StageError

SENTENCES = {
    "en": "Good morning, and welcome to Qinghe People's Hospital. How can I help you today?",
    "zh": "你好，欢迎来到清河人民医院。请问您今天需要什么帮助？",
    "yue": "你好，歡迎嚟到清河人民醫院。請問你今日需要乜嘢幫助？",
}


@pytest.fixture(scope="module")
def tts() -> EspeakTTS:
    return EspeakTTS()


def names(speech: Speech) -> list[str]:
    return [timing.phoneme for timing in speech.phonemes]


def assert_well_formed(speech: Speech, language: str) -> None:
    assert speech.language == language
    assert speech.samples.dtype == np.float32
    assert speech.samples.ndim == 1
    assert len(speech.samples) > 0
    assert float(np.abs(speech.samples).max()) > 0.05  # audible, not silence
    assert float(np.abs(speech.samples).max()) <= 1.0
    assert speech.phonemes
    starts = [timing.start_s for timing in speech.phonemes]
    assert starts == sorted(starts)
    for timing in speech.phonemes:
        assert 0.0 <= timing.start_s < timing.end_s <= speech.duration_s + 1e-9
        assert not timing.phoneme.startswith("(")  # voice-switch markers are not phonemes


@pytest.mark.parametrize("language", ["en", "zh", "yue"])
def test_each_language_speaks_with_phoneme_timings(tts: EspeakTTS, language: str) -> None:
    """Real: espeak-ng synthesises a hospital greeting in each supported language; the samples
    and the phoneme timings come from that one synthesis and agree (phonemes lie inside the
    audio, in order, the last one ending where the audio ends)."""
    speech = tts.synthesize(SENTENCES[language], language)
    assert_well_formed(speech, language)
    assert speech.sample_rate == tts.sample_rate == 22050  # Debian's espeak-ng build
    assert speech.duration_s > 2.0
    assert speech.phonemes[-1].end_s == pytest.approx(speech.duration_s)
    assert sum(1 for name in names(speech) if not name.startswith("_")) > 20


def test_mandarin_characters_are_spoken_as_pinyin(tts: EspeakTTS) -> None:
    """Real: Chinese characters become tone-numbered pinyin for the cmn-latn-pinyin voice. The
    characters and their pinyin typed by hand produce the same phonemes, so the pinyin is what
    was spoken (the bare `cmn` voice would misread the characters)."""
    speech = tts.synthesize("你好，欢迎来到清河人民医院", "zh")
    assert_well_formed(speech, "zh")
    assert speech.duration_s > 1.0
    typed = tts.synthesize("ni3 hao3, huan1 ying2 lai2 dao4 qing1 he2 ren2 min2 yi1 yuan4", "zh")
    assert names(speech) == names(typed)
    assert names(speech)[:2] == ["n", "i"]


def test_cantonese_reads_characters_in_cantonese(tts: EspeakTTS) -> None:
    """Real: the yue voice reads 你 as Cantonese nei5 where Mandarin says ni3, so the same
    characters give different phonemes in the two languages."""
    cantonese = tts.synthesize("你好", "yue")
    mandarin = tts.synthesize("你好", "zh")
    assert_well_formed(cantonese, "yue")
    assert names(cantonese)[:2] == ["n", "ei"]
    assert names(mandarin)[:2] == ["n", "i"]


def test_pinyin_conversion() -> None:
    """Real pypinyin: tone numbers (neutral tone as 5), readings chosen by word, Chinese
    punctuation as ASCII pauses, ASCII words and digits untouched."""
    assert to_pinyin("你好") == "ni3 hao3"
    assert to_pinyin("你好，世界。") == "ni3 hao3 , shi4 jie4 ."
    assert to_pinyin("好吗？") == "hao3 ma5 ?"
    assert to_pinyin("银行") == "yin2 hang2"
    converted = to_pinyin("CT室在3号楼")
    assert converted.split() == ["CT", "shi4", "zai4", "3", "hao4", "lou2"]
    assert to_pinyin("Ｏｋ２") == "Ok2"  # full-width letters and digits become ASCII


@pytest.mark.parametrize(
    ("text", "language", "message"),
    [
        ("", "en", "The script is empty"),
        ("   \n\t ", "zh", "The script is empty"),
        ("a" * (MAX_SCRIPT_CHARS + 1), "en", f"the limit is {MAX_SCRIPT_CHARS}"),
        ("Bonjour", "fr", "use one of zh (Mandarin), yue (Cantonese), en (English)"),
        ("。，！", "zh", "nothing espeak-ng can speak"),
    ],
)
def test_bad_scripts_are_refused_with_a_reason(
    tts: EspeakTTS, text: str, language: str, message: str
) -> None:
    """Real: the backend refuses what it cannot speak with a message a person can act on."""
    with pytest.raises(StageError, match=re.escape(message)):
        tts.synthesize(text, language)


def test_script_at_the_limit_is_spoken(tts: EspeakTTS) -> None:
    """Real: a script of exactly the limit is accepted (the limit is on characters, inclusive)."""
    sentence = "We are open from eight to six. "
    text = (sentence * (MAX_SCRIPT_CHARS // len(sentence) + 1))[:MAX_SCRIPT_CHARS]
    speech = tts.synthesize(text, "en")
    assert_well_formed(speech, "en")


def test_missing_library_says_which_package_to_install() -> None:
    """Real: loading a library name that does not exist on this machine fails the way a worker
    image without espeak-ng would, naming the Debian package."""
    with pytest.raises(StageError, match="apt-get install espeak-ng"):
        EspeakTTS(library="libespeak-ng-absent.so.1")


def test_control_characters_do_not_cut_the_script(tts: EspeakTTS) -> None:
    """Real: a NUL inside the script would end the C string early; it is read as a space, so
    the words after it are spoken too."""
    whole = tts.synthesize("Good morning everyone", "en")
    with_nul = tts.synthesize("Good morning\x00everyone", "en")
    assert names(with_nul) == names(whole)


def test_concurrent_synthesis_is_not_interleaved(tts: EspeakTTS) -> None:
    """Real: four threads share the one loaded engine (as a worker's slots do) and synthesise
    different scripts at once; each gets the phonemes of its own script and about the length a
    lone synthesis gives (espeak-ng varies by a few samples run to run, so lengths are compared
    within 1%). Interleaved callbacks would mix phonemes and lengths."""
    jobs = [
        ("Please wait here, the doctor will see you soon.", "en"),
        ("请在这里稍等，医生很快就来。", "zh"),
        ("請喺度等一陣，醫生好快就嚟。", "yue"),
        ("Your appointment is on Monday at nine.", "en"),
    ]
    alone = [tts.synthesize(text, language) for text, language in jobs]
    together: dict[int, list[Speech]] = {index: [] for index in range(len(jobs))}
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def speak(index: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                together[index].append(tts.synthesize(*jobs[index]))
        except BaseException as error:  # reported to the main thread below
            errors.append(error)

    threads = [threading.Thread(target=speak, args=(index,)) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for index, (_, language) in enumerate(jobs):
        for speech in together[index]:
            assert_well_formed(speech, language)
            assert names(speech) == names(alone[index])
            assert len(speech.samples) == pytest.approx(len(alone[index].samples), rel=0.01)


def test_silence_around_speech_shifts_the_timings(tts: EspeakTTS) -> None:
    """Real speech, silence added by `with_silence`: the audio grows by the padding and every
    phoneme moves by the lead-in."""
    speech = tts.synthesize("Hello there.", "en")
    padded = with_silence(speech, before_s=0.5, after_s=0.25)
    assert padded.duration_s == pytest.approx(speech.duration_s + 0.75, abs=1 / speech.sample_rate)
    assert not padded.samples[: speech.sample_rate // 2].any()
    assert not padded.samples[-speech.sample_rate // 4 :].any()
    for before, after in zip(speech.phonemes, padded.phonemes, strict=True):
        assert after.phoneme == before.phoneme
        assert after.start_s == pytest.approx(before.start_s + 0.5)
    assert_well_formed(padded, "en")
