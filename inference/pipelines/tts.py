"""Text to speech with phoneme timings: the reference backend on Debian's espeak-ng.

Why libespeak-ng through ctypes and not the `espeak-ng` program: one synthesis then yields both
the samples and the phoneme events (the synth callback hands over each wav chunk together with the
events inside it, positioned by sample), so audio and mouth timings cannot drift apart. The CLI
gives WAV (`--stdout`) and phoneme text (`-x`) from two separate runs with no times; `--pho` would
give times but needs MBROLA, which Debian lacks. espeak-ng is GPL-3: we load the installed library
and call its public API, nothing of it is copied here. It needs only the runtime packages
(`libespeak-ng1`, `espeak-ng-data`; `apt-get install espeak-ng` brings both), no -dev headers.

The library keeps one global engine (voice, callback, buffers) and is not thread-safe, so the
process loads it once and every synthesis holds `_ENGINE_LOCK`: the slots of a worker share one
loaded copy and take turns (a sentence takes milliseconds).

Languages: "en" speaks with voice en-us. "zh" (Mandarin): espeak's `cmn` voice misreads Chinese
characters (a known upstream bug), so characters become tone-numbered pinyin with pypinyin and
the `cmn-latn-pinyin` voice speaks that. "yue" (Cantonese): the `yue` voice reads characters
(traditional and simplified) correctly as they are.

Output: mono float32 in [-1, 1] at the rate espeak-ng reports (22050 Hz for Debian's build).
"""

from __future__ import annotations

import ctypes
import threading
import unicodedata
from typing import Any

import numpy as np

from inference.pipelines.types import SUPPORTED_LANGUAGES, PhonemeTiming, Speech, StageError

LIBRARY = "libespeak-ng.so.1"
MAX_SCRIPT_CHARS = 5000
"""Longest script one synthesis accepts: about five minutes of English, twenty of Chinese. A longer
script belongs in several renders (a whole document pasted by mistake is told so at once)."""

VOICES = {"en": "en-us", "zh": "cmn-latn-pinyin", "yue": "yue"}
LANGUAGE_NAMES = {"zh": "Mandarin", "yue": "Cantonese", "en": "English"}

# From espeak-ng's public header speak_lib.h (values are part of its stable C API).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() on missing data
_CHARS_UTF8 = 1  # not | espeakPHONEMES (0x100): that would let a script inject [[phonemes]]
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_EE_OK = 0

# Chinese punctuation that NFKC leaves alone, as the ASCII pauses espeak understands.
_CJK_PUNCTUATION = str.maketrans(
    {
        "。": ". ",
        "、": ", ",
        "，": ", ",
        "．": ". ",
        "「": " ",
        "」": " ",
        "『": " ",
        "』": " ",
        "《": " ",
        "》": " ",
        "〈": " ",
        "〉": " ",
        "【": " ",
        "】": " ",
        "“": " ",
        "”": " ",
        "‘": " ",
        "’": " ",
        "…": ". ",
        "—": ", ",
        "～": " ",
        "·": " ",
    }
)


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """espeak_EVENT: `sample` is the event's position in samples since the start of the message."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

_ENGINE_LOCK = threading.Lock()
"""Held for every call into libespeak-ng (any library name): its engine is one global state."""


class _Collector:
    """What the callback gathered for the synthesis in progress (only touched under the lock)."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []  # (sample position, phoneme name)


class _Engine:
    """One loaded libespeak-ng, initialised for synchronous synthesis with phoneme events."""

    def __init__(self, library: str) -> None:
        try:
            self._lib = ctypes.CDLL(library)
        except OSError as error:
            raise StageError(
                f"Text to speech is not available on this worker: {library} cannot be loaded "
                f"({error}). Install the Debian package espeak-ng (apt-get install espeak-ng)."
            ) from error
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        self.sample_rate = int(
            lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                None,
                _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
            )
        )
        if self.sample_rate <= 0:
            raise StageError(
                "Text to speech is not available on this worker: espeak-ng found no voice data. "
                "Install the Debian package espeak-ng-data (apt-get install espeak-ng)."
            )
        self._collector = _Collector()
        # Kept on the instance: the C side holds only a raw pointer to this thunk.
        self._callback = _SynthCallback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: Any, n_samples: int, events: Any) -> int:
        if wav and n_samples > 0:
            chunk = np.ctypeslib.as_array(wav, shape=(n_samples,)).copy()
            self._collector.chunks.append(chunk)
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._collector.events.append((int(event.sample), name))
            index += 1
        return 0  # 0: go on synthesising

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Samples (int16) and (sample position, phoneme) events; call with the lock held."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise StageError(
                f"The espeak-ng voice {voice!r} is missing on this worker. "
                "Install the Debian package espeak-ng-data."
            )
        self._collector = _Collector()
        data = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        collected, self._collector = self._collector, _Collector()
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        samples = (
            np.concatenate(collected.chunks) if collected.chunks else np.zeros(0, dtype=np.int16)
        )
        return samples, collected.events


