"""Users acting in the fake Discord: slash commands, autocomplete, clicks, selects, reactions, posts.

Each action checks what Discord's client would check (the command is offered, options are valid, the
component is there and enabled) and raises OptionRejected instead of sending; then it dispatches the
interaction or event to the bot's gateway sessions.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from fakediscord.interaction import FakeInteraction
from fakediscord.model import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_UPLOAD_LIMIT,
    INTERACTION_DEADLINE_S,
    Attachment,
    FakeMessage,
    OptionRejected,
    compute_pings,
)
from fakediscord.objects import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser
from fakediscord.state import DiscordState


def _option_names(kwargs: dict) -> dict:
    """Keyword options → option names: a trailing underscore is removed (``from_`` → ``from``)."""
    return {k[:-1] if k.endswith("_") else k: v for k, v in kwargs.items()}


def _command_data(cmd: dict, chain: list[dict], options: list[dict]) -> dict:
    """An application command interaction's ``data``: ``options`` wrapped in the subcommand ``chain``."""
    for sub in reversed(chain):
        options = [{"type": sub["type"], "name": sub["name"], "options": options}]
    data = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options}
    if cmd.get("guild_id"):
        data["guild_id"] = cmd["guild_id"]
    return data


class UserActions(DiscordState):
    """FakeDiscord's test API for users acting (a mixin: the state lives in FakeDiscord.__init__)."""

    def slash(self, user: FakeMember | FakeUser, name: str, /, *, in_channel: FakeChannel | None = None,
              upload_limit: int | None = None, strict: bool = True, options: dict | None = None,
              **kwargs: Any) -> FakeInteraction:
        """``user`` runs ``/name`` (``"morphadmin pause"`` for subcommands). Keyword options map to option
        names with a trailing underscore removed (``from_="dog"`` → ``from``); ``options={...}`` passes names
        verbatim. With ``strict`` the options are checked as Discord's client does (required, type, choices,
        min/max value and length) and OptionRejected is raised instead of sending. ``user`` and ``name`` are
        positional-only, so options called "user" or "name" work. Returns the interaction; ``await`` it for
        the first response."""
        guild, channel, cmd, target, chain = self._resolve_command(user, name, in_channel)
        given = {**_option_names(kwargs), **(options or {})}
        resolved: dict = {}
        built = self._build_options(name, target, given, strict, resolved, guild)
        data = _command_data(cmd, chain, built)
        if resolved:
            data["resolved"] = resolved
        it = self._inject(2, user, channel, data, None, upload_limit)
        dmp = cmd.get("default_member_permissions")
        if isinstance(user, FakeMember) and dmp is not None:
            need = int(dmp)
            it.command_hidden = (user.permissions_in(channel) & need) != need
        return it

    def autocomplete(self, user: FakeMember | FakeUser, name: str, focused: str, value: str = "", /, *,
                     in_channel: FakeChannel | None = None, **kwargs: Any) -> FakeInteraction:
        """``user`` is typing ``value`` into option ``focused`` of ``/name``: an autocomplete interaction
        (type 4). Keyword options are the ones already filled in, named as for :meth:`slash` (not checked:
        the user is still typing). ``await`` it; the offered choices are ``it.response["choices"]``."""
        guild, channel, cmd, target, chain = self._resolve_command(user, name, in_channel)
        declared = {o["name"]: o for o in target.get("options") or []}
        if focused not in declared or not declared[focused].get("autocomplete"):
            raise OptionRejected(f"/{name} option {focused!r} does not autocomplete")
        built = self._build_options(name, target, _option_names(kwargs), False, {}, guild)
        built.append({"type": declared[focused]["type"], "name": focused, "value": value, "focused": True})
        return self._inject(4, user, channel, _command_data(cmd, chain, built), None, None)

    def _resolve_command(self, user: FakeMember | FakeUser, name: str, in_channel: FakeChannel | None
                         ) -> tuple[FakeGuild | None, FakeChannel, dict, dict, list[dict]]:
        """Where ``user`` runs ``/name`` and what it runs: ``(guild, channel, command, target, chain)``, where
        ``target`` is the (sub)command whose options are filled in and ``chain`` the subcommand (group)s
        leading to it. Raises OptionRejected where Discord's client would not offer the command."""
        if isinstance(user, FakeMember):
            guild: FakeGuild | None = user.guild
            channel = in_channel or user.guild.default_channel
        else:
            guild, channel = None, in_channel or self.dm_channel(user)
        words = name.split()
        cmd = self.command(words[0], guild)
        if guild is None and (cmd.get("dm_permission") is False or 1 not in (cmd.get("contexts") or [0, 1, 2])):
            raise OptionRejected(f"/{words[0]} is a server-only command: Discord does not offer it in DMs")
        target = cmd
        chain: list[dict] = []
        for word in words[1:]:
            sub = next((o for o in target.get("options") or [] if o["name"] == word and o["type"] in (1, 2)), None)
            if sub is None:
                path = " ".join([cmd["name"]] + [c["name"] for c in chain])
                raise OptionRejected(f"/{name}: no subcommand {word!r} in /{path}")
            chain.append(sub)
            target = sub
        if any(o.get("type") in (1, 2) for o in target.get("options") or []):
            subs = [o["name"] for o in target["options"]]
            raise OptionRejected(f"/{name} needs a subcommand: {subs}")
        return guild, channel, cmd, target, chain

    def click(self, user: FakeMember | FakeUser, message: FakeMessage | int, custom_id: str) -> FakeInteraction:
        """``user`` clicks the button ``custom_id`` on ``message`` (it must be there and enabled)."""
        msg = self.message(message)
        comp = self._usable_component(user, msg, custom_id)
        if comp.get("type") != 2:
            raise OptionRejected(f"{custom_id!r} on message {msg.id} is not a button")
        return self._inject(3, user, self.channels[msg.channel_id], {"custom_id": custom_id, "component_type": 2},
                            msg, None)

    def select(self, user: FakeMember | FakeUser, message: FakeMessage | int, custom_id: str,
               values: Iterable[str]) -> FakeInteraction:
        """``user`` picks ``values`` in the select menu ``custom_id`` (must be offered options)."""
        msg = self.message(message)
        comp = self._usable_component(user, msg, custom_id)
        values = [str(v) for v in values]
        if comp.get("type") == 3:
            offered = [o["value"] for o in comp.get("options") or []]
            bad = [v for v in values if v not in offered]
            if bad:
                raise OptionRejected(f"select {custom_id!r} does not offer {bad} (offers {offered})")
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(values) <= hi:
            raise OptionRejected(f"select {custom_id!r} takes {lo}..{hi} values, got {len(values)}")
        return self._inject(3, user, self.channels[msg.channel_id],
                            {"custom_id": custom_id, "component_type": comp.get("type", 3), "values": values},
                            msg, None)

    def forge_component(self, user: FakeMember | FakeUser, message: FakeMessage | int, custom_id: str,
                        values: Iterable[str] | None = None) -> FakeInteraction:
        """A component interaction on ``message`` that its components need not offer: what a modified client can
        send (Discord does not check custom ids or select values against the message). ``values``: a select's."""
        msg = self.message(message)
        data: dict = {"custom_id": custom_id, "component_type": 2 if values is None else 3}
        if values is not None:
            data["values"] = [str(v) for v in values]
        return self._inject(3, user, self.channels[msg.channel_id], data, msg, None)

    def react(self, user: FakeMember | FakeUser, message: FakeMessage | int, emoji: str) -> asyncio.Future:
        """``user`` adds ``emoji`` to ``message`` → MESSAGE_REACTION_ADD. Returns a done future (awaitable)."""
        msg = self.message(message)
        if msg.deleted:
            raise OptionRejected(f"message {msg.id} was deleted")
        users = msg.reactions.setdefault(emoji, [])
        if user.id not in users:
            users.append(user.id)
            self._reaction_event("MESSAGE_REACTION_ADD", msg, user.id, emoji)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def unreact(self, user: FakeMember | FakeUser, message: FakeMessage | int, emoji: str) -> None:
        msg = self.message(message)
        if user.id in msg.reactions.get(emoji, []):
            msg.reactions[emoji].remove(user.id)
            self._reaction_event("MESSAGE_REACTION_REMOVE", msg, user.id, emoji)

    def post(self, user: FakeMember | FakeUser, channel: FakeChannel, content: str) -> FakeMessage:
        """A user writes a plain message (MESSAGE_CREATE; content only with the MESSAGE_CONTENT intent)."""
        author = user.user if isinstance(user, FakeMember) else user
        msg = FakeMessage(self.ids.next(), channel.id, channel.guild.id if channel.guild else None,
                          author.payload(), content=content, created_at=self.clock.time())
        msg.pings = compute_pings(content, None)
        self._store_new(msg)
        return msg

    # internals: building and injecting interactions -----------------------------------------------------
    def _build_options(self, cmd_name: str, target: dict, given: dict, strict: bool, resolved: dict,
                       guild: FakeGuild | None) -> list[dict]:
        declared = {o["name"]: o for o in target.get("options") or []}
        unknown = [k for k in given if k not in declared]
        if unknown:
            raise OptionRejected(f"/{cmd_name} has no option(s) {unknown}; it has {list(declared)}")
        out = []
        for oname, opt in declared.items():
            if oname not in given or given[oname] is None:
                if opt.get("required") and strict:
                    raise OptionRejected(f"/{cmd_name}: option {oname!r} is required")
                continue
            value = given[oname]
            otype = opt["type"]
            if strict:
                self._check_option(cmd_name, opt, value)
            if otype in (6, 7, 8, 9, 11):
                value = self._resolve_option(value, resolved, guild)
            out.append({"type": otype, "name": oname, "value": value})
        return out

    @staticmethod
    def _check_option(cmd_name: str, opt: dict, value: Any) -> None:
        name, otype = opt["name"], opt["type"]
        where = f"/{cmd_name} {name}={value!r}"
        if otype == 3:
            if not isinstance(value, str):
                raise OptionRejected(f"{where}: must be text")
            lo, hi = opt.get("min_length", 0), opt.get("max_length", 6000)
            if not lo <= len(value) <= hi:
                raise OptionRejected(f"{where}: length {len(value)} outside {lo}..{hi}")
        elif otype in (4, 10):
            ok = isinstance(value, int) if otype == 4 else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok:
                raise OptionRejected(f"{where}: must be {'a whole number' if otype == 4 else 'a number'}")
            if otype == 4 and abs(value) > 2**53:
                raise OptionRejected(f"{where}: beyond ±2^53")
            if opt.get("min_value") is not None and value < opt["min_value"]:
                raise OptionRejected(f"{where}: below min_value {opt['min_value']}")
            if opt.get("max_value") is not None and value > opt["max_value"]:
                raise OptionRejected(f"{where}: above max_value {opt['max_value']}")
        elif otype == 5 and not isinstance(value, bool):
            raise OptionRejected(f"{where}: must be true/false")
        elif otype == 11 and not isinstance(value, Attachment):
            raise OptionRejected(f"{where}: must be an uploaded file (FakeDiscord.upload)")
        choices = opt.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise OptionRejected(f"{where}: not one of the choices {[c['value'] for c in choices]}")

    def _resolve_option(self, value: Any, resolved: dict, guild: FakeGuild | None) -> str:
        if isinstance(value, FakeMember):
            resolved.setdefault("users", {})[str(value.id)] = value.user.payload()
            resolved.setdefault("members", {})[str(value.id)] = value.payload(with_user=False, permissions_in=None)
        elif isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            if guild and value.id in guild.members:
                resolved.setdefault("members", {})[str(value.id)] = guild.members[value.id].payload(
                    with_user=False, permissions_in=None)
        elif isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {**value.payload(),
                                                                  "permissions": str(ALL_PERMISSIONS)}
        elif isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        elif isinstance(value, Attachment):  # an ATTACHMENT option: FakeDiscord.upload(...)
            resolved.setdefault("attachments", {})[str(value.id)] = value.to_payload()
        else:
            raise OptionRejected(f"cannot send {value!r} as a user/channel/role/attachment option")
        return str(value.id)

    def _usable_component(self, user, msg: FakeMessage, custom_id: str) -> dict:
        if msg.deleted:
            raise OptionRejected(f"message {msg.id} was deleted")
        if msg.ephemeral and msg.interaction_user_id not in (None, user.id):
            raise OptionRejected(f"message {msg.id} is ephemeral: only its user can see it")
        comp = msg.component(custom_id)
        if comp is None:
            raise OptionRejected(f"message {msg.id} has no component {custom_id!r}; it has {msg.custom_ids()}")
        if comp.get("disabled"):
            raise OptionRejected(f"component {custom_id!r} is disabled")
        return comp

    def _inject(self, itype: int, user, channel: FakeChannel, data: dict, message: FakeMessage | None,
                upload_limit: int | None) -> FakeInteraction:
        if not self._sessions:
            raise RuntimeError("no bot has identified on the fake gateway yet (await fake.wait_until_ready())")
        member = user if isinstance(user, FakeMember) else None
        base_user = member.user if member else user
        guild = member.guild if member else None
        limit = upload_limit or (guild.upload_limit if guild else DEFAULT_UPLOAD_LIMIT)
        it = FakeInteraction(self, itype, base_user, member, channel, data, message, limit)
        self.interactions[it.id] = it
        payload: dict[str, Any] = {
            "id": str(it.id), "application_id": str(self.application_id), "type": itype, "data": data,
            "token": it.token, "version": 1, "locale": base_user.locale, "entitlements": [], "entitlement_sku_ids": [],
            "attachment_size_limit": limit, "channel_id": str(channel.id),
            "channel": {**channel.payload(),
                        "permissions": str(member.permissions_in(channel) if member else ALL_PERMISSIONS)},
            "app_permissions": str(guild.bot_member.permissions_in(channel) if guild else DEFAULT_BOT_PERMISSIONS),
            "authorizing_integration_owners": {"0": str(guild.id)} if guild else {"1": str(base_user.id)},
            "context": 0 if guild else 1,
        }
        if guild and member:
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {"id": str(guild.id), "locale": guild.preferred_locale, "features": []}
            payload["guild_locale"] = guild.preferred_locale
            payload["member"] = member.payload(permissions_in=channel)
        else:
            payload["user"] = base_user.payload()
        if message is not None:
            payload["message"] = message.to_payload()
        it.sent_at = self.clock.monotonic()
        self._dispatch("INTERACTION_CREATE", payload, guild_id=guild.id if guild else None)
        asyncio.get_running_loop().call_later(INTERACTION_DEADLINE_S + 0.01, self._check_deadlines)
        self._emit({"type": "interaction_create", "interaction_id": it.id, "kind": itype,
                    "user_id": base_user.id, "channel_id": channel.id, "data": data})
        return it
