"""Turn what someone types in the playground's command box into a slash command, the way Discord's client does.

The schema is the list of application commands the bot synced (Discord's JSON: ``name``, ``options`` with
``type``, ``required``, ``choices``, ``min_value``/``max_value`` …), so the playground knows exactly the
commands the real bot registered. Like Discord's client, this refuses missing required options, unknown
options, out-of-range numbers and values outside ``choices`` before anything is sent to the bot.

Accepted forms::

    /morph dog cat frames:16 seed:3          positional values fill the required options in order,
                                             optional ones are always name:value
    /morph from:a red fox to:a cat           ``name:value``; an unquoted value runs until the next ``name:``
    /morph "a red fox" "a cat"               quotes keep several words together
    /morphadmin pause                        subcommands by name
    /morphadmin ban user:@Bob                users by @name, name or id
    /morph-images to:a cat                   files attached beside the command fill its attachment
                                             options in order (``files``: how many were attached)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot import i18n
from bot.i18n import N_

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "y", "on", "1"}, {"false", "no", "n", "off", "0"}


class CommandError(ValueError):
    """The typed text is not a valid command, as Discord's client would say it: ``message`` (a catalogue text)
    with its ``facts``; ``str(err)`` is it in English, :meth:`text` in the language of the member who typed it.
    Lists among the facts are shown as lists."""

    def __init__(self, message: str, /, **facts: object) -> None:
        self.message = message
        self.facts = facts
        super().__init__(self.text(None))

    def text(self, locale: object) -> str:
        tr = i18n.text(locale)
        shown = {k: tr._(", ").join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in self.facts.items()}
        return tr._(self.message, **shown)


@dataclass
class ParsedCommand:
    name: str  # top-level command, e.g. "morphadmin"
    options: dict = field(default_factory=dict)  # option name -> converted value (of the leaf command)
    path: list = field(default_factory=list)  # subcommand group/subcommand names, e.g. ["pause"]
    #: the attachment options the attached files fill, in the files' order
    attachments: list = field(default_factory=list)


# name:"quoted value" | name:value | "quoted" | bare
_TOKEN = re.compile(r'([A-Za-z_][\w-]*):(?:"([^"]*)"|(\S*))|"([^"]*)"|(\S+)')


def tokenize(text: str) -> list[tuple[str | None, str, bool]]:
    """Split into ``(key, value, quoted)``; key is None for positional tokens. An unclosed quote is an error."""
    if text.count('"') % 2:
        raise CommandError(N_('A quote is not closed: put multi-word prompts in "double quotes".'))
    out = []
    for m in _TOKEN.finditer(text):
        key, kq, kv, q, bare = m.groups()
        if key is not None:
            out.append((key, kq if kq is not None else kv, kq is not None))
        elif q is not None:
            out.append((None, q, True))
        else:
            out.append((None, bare, False))
    return out


def parse(text: str, commands: list[dict], members: dict[str, str] | None = None, files: int = 0) -> ParsedCommand:
    """Parse ``/name …`` against the synced ``commands``. ``members`` maps lower-case names to user ids;
    ``files``: how many files are attached, which fill the command's attachment options in declared order."""
    text = (text or "").strip()
    if not text.startswith("/"):
        raise CommandError(N_("Commands start with '/', e.g. /morph dog cat"))
    head, _, rest = text[1:].partition(" ")
    head = head.strip().lower()
    by_name = {c["name"]: c for c in commands if c.get("type", 1) == 1}
    if head not in by_name:
        if not by_name:
            raise CommandError(N_("Unknown command '/{name}'. Commands: none yet (the bot is still starting)"),
                               name=head)
        raise CommandError(N_("Unknown command '/{name}'. Commands: {commands}"), name=head,
                           commands=["/" + n for n in sorted(by_name)])
    cmd = by_name[head]
    tokens = tokenize(rest)
    options = cmd.get("options") or []
    path: list[str] = []
    # Walk down subcommand groups / subcommands: the first positional token names them.
    while options and all(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in options):
        subs = {o["name"]: o for o in options}
        if not tokens or tokens[0][0] is not None:
            raise CommandError(N_("{command} needs one of: {choices}"), command="/" + " ".join([head, *path]),
                               choices=list(subs))
        name = tokens.pop(0)[1].lower()
        if name not in subs:
            raise CommandError(N_("{command} has no '{name}'; use one of: {choices}"),
                               command="/" + " ".join([head, *path]), name=name, choices=list(subs))
        path.append(name)
        options = subs[name].get("options") or []
    full = "/" + " ".join([head, *path])
    slots = [o["name"] for o in options if o["type"] == ATTACHMENT]
    if files > len(slots):
        if not slots:
            raise CommandError(N_("{command} takes no files (none); {files} attached."), command=full, files=files)
        if len(slots) == 1:
            raise CommandError(N_("{command} takes 1 file ({slots}); {files} attached."), command=full, slots=slots,
                               files=files)
        raise CommandError(N_("{command} takes {count} files ({slots}); {files} attached."), command=full,
                           count=len(slots), slots=slots, files=files)
    attached = slots[:files]
    options = [o for o in options if o["type"] != ATTACHMENT or o["name"] in attached]
    by_opt = {o["name"]: o for o in options}
    raw: dict[str, str] = {}
    positional: list[str] = []
    open_key = None  # an unquoted name:value still collecting words
    unknown = []  # word:thing tokens that are not options: kept as text (a prompt may contain a colon)
    for key, value, quoted in tokens:
        if key is not None and key.lower() in by_opt:
            key = key.lower()
            if key in raw:
                raise CommandError(N_("{name} is given twice."), name=key)
            raw[key] = value
            # Only text options run on over several words; numbers, booleans and members are one word.
            open_key = key if not quoted and by_opt[key]["type"] == STRING and not by_opt[key].get("choices") \
                else None
            continue
        if key is not None:
            unknown.append(key)
            value = f'{key}:"{value}"' if quoted else f"{key}:{value}"
            quoted = False
        if open_key is not None and not quoted:
            raw[open_key] = (raw[open_key] + " " + value).strip()
        else:
            positional.append(value)
            open_key = None
    # Positional values fill the required options not given by name, in declared order; optional ones
    # always need name:value (as in Discord's client, where they are picked by name).
    free = [o["name"] for o in options if o["name"] not in raw and o.get("required") and o["type"] != ATTACHMENT]
    if len(positional) > len(free):
        extra = " ".join(positional[len(free):])
        if unknown:
            raise CommandError(N_("{command} has no option '{name}'. Options: {options}"), command=full,
                               name=unknown[0], options=list(by_opt) or ["-"])
        raise CommandError(N_("Too many values for {command} ('{extra}'). Put multi-word prompts in \"double "
                              "quotes\" or use name:value."), command=full, extra=extra)
    for name, value in zip(free, positional, strict=False):
        raw[name] = value
    typed = [name for name in raw if name in attached]
    if typed:
        raise CommandError(N_("{name} is a file: attach it (the + button, or drop it on the command box) instead "
                              "of typing it."), name=typed[0])
    unfilled = [o["name"] for o in cmd_options(cmd, path) if o["type"] == ATTACHMENT and o.get("required")
                and o["name"] not in attached]
    if unfilled:
        raise CommandError(N_("{command} needs a file for {names}: attach a picture (the + button, or drop it on "
                              "the command box)."), command=full, names=unfilled)
    missing = [o["name"] for o in options if o.get("required") and o["type"] != ATTACHMENT
               and not str(raw.get(o["name"], "")).strip()]
    if missing:
        raise CommandError(N_("{command} needs {names}. Usage: {usage}"), command=full, names=missing,
                           usage=usage(cmd, path))
    values = {name: _convert(by_opt[name], value, members or {}) for name, value in raw.items()}
    return ParsedCommand(head, values, path, attached)


