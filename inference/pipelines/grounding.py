"""The check an LLM's rephrasing of a curated answer must pass before a visitor hears it.

A rephrasing may change words, not facts. Every number in it (amounts, days, hours, dates,
phone numbers, written as digits, as English number words or as Chinese numerals before a
unit), every weekday, and every URL or e-mail address must occur in the retrieved entry's
answer; otherwise the curated answer is used instead. Small LMs invent hotlines and deadlines
(FIELD_NOTES), and a wrong phone number from a government station is worse than a stiff
sentence.

Not covered: named organisations and places written in Chinese without brackets (no
dictionary of names here); names in 《》「」“” and capitalised English names are checked.
"""

from __future__ import annotations

import dataclasses
import re

_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_EN_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "hundred": 100, "thousand": 1000,
}  # fmt: skip
_ONE_UNITS = r"(?:day|week|month|year|hour|minute|working|business|time|copy|yuan|item)"
_ONE = re.compile(rf"\b(?:one|a single)\s+{_ONE_UNITS}", re.IGNORECASE)
_EN_WORD = re.compile(r"\b(" + "|".join(_EN_NUMBERS) + r")\b", re.IGNORECASE)
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7}
_ZH_DIGITS |= {"八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
# A Chinese numeral counts as a number only before a measure word: 一 alone is in too many words.
_ZH_NUMBER = re.compile(
    r"([零一二两三四五六七八九十百千万]+)(?=个|天|日|元|块|小时|分钟|年|月|号|周|次|件|项|岁|倍|成|楼|层|区|条|位|份|张|%|％)"
)
_WEEKDAYS = {
    "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
    "sunday": 7, "周一": 1, "周二": 2, "周三": 3, "周四": 4, "周五": 5, "周六": 6, "周日": 7,
    "周末": 67, "星期一": 1, "星期二": 2, "星期三": 3, "星期四": 4, "星期五": 5, "星期六": 6,
    "星期日": 7, "星期天": 7, "weekend": 67, "saturdays": 6, "sundays": 7,
}  # fmt: skip
_CONTACT = re.compile(r"https?://\S+|www\.\S+|[\w.+-]+@[\w-]+\.[\w.-]+", re.IGNORECASE)
_QUOTED = re.compile(r"[《「“\"]([^》」”\"]{1,40})[》」”\"]")
_NAME = re.compile(r"\b([A-Z][A-Za-z]+(?:\s+[A-Z][A-Za-z]+)*)")


@dataclasses.dataclass(frozen=True)
class Grounding:
    ok: bool
    why: str


def _zh_value(text: str) -> int:
    total, section, digit = 0, 0, 0
    for char in text:
        if char in _ZH_DIGITS:
            digit = _ZH_DIGITS[char]
        elif char == "万":
            total += (section + digit) * 10000
            section, digit = 0, 0
        else:
            section += (digit or 1) * _ZH_UNITS[char]
            digit = 0
    return total + section + digit


def numbers(text: str) -> set[str]:
    """Every number the text states, normalised ("1,000" and "一千" are "1000", "09" is "9")."""
    found: set[str] = set()
    for raw in _DIGITS.findall(text):
        plain = raw.replace(",", "")
        try:
            value = float(plain)
        except ValueError:
            continue
        found.add(str(int(value)) if value.is_integer() else str(value))
    found.update(str(_EN_NUMBERS[word.lower()]) for word in _EN_WORD.findall(text))
    if _ONE.search(text):
        found.add("1")
    found.update(str(_zh_value(run)) for run in _ZH_NUMBER.findall(text))
    return found


def _weekdays(text: str) -> set[int]:
    lowered = text.lower()
    found = {day for word, day in _WEEKDAYS.items() if word in lowered}
    if 67 in found:
        found |= {6, 7}
    return found - {67}


def _names(text: str) -> set[str]:
    names = {quoted.strip().lower() for quoted in _QUOTED.findall(text)}
    for sentence in re.split(r"(?<=[.!?。！？])\s*", text):
        for match in _NAME.finditer(sentence):
            if match.start() > 0:
                names.add(match.group(1).lower())
    return names - {name for name in names if name.lower() in _WEEKDAYS}


def check_grounding(rephrased: str, source: str) -> Grounding:
    """Whether `rephrased` states only facts found in `source` (the retrieved entry's
    answer). `why` names the first kind of unsupported fact, for the interaction log."""
    if not rephrased.strip():
        return Grounding(False, "the rephrasing is empty")
    invented = sorted(numbers(rephrased) - numbers(source), key=lambda n: (len(n), n))
    if invented:
        return Grounding(False, f"numbers not in the entry: {', '.join(invented)}")
    days = _weekdays(rephrased) - _weekdays(source)
    if days:
        return Grounding(False, "weekdays not in the entry")
    source_lower = source.lower()
    contacts = [
        c for c in _CONTACT.findall(rephrased) if c.lower().rstrip(".,") not in source_lower
    ]
    if contacts:
        return Grounding(False, f"contact details not in the entry: {', '.join(contacts)}")
    names = sorted(name for name in _names(rephrased) if name not in source_lower)
    if names:
        return Grounding(False, f"names not in the entry: {', '.join(names)}")
    return Grounding(True, "every number, day, contact and name comes from the entry")
