"""The bot's languages: gettext catalogues (read with Babel) and numbers and durations formatted per locale.

- The English texts in the code are the message ids (``tr._("Morph job #{job} queued")``); every other
  language is one catalogue, ``bot/locales/<lang>/LC_MESSAGES/bot.po``. Adding a language is adding that
  file (see the README: ``make messages`` refreshes the template ``bot/locales/bot.pot`` and every catalogue).
- Placeholders are named (``{job}``), filled with :meth:`str.format` after the lookup; a text with a count
  uses :meth:`Text.ngettext` (plural forms come from the catalogue's ``Plural-Forms``).
- Catalogues are compiled in memory from the ``.po`` when first used (Babel's ``read_po`` + ``write_mo``): a
  fresh clone needs no build step and there is no stale ``.mo`` to forget. Fuzzy entries are left out.
- Which language: a Discord locale (``ja``, ``en-US``, ``zh-TW``, a :class:`discord.Locale`) maps to the
  catalogue of that exact name, else of its language part, else English (:func:`language`).

No Discord import here: the store and the worker may use it.
"""
from __future__ import annotations

import functools
import gettext
import io
from datetime import timedelta
from pathlib import Path

from babel.dates import format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES_DIR = Path(__file__).with_name("locales")
DOMAIN = "bot"
#: the language of the message ids (the code's own texts): it has no catalogue
SOURCE = "en"


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it here (it is translated where it is shown)."""
    return message


def catalogue_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def languages() -> tuple[str, ...]:
    """English and every language with a catalogue, e.g. ``("en", "ja")``."""
    found = sorted(p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (SOURCE, *found)


def language(locale: object) -> str:
    """The language (one of :func:`languages`) for a Discord locale: ``"ja"`` → ``ja``; ``"pt-BR"`` → a
    ``pt-BR`` catalogue, else ``pt``, else English; None or anything unknown → English."""
    if locale is None:
        return SOURCE
    code = str(getattr(locale, "value", locale)).strip().replace("_", "-")
    known = {lang.lower(): lang for lang in languages()}
    for candidate in (code.lower(), code.split("-")[0].lower()):
        if candidate in known:
            return known[candidate]
    return SOURCE


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (English and unknown languages: the message ids themselves)."""
    path = catalogue_path(lang)
    if lang == SOURCE or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class Text:
    """The texts of one language: ``tr._("… {job} …", job=3)``, ``tr.ngettext(one, many, n, …)``, and
    numbers and durations written the way that language writes them."""

    def __init__(self, locale: object = None) -> None:
        self.lang = language(locale)
        self._t = translations(self.lang)

    def _(self, message: str, /, **values: object) -> str:
        """``message`` in this language with ``values`` filled in."""
        text = self._t.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        """The form of ``singular``/``plural`` for the count ``n`` (also available as ``{count}``)."""
        values.setdefault("count", self.number(n))
        return self._t.ngettext(singular, plural, n).format(**values)

    def number(self, value: float, digits: int | None = None) -> str:
        """``1,234`` / ``0.93``: ``digits`` decimals exactly when given, else as many as the value has."""
        fmt = None if digits is None else ("#,##0." + "0" * digits if digits else "#,##0")
        return format_decimal(value, format=fmt, locale=self._babel_locale)

    def seconds(self, seconds: float) -> str:
        """A wait as the language says it, rounded to its largest unit: ``20 seconds``, ``3 minutes``
        (``20秒``, ``3分``)."""
        return format_timedelta(timedelta(seconds=seconds), threshold=1.5, locale=self._babel_locale)

    @property
    def _babel_locale(self) -> str:
        return "en_US" if self.lang == SOURCE else self.lang.replace("-", "_")


def text(locale: object = None) -> Text:
    """The :class:`Text` of a locale (one per language)."""
    return _text_of(language(locale))


@functools.cache
def _text_of(lang: str) -> Text:
    return Text(lang)
