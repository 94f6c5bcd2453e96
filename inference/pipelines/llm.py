"""Rephrasing a curated answer with a language model behind an OpenAI-compatible endpoint.

The model only rewords: it is given the visitor's question and the retrieved entry's answer and
asked to answer in the question's language from that text alone. Whatever it returns is used
only if it passes the grounding check (`grounding.check_grounding`) — otherwise the curated
answer is spoken, so a model that invents a number or a phone number is never heard.

Configured on the worker, never in a workload's spec (the key must not be stored with the
workload): `IRONBOWL_LLM_URL` (the base URL, e.g. http://vllm:8000/v1), `IRONBOWL_LLM_MODEL`,
`IRONBOWL_LLM_API_KEY` (optional), `IRONBOWL_LLM_TIMEOUT_S` (default 8). Without a URL there is
no rephrasing. Only the standard library is used.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping

from inference import contracts
from inference.pipelines import models

ENV_URL = contracts.ENV_LLM_URL
ENV_MODEL = contracts.ENV_LLM_MODEL
ENV_API_KEY = contracts.ENV_LLM_API_KEY
ENV_TIMEOUT_S = "IRONBOWL_LLM_TIMEOUT_S"
MAX_REPLY_CHARS = 4000

LANGUAGE_NAMES = {"zh": "Simplified Chinese (Mandarin)", "yue": "Cantonese", "en": "English"}


class LlmUnavailable(RuntimeError):
    """The endpoint could not be reached or answered something unusable; the message says
    which, for the workload's progress message."""


@dataclasses.dataclass(frozen=True)
class LlmSettings:
    url: str
    model: str
    api_key: str = ""
    timeout_s: float = 8.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LlmSettings | None:
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL, "").strip()
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{ENV_URL} must be an http(s) URL, got {url!r}")
        try:
            timeout = float(env.get(ENV_TIMEOUT_S, "8"))
        except ValueError:
            raise ValueError(f"{ENV_TIMEOUT_S} must be a number of seconds") from None
        return cls(
            url=url.rstrip("/"),
            model=env.get(ENV_MODEL, "").strip() or "default",
            api_key=env.get(ENV_API_KEY, "").strip(),
            timeout_s=max(0.5, timeout),
        )


class OpenAICompatibleRephraser:
    """`POST {url}/chat/completions` with the curated answer as the only source."""

    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings

    def messages(
        self, question: str, answer: str, language: str, persona: str = ""
    ) -> list[dict[str, str]]:
        spoken = LANGUAGE_NAMES.get(language, "the language of the question")
        rules = (
            "You are a public-service digital employee. Answer the visitor's question using only "
            "the facts in the reference answer. Keep every number, time, date, place, name, "
            "phone number and web address exactly as written there; add none. Be brief and "
            f"friendly, and answer in {spoken}."
        )
        if persona.strip():
            rules += "\n\nPersona: " + persona.strip()
        return [
            {"role": "system", "content": rules},
            {"role": "user", "content": f"Question: {question}\n\nReference answer: {answer}"},
        ]

    def rephrase(self, question: str, answer: str, language: str, persona: str = "") -> str:
        body = {
            "model": self.settings.model,
            "messages": self.messages(question, answer, language, persona),
            "temperature": 0.2,
            "max_tokens": 400,
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        request = urllib.request.Request(  # noqa: S310 - checked to be http(s) above
            f"{self.settings.url}/chat/completions",
            data=json.dumps(body).encode(),
            method="POST",
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:  # noqa: S310
                raw = response.read(1_000_000)
        except urllib.error.HTTPError as error:
            error.close()
            raise LlmUnavailable(
                f"the language model endpoint answered HTTP {error.code}"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            raise LlmUnavailable(
                f"the language model endpoint {self.settings.url} is unreachable ({reason})"
            ) from None
        try:
            text = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise LlmUnavailable("the language model endpoint answered something unreadable")
        return text.strip()[:MAX_REPLY_CHARS]


models.register("llm", "openai-compatible", OpenAICompatibleRephraser)
