"""BCP-47 language tags (zh-CN, yue-HK, en-US): checking, normalising and matching them.

The one set of rules for every tag the domain stores (an avatar's languages, a position's required
languages, a knowledge entry's or document's language) and every tag a filter takes, so the API,
the services, the CSV import and the seed all accept the same tags and explain a wrong one alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.models import Q
from django.utils.translation import gettext as _

from tenants.errors import DomainError

EXAMPLES = "zh-CN, yue-HK, en-US, zh-Hans-CN"
MAX_TAG_CHARS = 35  # RFC 5646 §4.4.1: room for any tag of the form below
MAX_TAGS = 20  # in one list (an avatar's languages, a position's requirements, a filter)

# ISO 639-1: the two-letter primary language subtags. Three-letter ones (yue, cmn, nan…) are
# many more; they are checked for form only.
_ISO_639_1_CODES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy "
    "da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu "
    "hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb "
    "lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om "
    "or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw "
    "ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"
)
_ISO_639_1 = frozenset(_ISO_639_1_CODES.split())

# BCP-47 (RFC 5646) without extensions or private use: a 2–3 letter ISO 639 language, then an
# optional 4-letter ISO 15924 script, an optional region (2 letters, ISO 3166, or 3 digits, UN
# M.49) and optional registered variants (5–8 characters, or a digit and 3 characters). What a
# language someone speaks needs; extensions and private use say nothing a match could use.
_TAG = re.compile(
    r"(?P<language>[a-z]{2,3})"
    r"(?:-(?P<script>[a-z]{4}))?"
    r"(?:-(?P<region>[a-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)",
    re.ASCII | re.IGNORECASE,
)
# A singleton subtag (`-u-`, `-x-`…) starts an extension or private use.
_EXTENSION = re.compile(r"(?P<tag>.+?)-[0-9a-z](?:-[0-9a-z]{1,8})+", re.ASCII | re.IGNORECASE)


class InvalidLanguageTag(ValueError):
    """Not a tag this domain accepts; `message` says what to write instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _conventional_case(match: re.Match[str]) -> str:
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    return "-".join(parts) + match["variants"].lower()


def _normalised_or_problem(value: object) -> tuple[str | None, str | None]:
    """(the tag in its conventional case, None), or (None, what is wrong with it)."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None, _("Give a language as a BCP-47 tag.")
    shown = text[:40]
    match = _TAG.fullmatch(text)
    if match is None:
        hyphenated = _TAG.fullmatch(text.replace("_", "-"))
        if "_" in text and hyphenated is not None:
            return None, _(
                "Use hyphens, not underscores, in language tags: %(tag)s, not “%(value)s”."
            ) % {"tag": _conventional_case(hyphenated), "value": shown}
        extended = _EXTENSION.fullmatch(text)
        base = _TAG.fullmatch(extended["tag"]) if extended is not None else None
        if base is not None:
            return None, _(
                "“%(value)s” has an extension or private-use part; give only the language, "
                "script, region and variants, as in %(tag)s."
            ) % {"value": shown, "tag": _conventional_case(base)}
        return None, _("“%(value)s” is not a BCP-47 language tag.") % {"value": shown}
    language = match["language"].lower()
    if len(language) == 2 and language not in _ISO_639_1:
        return None, _("“%(language)s” is not an ISO 639 language code.") % {"language": language}
    if len(text) > MAX_TAG_CHARS:
        return None, _("A language tag has at most %(limit)d characters.") % {
            "limit": MAX_TAG_CHARS
        }
    return _conventional_case(match), None


def _with_examples(problem: str) -> str:
    return problem + " " + _("Write tags such as %(examples)s.") % {"examples": EXAMPLES}


def normalise(value: object) -> str:
    """The tag in its conventional case (`ZH-hans-cn` → `zh-Hans-CN`); InvalidLanguageTag with a
    message for a person when it is not a tag."""
    tag, problem = _normalised_or_problem(value)
    if tag is None:
        raise InvalidLanguageTag(_with_examples(problem or ""))
    return tag


def problem(value: object) -> str | None:
    """What is wrong with one tag, for a person; None when nothing is."""
    try:
        normalise(value)
    except InvalidLanguageTag as invalid:
        return invalid.message
    return None


def normalise_all(values: Iterable[object]) -> list[str]:
    """Tags normalised, duplicates dropped (`zh-cn` and `zh-CN` are one), in the given order.

    InvalidLanguageTag names every wrong tag at once, and the examples once."""
    values = list(values)
    tags: list[str] = []
    problems: list[str] = []
    for value in values:
        tag, wrong = _normalised_or_problem(value)
        if tag is not None:
            tags.append(tag)
        elif wrong not in problems:
            problems.append(wrong or "")
    if problems:
        raise InvalidLanguageTag(_with_examples(" ".join(problems)))
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise InvalidLanguageTag(_("At most %(count)d languages.") % {"count": MAX_TAGS})
    return unique


def list_problem(values: Iterable[object]) -> str | None:
    """What is wrong with a list of tags, for a person; None when nothing is."""
    try:
        normalise_all(values)
    except InvalidLanguageTag as invalid:
        return invalid.message
    return None


def clean_list(values: Iterable[object], field: str = "languages") -> list[str]:
    """`normalise_all` for a service: DomainError `invalid_language` on `field` when invalid."""
    try:
        return normalise_all(values)
    except InvalidLanguageTag as invalid:
        raise DomainError("invalid_language", invalid.message, field=field) from None


# --- Matching --------------------------------------------------------------------------------


def matches(tag: str, wanted: str) -> bool:
    """Whether `tag` falls within the range `wanted` (RFC 4647 basic filtering, ignoring case):
    `zh` matches zh-CN and zh-Hans-CN, `zh-Hans` matches zh-Hans-CN; `zh-CN` does not match zh."""
    tag, wanted = tag.casefold(), wanted.casefold()
    return tag == wanted or tag.startswith(wanted + "-")


def speaks(tags: Iterable[str], wanted: str) -> bool:
    """Whether one of `tags` falls within `wanted`: a required `yue` is met by yue-HK."""
    return any(matches(tag, wanted) for tag in tags)


def within(field: str, wanted: str) -> Q:
    """Rows whose `field` (one normalised tag) falls within `wanted`, itself normalised:
    `zh` finds zh, zh-CN and zh-Hant-TW."""
    return Q(**{field: wanted}) | Q(**{f"{field}__startswith": f"{wanted}-"})
