"""The bot's own texts in the person's language: gettext catalogs kept as Babel `.po`
files under `core/i18n/locales/<language>/LC_MESSAGES/onethread.po` (docs/i18n.md).

A text is marked where it is written, either where it is said (`texts.gettext("...")`,
`texts.ngettext(...)`) or as a module constant (`N_("...")`, translated where it is
said); `pybabel extract` finds both. The catalogs are compiled in memory when first
used (`babel.messages.mofile.write_mo`), so the `.po` files are the only copy in the
repository and a fresh clone needs no build step. Placeholders are `str.format` names
(`{seconds}`), which translators keep as they are.

Code that does not know who it speaks to (media plans and failures, document answers)
returns a `Notice`, a marked text and its values, which the caller says in the
person's language (`Texts.say`); values are filled in after translation.

Which language: the one the person chose (`/language`), else the one their platform
says now (`Inbound.language`), else the one it said last (`users.locale`), else
English; a tag is matched by its primary subtag ("pt-BR" -> "pt").
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "onethread"
DEFAULT_LANGUAGE = "en"
LOCALES = Path(__file__).parent / "locales"


def N_(message: str) -> str:  # noqa: N802 (gettext's name for a deferred mark)
    """Mark `message` for the catalogs without translating it (translated where said)."""
    return message


@dataclass(frozen=True, slots=True)
class Notice:
    """A text to say in a language chosen later: a marked message and its values (a
    value may be a `Notice` itself, said in the same language first). Made with
    `Notice.gettext` or `Notice.ngettext`, whose names `pybabel extract` knows, and said
    with `Texts.say`."""

    message: str
    values: Mapping[str, object] = field(default_factory=dict)
    plural: str | None = None
    """With a plural: the text has one form per plural form, chosen by `n`."""
    n: int = 0

    @staticmethod
    def gettext(message: str, /, **values: object) -> Notice:
        return Notice(message, values)

    @staticmethod
    def ngettext(singular: str, plural: str, n: int, /, **values: object) -> Notice:
        """`{n}` is filled in with `n`, as `Texts.ngettext` does."""
        return Notice(singular, values, plural, n)


class Texts:
    """One language's catalog: its texts, formatted with their named placeholders."""

    def __init__(self, language: str, translations: gettext.NullTranslations) -> None:
        self.language = language
        self._translations = translations

    def gettext(self, message: str, /, **values: object) -> str:
        text = self._translations.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        """The form of the text for `n` (the catalog's plural rule), `{n}` filled in."""
        return self._translations.ngettext(singular, plural, n).format(n=n, **values)

    def say(self, notice: Notice) -> str:
        """`notice` in this language, its values (said first, if notices) filled in."""
        values = {
            name: self.say(value) if isinstance(value, Notice) else value
            for name, value in notice.values.items()
        }
        if notice.plural is None:
            return self.gettext(notice.message, **values)
        return self.ngettext(notice.message, notice.plural, notice.n, **values)


def catalog_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def languages() -> tuple[str, ...]:
    """The languages with a catalog, English first, the others by code."""
    found = sorted(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (DEFAULT_LANGUAGE, *(code for code in found if code != DEFAULT_LANGUAGE))


def language_name(language: str) -> str:
    """The language's own name for itself ("Deutsch")."""
    name = Locale.parse(language).get_display_name(language) or language
    return name[:1].upper() + name[1:]


def supported(tag: str | None) -> str | None:
    """The catalog for an IETF or POSIX tag ("de-AT", "pt_BR"); None when there is none."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if primary in languages() else None


def choose(*tags: str | None) -> str:
    """The first of `tags` that has a catalog, else English."""
    return next((code for tag in tags if (code := supported(tag)) is not None), DEFAULT_LANGUAGE)


@functools.cache
def texts(language: str) -> Texts:
    """The catalog of `language` (a code from `languages()`; another gets English)."""
    code = supported(language) or DEFAULT_LANGUAGE
    with catalog_path(code).open("rb") as po:
        catalog = read_po(po, locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out: they fall back to English
    compiled.seek(0)
    return Texts(code, gettext.GNUTranslations(compiled))


def texts_for(*tags: str | None) -> Texts:
    """The catalog of the first of `tags` that has one (`choose`)."""
    return texts(choose(*tags))
