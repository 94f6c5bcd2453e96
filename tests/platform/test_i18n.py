"""Simplified Chinese: API errors come back in the language the client asks for, and the catalogue
is complete (every message in the code translated, nothing fuzzy, placeholders kept)."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tenants.roles import Role
from tests import factories

REPO = Path(settings.BASE_DIR)
CATALOGUE = REPO / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def stations_url(organization) -> str:
    return f"/api/v1/orgs/{organization.slug}/stations/"


# --- the API speaks Chinese when asked ------------------------------------------------------


def test_role_denial_is_translated_with_role_and_permission_names(
    org_a, member_factory, client_for
):
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    payload = {"name": "Health live room", "kind": "live_room"}

    chinese = analyst.post(stations_url(org_a), payload, format="json", **ZH)
    english = analyst.post(stations_url(org_a), payload, format="json")

    assert chinese.status_code == english.status_code == 403
    assert chinese.json()["detail"] == (
        "您的角色（分析师）无权执行此操作：需要“创建、删除和分配工位”权限。"
    )
    assert english.json()["detail"] == (
        "Your role (Analyst) does not allow this: it needs Create, delete and assign stations."
    )
    assert chinese["Content-Language"] == "zh-hans"


def test_domain_error_is_translated(org_a, api_a):
    factories.StationFactory(organization=org_a, name="Health live room")

    response = api_a.post(
        stations_url(org_a), {"name": "Health live room", "kind": "live_room"}, format="json", **ZH
    )

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "station_name_taken"
    assert body["detail"] == "已有其他工位使用此名称。"
    assert body["fields"]["name"][0]["message"] == "已有其他工位使用此名称。"


def test_validation_errors_are_translated(org_a, api_a):
    response = api_a.post(
        stations_url(org_a),
        {"name": "Kiosk", "kind": "kiosk", "colour": "red"},
        format="json",
        **ZH,
    )

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "部分字段无效。"
    assert body["fields"]["colour"][0]["message"] == "未知字段。"


def test_unknown_url_answers_in_chinese(db, client):
    response = client.get("/api/v1/no-such-thing/", **ZH)

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "未找到。"}


# --- the catalogue ----------------------------------------------------------------------------


@dataclass
class Entry:
    msgctxt: str = ""
    msgid: str = ""
    msgid_plural: str = ""
    msgstrs: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False


def _unquote(literal: str) -> str:
    body = literal.strip()
    assert body.startswith('"') and body.endswith('"'), f"not a PO string: {literal!r}"
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), body[1:-1])


def parse_po(text: str) -> list[Entry]:
    """A small PO reader: enough for msgid/msgid_plural/msgstr[n], flags and obsolete entries."""
    entries: list[Entry] = []
    entry = Entry()
    target: tuple[str, int] | None = None

    def flush() -> None:
        nonlocal entry, target
        if target is not None:
            entries.append(entry)
        entry, target = Entry(), None

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#~"):
            entry.obsolete = True
            line = line[2:].strip()
            if not line or line.startswith("#"):
                continue
        elif line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        elif line.startswith("#"):
            continue
        if line.startswith(("msgctxt ", "msgid ")) and target is not None and target[0] == "msgstr":
            flush()
        keyword, _, rest = line.partition(" ")
        if keyword == "msgctxt":
            target, entry.msgctxt = ("msgctxt", 0), _unquote(rest)
        elif keyword == "msgid":
            target, entry.msgid = ("msgid", 0), _unquote(rest)
        elif keyword == "msgid_plural":
            target, entry.msgid_plural = ("msgid_plural", 0), _unquote(rest)
        elif keyword.startswith("msgstr"):
            index = int(keyword[7:-1]) if keyword.startswith("msgstr[") else 0
            target = ("msgstr", index)
            entry.msgstrs[index] = _unquote(rest)
        elif line.startswith('"') and target is not None:
            kind, index = target
            if kind == "msgctxt":
                entry.msgctxt += _unquote(line)
            elif kind == "msgid":
                entry.msgid += _unquote(line)
            elif kind == "msgid_plural":
                entry.msgid_plural += _unquote(line)
            else:
                entry.msgstrs[index] += _unquote(line)
        else:
            raise AssertionError(f"unexpected line in {CATALOGUE.name}: {raw!r}")
    flush()
    return entries


@pytest.fixture(scope="module")
def catalogue() -> list[Entry]:
    return parse_po(CATALOGUE.read_text(encoding="utf-8"))


def messages(catalogue: list[Entry]) -> list[Entry]:
    return [entry for entry in catalogue if entry.msgid and not entry.obsolete]


def test_catalogue_has_nothing_fuzzy_untranslated_or_obsolete(catalogue):
    header = next(entry for entry in catalogue if entry.msgid == "")
    assert "fuzzy" not in header.flags, "the header is fuzzy: msgfmt would ignore its charset"
    assert "Language: zh_Hans" in header.msgstrs[0]
    assert len(messages(catalogue)) > 50

    fuzzy = [entry.msgid for entry in messages(catalogue) if "fuzzy" in entry.flags]
    untranslated = [
        entry.msgid
        for entry in messages(catalogue)
        if not entry.msgstrs or not all(entry.msgstrs.values())
    ]
    obsolete = [entry.msgid for entry in catalogue if entry.obsolete]
    assert fuzzy == [], "review these translations and drop their fuzzy flag"
    assert untranslated == []
    assert obsolete == [], "run makemessages and delete the #~ entries"


PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|\{[a-z_]+\}")


def test_translations_keep_every_placeholder(catalogue):
    broken = [
        (entry.msgid, text)
        for entry in messages(catalogue)
        for text in entry.msgstrs.values()
        if sorted(PLACEHOLDER.findall(entry.msgid)) != sorted(PLACEHOLDER.findall(text))
    ]
    assert broken == []


def test_translations_are_chinese(catalogue):
    # A msgstr copied from the msgid passes msgfmt; a person would still read English.
    # A message of placeholders and punctuation only ("%(a)s; %(b)s") has no words to translate:
    # its translation changes only the punctuation (full-width in Chinese).
    han = re.compile(r"[\u4e00-\u9fff]")
    english = [
        entry.msgid
        for entry in messages(catalogue)
        if not han.search(entry.msgstrs.get(0, ""))
        and re.search(r"[A-Za-z]", PLACEHOLDER.sub("", entry.msgid))
    ]
    assert english == []


def test_compiled_catalogue_matches_the_po_file(catalogue):
    if not COMPILED.exists():
        pytest.fail(f"{COMPILED} is missing: run `manage.py compilemessages` (make messages)")
    with COMPILED.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = [
        entry.msgid
        for entry in messages(catalogue)
        if compiled.gettext(entry.msgid) != entry.msgstrs.get(0)
    ]
    assert stale == [], "the .mo is out of date: run `manage.py compilemessages` (make messages)"


def _source_files(pattern: str = "*.py") -> list[str]:
    # The files makemessages reads: everything of ours, not the tests or ignored folders.
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(
        name for name in set(listed) if not name.startswith("tests/") and (REPO / name).exists()
    )


def _templates_as_python(folder: Path) -> list[str]:
    """Each template turned into the Python-like text makemessages hands to xgettext."""
    from django.utils.translation.template import templatize

    written = []
    for number, name in enumerate(_source_files("*.html")):
        target = folder / f"template_{number}.py"
        target.write_text(templatize((REPO / name).read_text(), origin=name))
        written.append(str(target))
    return written


def test_every_message_in_the_code_is_in_the_catalogue(catalogue, tmp_path):
    xgettext = shutil.which("xgettext")
    if xgettext is None or shutil.which("git") is None:
        if os.environ.get("CI"):
            pytest.fail("xgettext (Debian package gettext) and git are required in CI")
        pytest.skip("xgettext or git is not installed")
    # The same extraction as `manage.py makemessages` (django/core/management/commands).
    extracted = subprocess.run(
        [
            xgettext,
            "--language=Python",
            "--from-code=UTF-8",
            "--output=-",
            "--keyword=gettext_noop",
            "--keyword=gettext_lazy",
            "--keyword=ngettext_lazy:1,2",
            "--keyword=pgettext:1c,2",
            "--keyword=npgettext:1c,2,3",
            "--keyword=pgettext_lazy:1c,2",
            "--keyword=npgettext_lazy:1c,2,3",
            *_source_files(),
            *_templates_as_python(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    in_code = {(entry.msgctxt, entry.msgid) for entry in parse_po(extracted) if entry.msgid}
    in_catalogue = {(entry.msgctxt, entry.msgid) for entry in messages(catalogue)}

    assert sorted(in_code - in_catalogue) == [], (
        "new messages: run `manage.py makemessages -l zh_Hans --ignore=.venv --ignore=.cache "
        "--ignore=data --ignore=tests` and translate them"
    )
    assert sorted(in_catalogue - in_code) == [], "messages no longer in the code: run makemessages"