def cmd_options(cmd: dict, path: list) -> list:
    """The options of ``cmd``'s (sub)command at ``path``."""
    return _leaf_options(cmd.get("options") or [], path)


def _convert(opt: dict, value: str, members: dict[str, str]) -> int | float | bool | str:
    name, kind = opt["name"], opt["type"]
    v: int | float | bool | str
    if kind in (INTEGER, NUMBER):
        try:
            v = int(value) if kind == INTEGER else float(value)
        except ValueError:
            message = N_("{name} must be a whole number (got '{value}').") if kind == INTEGER else \
                N_("{name} must be a number (got '{value}').")
            raise CommandError(message, name=name, value=value) from None
        lo, hi = opt.get("min_value"), opt.get("max_value")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise CommandError(N_("{name} must be between {low} and {high} (got {value})."), name=name, low=lo,
                               high=hi, value=value)
    elif kind == BOOLEAN:
        if value.lower() not in TRUE_WORDS | FALSE_WORDS:
            raise CommandError(N_("{name} must be true or false (got '{value}')."), name=name, value=value)
        v = value.lower() in TRUE_WORDS
    elif kind in (USER, MENTIONABLE):
        key = value.strip().lstrip("@").lower()
        m = re.fullmatch(r"<@!?(\d+)>", value.strip())
        if m:
            v = m.group(1)
        elif key.isdigit():
            v = key
        elif key in members:
            v = members[key]
        else:
            raise CommandError(N_("{name}: no member called '{value}'. Members: {members}"), name=name, value=value,
                               members=list(members) or ["-"])
    else:
        v = value
        lo, hi = opt.get("min_length"), opt.get("max_length")
        if lo is not None and len(v) < lo:
            raise CommandError(N_("{name} must be at least {low} characters."), name=name, low=lo)
        if hi is not None and len(v) > hi:
            raise CommandError(N_("{name} must be at most {high} characters (got {length})."), name=name, high=hi,
                               length=len(v))
    choices = opt.get("choices")
    if choices:
        allowed = {str(c["value"]).lower(): c["value"] for c in choices}
        allowed.update({str(c["name"]).lower(): c["value"] for c in choices})
        if str(v).lower() not in allowed:
            raise CommandError(N_("{name} must be one of: {choices}."), name=name,
                               choices=[str(c["name"]) for c in choices])
        v = allowed[str(v).lower()]
    return v


