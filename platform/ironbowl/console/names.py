"""How the console names a digital employee: its avatar's name in the page's language (the
Chinese name on a Chinese page, the English one otherwise), the other one when that is blank."""

from __future__ import annotations

from typing import Protocol

from django.utils import translation


class Named(Protocol):
    name_zh: str
    name_en: str


def display_name(name_zh: str, name_en: str) -> str:
    """The name to show of a Chinese and an English name, in the page's language."""
    if (translation.get_language() or "").startswith("zh"):
        return name_zh or name_en
    return name_en or name_zh


def avatar_name(avatar: Named) -> str:
    """An avatar's (and so its hires') name in the page's language."""
    return display_name(avatar.name_zh, avatar.name_en)
