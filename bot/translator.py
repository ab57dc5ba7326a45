"""The command names, descriptions and choices in every language of the catalogues, for Discord.

discord.py asks the tree's :class:`discord.app_commands.Translator` for each ``locale_str`` of every command
(name, description, option names and descriptions, choices) in every Discord locale when it builds the
command payload (``tree.sync``); what it returns becomes ``name_localizations`` / ``description_localizations``
of that command. :class:`CatalogueTranslator` answers from the same gettext catalogues as every other text
(:mod:`bot.i18n`): the English text is the message id. A ``locale_str`` may carry ``template`` and
``values`` (``locale_str(english, template="… {max} …", values={"max": 60})``) when its English text is made
at runtime.

Discord's rules for names (lower case, at most 32 letters, digits, ``-`` and ``_``) and descriptions (at
most 100 characters) are checked for every catalogue by tests/test_i18n.py, so a bad translation fails there
and not at sync time.
"""
from __future__ import annotations

import discord
from discord import app_commands

from bot.i18n import SOURCE, language, text

NAME_LOCATIONS = (app_commands.TranslationContextLocation.command_name,
                  app_commands.TranslationContextLocation.group_name,
                  app_commands.TranslationContextLocation.parameter_name)


class CatalogueTranslator(app_commands.Translator):
    """Translations of command texts from :mod:`bot.i18n`'s catalogues; None (Discord shows the English
    default) for English, for languages without a catalogue and for texts a catalogue does not translate."""

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        return translate(string, locale, context.location)


def translate(string: app_commands.locale_str, locale: object,
              location: app_commands.TranslationContextLocation | None = None) -> str | None:
    """The text of ``string`` in the language of ``locale``, or None when there is none (see the class)."""
    lang = language(locale)
    if lang == SOURCE:
        return None
    template = string.extras.get("template", string.message)
    tr = text(lang)
    translated = tr._(template)
    if translated == template:
        return None
    values = string.extras.get("values")
    if values:
        translated = translated.format(**values)
    return translated.lower() if location in NAME_LOCATIONS else translated