def _leaf_options(options: list, path: list) -> list:
    for name in path:
        options = next(o for o in options if o["name"] == name).get("options") or []
    return options


def _find(options: list, path: list, name: str) -> dict:
    return next(o for o in _leaf_options(options, path) if o["name"] == name)


def usage(cmd: dict, path: list | None = None) -> str:
    """One line such as ``/morph <from> <to> [frames] [seed] …`` for the help list."""
    path = path or []
    options = _leaf_options(cmd.get("options") or [], path)
    parts = ["/" + " ".join([cmd["name"], *path])]
    for o in options:
        if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP):
            continue
        parts.append(f"<{o['name']}>" if o.get("required") else f"[{o['name']}:]")
    return " ".join(parts)


def help_entries(commands: list[dict]) -> list[dict]:
    """Flatten the synced commands (with subcommands) into ``{"usage", "description", "descriptions", "admin"}``
    rows for the page (``descriptions``: the description in each language the bot synced, by Discord locale)."""
    rows = []

    def walk(cmd, options, path, description, descriptions):
        subs = [o for o in options if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        if not subs:
            rows.append({"usage": usage(cmd, path), "description": description or "", "descriptions": descriptions,
                         "admin": cmd.get("default_member_permissions") not in (None, "0", 0) or False,
                         "options": [{"name": o["name"], "description": o.get("description", ""),
                                      "required": bool(o.get("required"))} for o in options]})
        for s in subs:
            walk(cmd, s.get("options") or [], [*path, s["name"]], s.get("description", ""),
                 s.get("description_localizations") or {})

    for c in sorted(commands, key=lambda c: c["name"]):
        if c.get("type", 1) == 1:
            walk(c, c.get("options") or [], [], c.get("description", ""), c.get("description_localizations") or {})
    return rows


def option_schema(commands: list[dict], parsed: ParsedCommand, name: str) -> dict:
    """The synced definition of option ``name`` of the (sub)command ``parsed`` refers to."""
    cmd = next(c for c in commands if c["name"] == parsed.name and c.get("type", 1) == 1)
    return _find(cmd.get("options") or [], parsed.path, name)
