"""Discord's validation rules for the fake: limits on messages (content, embeds, components, allowed
mentions, files) and on application command sync.

Each check raises :class:`~fakediscord.model.ApiError` with the status, code and error body Discord
answers with (usually 400 / 50035 Invalid Form Body), and a ``rule`` naming what the bot broke.
"""
from __future__ import annotations

import re

from fakediscord.model import IS_COMPONENTS_V2, ApiError


def form_error(errors: dict, rule: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors, rule=rule)


def _err(code: str, message: str) -> dict:
    return {"_errors": [{"code": code, "message": message}]}


def _nest(path: list, leaf: dict) -> dict:
    out = leaf
    for key in reversed(path):
        out = {str(key): out}
    return out


# ---------------------------------------------------------------------------------------------------------
# Message validation (Discord's documented limits)
# ---------------------------------------------------------------------------------------------------------
MAX_CONTENT = 2000
MAX_FILES = 10
MAX_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_SELECT_OPTIONS = 25
MAX_CUSTOM_ID = 100


def validate_message_fields(body: dict, path: list | None = None) -> None:
    """Raise ApiError (400, 50035) for content, embeds, components or allowed_mentions Discord refuses."""
    path = list(path or [])
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    if content is not None and len(content) > MAX_CONTENT:
        raise form_error(_nest(path + ["content"], _err("BASE_TYPE_MAX_LENGTH",
                                                        f"Must be {MAX_CONTENT} or fewer in length.")),
                         rule=f"content longer than {MAX_CONTENT} characters ({len(content)})")
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        raise form_error(_nest(path + ["embeds"], _err("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")),
                         rule="more than 10 embeds")
    total = 0
    for i, e in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            if len(e.get(key) or "") > limit:
                raise form_error(_nest(path + ["embeds", i, key], _err(
                    "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")), rule=f"embed {key} too long")
            total += len(e.get(key) or "")
        fields = e.get("fields") or []
        if len(fields) > 25:
            raise form_error(_nest(path + ["embeds", i, "fields"], _err(
                "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")), rule="more than 25 embed fields")
        for f in fields:
            total += len(f.get("name") or "") + len(f.get("value") or "")
        total += len((e.get("footer") or {}).get("text") or "") + len((e.get("author") or {}).get("name") or "")
    if total > 6000:
        raise form_error(_nest(path + ["embeds"],
                               _err("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")),
                         rule="embeds longer than 6000 characters in total")
    am = body.get("allowed_mentions")
    if am:
        parse = set(am.get("parse") or [])
        for kind in ("users", "roles"):
            if kind in parse and am.get(kind):
                raise form_error(_nest(path + ["allowed_mentions"], _err(
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.')),
                    rule="allowed_mentions parse and explicit list both given")
    if "components" in body and body["components"] is not None:
        validate_components(body["components"], path + ["components"],
                            v2=bool((body.get("flags") or 0) & IS_COMPONENTS_V2))


def validate_components(rows: list, path: list, v2: bool = False) -> None:
    """Action rows: at most 5; each holds 1–5 buttons or exactly one select of 1–25 options."""
    if v2:
        return  # Components V2 layouts are accepted as they are (the bot does not use them).
    if len(rows) > MAX_ROWS:
        raise form_error(_nest(path, _err("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length.")),
                         rule=f"more than {MAX_ROWS} action rows ({len(rows)})")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        if row.get("type") != 1:
            raise form_error(_nest(path + [r, "type"],
                                   _err("UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1,).")),
                             rule="top-level component is not an action row")
        items = row.get("components") or []
        if not items:
            raise form_error(_nest(path + [r, "components"],
                                   _err("BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")),
                             rule="empty action row")
        if len(items) > MAX_ROW_BUTTONS:
            raise form_error(_nest(path + [r, "components"], _err(
                "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROW_BUTTONS} or fewer in length.")),
                rule=f"more than {MAX_ROW_BUTTONS} components in a row ({len(items)})")
        has_select = any(c.get("type") in (3, 5, 6, 7, 8) for c in items)
        if has_select and len(items) > 1:
            raise form_error(_nest(path + [r, "components"], _err(
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "The specified component exceeds the maximum width")),
                rule="a select menu shares its action row")
        for c, comp in enumerate(items):
            here = path + [r, "components", c]
            ctype = comp.get("type")
            cid = comp.get("custom_id")
            if cid is not None:
                if not 1 <= len(cid) <= MAX_CUSTOM_ID:
                    raise form_error(_nest(here + ["custom_id"], _err(
                        "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_CUSTOM_ID} in length.")),
                        rule="custom_id longer than 100 characters")
                if cid in seen:
                    raise form_error(_nest(here + ["custom_id"], _err(
                        "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")),
                        rule=f"duplicate custom_id {cid!r}")
                seen.add(cid)
            if ctype == 2:
                style = comp.get("style")
                if style == 5:
                    if not comp.get("url") or cid:
                        raise form_error(_nest(here, _err("BUTTON_COMPONENT_INVALID_URL",
                                                          "A link button needs a url and no custom_id.")),
                                         rule="link button without url")
                elif style != 6 and not cid:
                    raise form_error(_nest(here + ["custom_id"], _err("BASE_TYPE_REQUIRED", "This field is required")),
                                     rule="button without custom_id")
                if len(comp.get("label") or "") > 80:
                    raise form_error(_nest(here + ["label"],
                                           _err("BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")),
                                     rule="button label longer than 80")
            elif ctype == 3:
                options = comp.get("options") or []
                if not 1 <= len(options) <= MAX_SELECT_OPTIONS:
                    raise form_error(_nest(here + ["options"], _err(
                        "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_SELECT_OPTIONS} in length.")),
                        rule=f"select menu with {len(options)} options (1–{MAX_SELECT_OPTIONS} allowed)")
                values = [o.get("value") for o in options]
                if len(set(values)) != len(values):
                    raise form_error(_nest(here + ["options"], _err(
                        "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
                        "Select component option values cannot be duplicated")),
                        rule="duplicate select option values")
                for o_i, o in enumerate(options):
                    for key, limit in (("label", 100), ("value", 100), ("description", 100)):
                        if len(o.get(key) or "") > limit:
                            raise form_error(_nest(here + ["options", o_i, key], _err(
                                "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")),
                                rule=f"select option {key} too long")
                lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
                if not (0 <= lo <= 25 and 1 <= hi <= 25 and lo <= hi and hi <= len(options)):
                    raise form_error(_nest(here + ["max_values"], _err(
                        "BASE_TYPE_BAD_INT", "min_values/max_values out of range")),
                        rule="select min_values/max_values out of range")
                if len(comp.get("placeholder") or "") > 150:
                    raise form_error(_nest(here + ["placeholder"],
                                           _err("BASE_TYPE_MAX_LENGTH", "Must be 150 or fewer in length.")),
                                     rule="select placeholder longer than 150")
            elif ctype in (5, 6, 7, 8):
                if not cid:
                    raise form_error(_nest(here + ["custom_id"], _err("BASE_TYPE_REQUIRED", "This field is required")),
                                     rule="select without custom_id")
            else:
                raise form_error(_nest(here + ["type"], _err("UNION_TYPE_CHOICES", f"Invalid component type {ctype}")),
                                 rule=f"component type {ctype} inside an action row")


def check_not_empty(content: str, embeds: list, attachments: list, components: list) -> None:
    if not (content or embeds or attachments or components):
        raise ApiError(400, 50006, "Cannot send an empty message", rule="empty message")


# ---------------------------------------------------------------------------------------------------------
# Application command sync
# ---------------------------------------------------------------------------------------------------------
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def validate_commands(commands: list) -> None:
    """The checks Discord makes on a bulk overwrite of application commands."""
    if len(commands) > 100:
        raise form_error(_err("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."), rule="more than 100 commands")
    names = set()
    for i, cmd in enumerate(commands):
        ctype = cmd.get("type", 1)
        name = cmd.get("name") or ""
        if (ctype, name) in names:
            raise form_error({str(i): {"name": _err("APPLICATION_COMMANDS_DUPLICATE_NAME",
                                                     f"Application command names must be unique ({name})")}},
                             rule=f"duplicate command name {name}")
        names.add((ctype, name))
        if ctype == 1:
            _check_chat_input(cmd, [str(i)])
            size = _command_chars(cmd)
            if size > 8000:
                raise form_error({str(i): _err("APPLICATION_COMMAND_TOO_LARGE",
                                               f"Command exceeds maximum size (8000) ({size})")},
                                 rule=f"command {name!r} is {size} characters (names, descriptions, choices; max 8000)")


def _command_chars(item: dict) -> int:
    """What counts toward Discord's 8,000-character limit per command."""
    n = len(item.get("name") or "") + len(item.get("description") or "")
    for choice in item.get("choices") or []:
        n += len(str(choice.get("name") or "")) + len(str(choice.get("value") or ""))
    return n + sum(_command_chars(o) for o in item.get("options") or [])


#: the locales Discord accepts as keys of ``name_localizations`` / ``description_localizations``
LOCALES = frozenset("id da de en-GB en-US es-ES es-419 fr hr it lt hu nl no pl pt-BR ro fi sv-SE vi tr cs el bg ru "
                    "uk hi th zh-CN ja zh-TW ko".split())


def _check_localizations(item: dict, path: list, *, choice: bool = False) -> None:
    """Discord holds translations to the rules of what they translate: a command or option name as a name
    (lower case, at most 32 name characters), a description or a choice name 1–100 characters; the keys must be
    Discord locales."""
    keys = ("name_localizations",) if choice else ("name_localizations", "description_localizations")
    for key in keys:
        as_name = key == "name_localizations" and not choice
        for locale, value in (item.get(key) or {}).items():
            value = str(value or "")
            here = _nest(path + [key, locale], _err("BASE_TYPE_BAD_LENGTH", f"Invalid localization ({value!r})"))
            if locale not in LOCALES:
                raise form_error(here, rule=f"{key}: {locale!r} is not a Discord locale")
            if as_name and (not COMMAND_NAME.match(value) or value != value.lower()):
                raise form_error(here, rule=f"invalid localized name {value!r} ({locale})")
            if not as_name and not 1 <= len(value) <= 100:
                raise form_error(here, rule=f"{key} {value!r} ({locale}) must be 1–100 characters")


def _check_chat_input(item: dict, path: list, depth: int = 0) -> None:
    _check_localizations(item, path)
    name = item.get("name") or ""
    if not COMMAND_NAME.match(name) or name != name.lower():
        raise form_error(_nest(path + ["name"],
                               _err("APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid ({name!r})")),
                         rule=f"invalid command/option name {name!r}")
    desc = item.get("description") or ""
    if not 1 <= len(desc) <= 100:
        raise form_error(_nest(path + ["description"],
                               _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")),
                         rule=f"description of {name!r} must be 1–100 characters")
    options = item.get("options") or []
    if len(options) > 25:
        raise form_error(_nest(path + ["options"], _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")),
                         rule=f"more than 25 options on {name!r}")
    seen_optional = False
    for j, opt in enumerate(options):
        here = path + ["options", str(j)]
        if opt.get("type") in (1, 2):
            if depth >= 2:
                raise form_error(_nest(here, _err("APPLICATION_COMMAND_TOO_DEEP", "Subcommands nest too deeply")),
                                 rule="subcommands nested too deeply")
            _check_chat_input(opt, here, depth + 1)
            continue
        _check_chat_input({**opt, "options": []}, here, depth + 1)
        if opt.get("required"):
            if seen_optional:
                raise form_error(_nest(here + ["required"], _err(
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options")),
                    rule=f"required option {opt.get('name')!r} after an optional one")
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            raise form_error(_nest(here + ["choices"], _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")),
                             rule="more than 25 choices")
        for c, choice in enumerate(opt.get("choices") or []):
            _check_localizations(choice, here + ["choices", str(c)], choice=True)
            if not 1 <= len(str(choice.get("name") or "")) <= 100:
                raise form_error(_nest(here + ["choices", str(c), "name"], _err(
                    "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")),
                    rule=f"choice name of {opt.get('name')!r} must be 1–100 characters")