_ENGINES: dict[str, _Engine] = {}


def _engine(library: str) -> _Engine:
    """The process's one engine for `library`; call with the lock held."""
    engine = _ENGINES.get(library)
    if engine is None:
        engine = _ENGINES[library] = _Engine(library)
    return engine


def to_pinyin(text: str) -> str:
    """Mandarin text as tone-numbered pinyin for espeak's `cmn-latn-pinyin` voice.

    Characters become syllables with tone digits (neutral tone 5: "吗" → "ma5"; ü as "v", which
    the voice reads); pypinyin picks readings by word ("银行" → "yin2 hang2"). Chinese
    punctuation becomes the ASCII pause marks espeak understands; ASCII words and digits stay as
    they are (the voice reads digits in Mandarin).
    """
    from pypinyin import Style, lazy_pinyin

    normalised = unicodedata.normalize("NFKC", text).translate(_CJK_PUNCTUATION)
    syllables = lazy_pinyin(normalised, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(part for item in syllables if (part := item.strip()))


def _timings(events: list[tuple[int, str]], n_samples: int, rate: int) -> tuple[PhonemeTiming, ...]:
    """Each phoneme lasts until the next starts, the last until the audio ends. Voice-switch
    markers ("(en)") and zero-length entries (a syllable boundary at the same sample as the next
    phoneme) are left out: they do not sound."""
    kept = [(min(max(s, 0), n_samples), p) for s, p in events if p and not p.startswith("(")]
    timings: list[PhonemeTiming] = []
    for index, (start, phoneme) in enumerate(kept):
        end = kept[index + 1][0] if index + 1 < len(kept) else n_samples
        if end > start:
            timings.append(PhonemeTiming(phoneme, start / rate, end / rate))
    return tuple(timings)


class EspeakTTS:
    """Reference TTS backend: espeak-ng's formant voices, phoneme timings from the same run."""

    def __init__(self, library: str = LIBRARY) -> None:
        self._library = library
        with _ENGINE_LOCK:
            self.sample_rate = _engine(library).sample_rate  # fail early: no espeak, no worker

    def synthesize(self, text: str, language: str) -> Speech:
        script = _validate(text, language)
        spoken = to_pinyin(script) if language == "zh" else script
        with _ENGINE_LOCK:
            engine = _engine(self._library)
            samples, events = engine.synthesize(spoken, VOICES[language])
            rate = engine.sample_rate
        phonemes = _timings(events, len(samples), rate)
        if not any(not timing.phoneme.startswith("_") for timing in phonemes):
            # Only pauses: punctuation or symbols the voice does not read.
            raise StageError("The script has nothing espeak-ng can speak (no words or digits).")
        audio = (samples.astype(np.float32) / 32768.0).clip(-1.0, 1.0)
        return Speech(samples=audio, sample_rate=rate, phonemes=phonemes, language=language)


def _validate(text: str, language: str) -> str:
    if language not in SUPPORTED_LANGUAGES:
        supported = ", ".join(f"{code} ({LANGUAGE_NAMES[code]})" for code in SUPPORTED_LANGUAGES)
        raise StageError(f"Language {language!r} is not supported; use one of {supported}.")
    if not isinstance(text, str) or not text.strip():
        raise StageError("The script is empty: give the text to speak.")
    if len(text) > MAX_SCRIPT_CHARS:
        raise StageError(
            f"The script is {len(text)} characters long; the limit is {MAX_SCRIPT_CHARS}. "
            "Split it into several renders."
        )
    # A NUL would end the C string early; other control characters only confuse the reader.
    return "".join(" " if unicodedata.category(ch) == "Cc" and ch != "\n" else ch for ch in text)


def with_silence(speech: Speech, before_s: float = 0.0, after_s: float = 0.0) -> Speech:
    """The same speech with silence added at either end (a video that opens and closes with the
    mouth shut); phoneme times shift with the audio."""
    rate = speech.sample_rate
    lead, tail = round(before_s * rate), round(after_s * rate)
    shift = lead / rate
    samples = np.concatenate(
        [np.zeros(lead, np.float32), speech.samples, np.zeros(tail, np.float32)]
    )
    phonemes = tuple(
        PhonemeTiming(p.phoneme, p.start_s + shift, p.end_s + shift) for p in speech.phonemes
    )
    return Speech(samples, rate, phonemes, speech.language)
