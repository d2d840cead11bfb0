"""The catalogs: every text the code marks is in the template and translated in every
language, with nothing stale, fuzzy or broken; and how a person's language is chosen."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from core.i18n import (
    DEFAULT_LANGUAGE,
    DOMAIN,
    LOCALES,
    catalog_path,
    choose,
    language_name,
    languages,
    texts,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = LOCALES.parent / f"{DOMAIN}.pot"
# English and six more (issue #16 asks for at least five).
REQUIRED = {"en", "de", "es", "fr", "pt", "ru", "uk"}

MessageId = str | tuple[str, ...]


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=locale, domain=DOMAIN)


def _texts(value: object) -> list[str]:
    """A message's id or string as its forms: one, or one per plural form."""
    if isinstance(value, str):
        return [value]
    return [str(form) for form in value] if isinstance(value, (tuple, list)) else []


def _key(value: object) -> MessageId:
    forms = _texts(value)
    return forms[0] if isinstance(value, str) else tuple(forms)


def _ids(catalog: Catalog) -> set[MessageId]:
    return {_key(m.id) for m in catalog if m.id}


def _extracted() -> set[MessageId]:
    """What `pybabel extract -F babel.cfg` finds in the code now (docs/i18n.md)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found: set[MessageId] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map
    ):
        found.add(_key(message))
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_template_matches_the_code() -> None:
    """Run `pybabel extract` (docs/i18n.md) after adding or changing a text."""
    committed, extracted = _ids(_read(TEMPLATE)), _extracted()
    assert sorted(map(str, extracted - committed)) == [], "texts missing from the template"
    assert sorted(map(str, committed - extracted)) == [], "texts no longer in the code"


def test_the_required_languages_have_catalogs() -> None:
    assert set(languages()) >= REQUIRED
    assert languages()[0] == DEFAULT_LANGUAGE


@pytest.mark.parametrize("language", sorted(set(languages())))
def test_each_catalog_translates_every_text_and_nothing_else(language: str) -> None:
    """Run `pybabel update` (docs/i18n.md), then translate what it added or marked fuzzy."""
    catalog = _read(catalog_path(language), language)
    template = _ids(_read(TEMPLATE))
    assert catalog.plural_forms == Catalog(locale=language).plural_forms
    assert sorted(map(str, template - _ids(catalog))) == [], "missing texts"
    assert sorted(map(str, _ids(catalog) - template)) == [], "stale texts"
    assert not catalog.obsolete, "obsolete entries"
    problems: list[tuple[object, ...]] = []
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy:
            problems.append(("fuzzy", message.id))
        forms = _texts(message.string)
        if message.pluralizable and len(forms) != catalog.num_plurals:
            problems.append(("plural forms", message.id))
        wanted = set().union(*map(_fields, _texts(message.id)))
        for form in forms:
            if not form:
                problems.append(("untranslated", message.id))
                continue
            fields = _fields(form)
            # `{n}` may go where the language says "one" without the number.
            if not fields <= wanted or not wanted - {"n"} <= fields:
                problems.append(("placeholders", message.id, form))
            else:
                form.format(**dict.fromkeys(wanted, 1))  # a well-formed format string
        problems += [("check", message.id, str(e)) for e in message.check(catalog)]
    assert problems == []


@pytest.mark.parametrize("language", sorted(set(languages()) - {DEFAULT_LANGUAGE}))
def test_each_language_differs_from_english(language: str) -> None:
    t, english = texts(language), texts(DEFAULT_LANGUAGE)
    text = "Please send this command in a private chat with me."
    assert t.gettext(text) != english.gettext(text) == text


def test_plural_forms_follow_each_language() -> None:
    assert [texts("en").ngettext("{n} fact", "{n} facts", n) for n in (1, 2)] == [
        "1 fact",
        "2 facts",
    ]
    assert [texts("ru").ngettext("{n} fact", "{n} facts", n) for n in (1, 3, 5, 21)] == [
        "1 факт",
        "3 факта",
        "5 фактов",
        "21 факт",
    ]
    assert texts("fr").ngettext("{n} fact", "{n} facts", 0) == "0 information"


def test_a_language_tag_picks_its_catalog_else_english() -> None:
    assert choose("pt-BR") == "pt"
    assert choose("de_AT") == "de"
    assert choose("ES") == "es"
    assert choose("xx", None, "fr") == "fr"  # the first tag with a catalog
    assert choose("ja", None) == DEFAULT_LANGUAGE
    assert choose() == DEFAULT_LANGUAGE
    assert texts("zz").language == DEFAULT_LANGUAGE
    assert language_name("de") == "Deutsch"
    assert language_name("ru") == "Русский"
