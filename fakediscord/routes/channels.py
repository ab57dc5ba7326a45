"""REST handlers for channels: messages (history, send, edit, delete, bulk delete), typing, reactions, DMs.

Each checks the bot's permissions in the channel as Discord does (50001 Missing Access, 50013 Missing
Permissions) and that it edits only its own messages (50005).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fakediscord.model import DEFAULT_UPLOAD_LIMIT, IS_COMPONENTS_V2, ApiError, FakeMessage
from fakediscord.objects import P
from fakediscord.state import DiscordState

if TYPE_CHECKING:
    from fakediscord.objects import FakeChannel


class ChannelRoutes(DiscordState):
    """A mixin of FakeDiscord (the state lives in FakeDiscord.__init__)."""

    async def _r_channel(self, req, cid):
        return self._channel(cid).payload()

    async def _r_channel_messages(self, req, cid):
        ch = self._channel(cid)
        if req.method == "GET":
            self._require(ch, "read_message_history")
            limit = int(req.query.get("limit", 50))
            if not 1 <= limit <= 100:
                raise ApiError(400, 50035, "Invalid Form Body", rule="history limit outside 1..100")
            msgs = [m for m in self._by_channel[ch.id] if not m.deleted and not m.ephemeral]
            if "before" in req.query:
                msgs = [m for m in msgs if m.id < int(req.query["before"])]
            if "after" in req.query:
                msgs = [m for m in msgs if m.id > int(req.query["after"])]
                return [m.to_payload() for m in reversed(msgs[:limit])]
            return [m.to_payload() for m in reversed(msgs[-limit:])]
        body = req.json if isinstance(req.json, dict) else {}
        need = ["send_messages"] + (["attach_files"] if req.files else [])
        self._require(ch, *need)
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            for m in reversed(self._by_channel[ch.id]):
                if m.nonce == body["nonce"] and self.clock.time() - m.created_at < 300 and not m.deleted:
                    return m.to_payload()  # Discord returns the earlier message instead of a duplicate
        ref = body.get("message_reference")
        msg_type = 0
        if ref:
            target = self._messages.get(int(ref.get("message_id", 0)))
            if target is None or target.deleted:
                if ref.get("fail_if_not_exists", True):
                    raise ApiError(400, 50035, "Invalid Form Body", rule="reply to an unknown message")
                ref = None
            else:
                msg_type = 19
        upload_limit = ch.guild.upload_limit if ch.guild else DEFAULT_UPLOAD_LIMIT
        msg = self._new_message(ch, body, req.files, upload_limit=upload_limit,
                                flags_allowed=(1 << 2) | (1 << 12) | IS_COMPONENTS_V2, msg_type=msg_type)
        if ref:
            msg.message_reference = {"message_id": str(ref["message_id"]), "channel_id": str(ch.id),
                                     **({"guild_id": str(ch.guild.id)} if ch.guild else {})}
        self._store_new(msg)
        return msg.to_payload()

    async def _r_channel_message(self, req, cid, mid):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        if req.method == "GET":
            self._require(ch, "read_message_history")
            return msg.to_payload()
        # The bot's own messages, including its non-ephemeral interaction responses and followups
        # (Discord lets a bot that is in the guild edit those with its token after the 15 minutes).
        mine = int(msg.author["id"]) == self.bot_user.id
        if req.method == "DELETE":
            if not mine:
                self._require(ch, "manage_messages")
            self._delete_message(msg)
            return None
        if not mine:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user",
                           rule="edit of someone else's message")
        body = req.json if isinstance(req.json, dict) else {}
        upload_limit = ch.guild.upload_limit if ch.guild else DEFAULT_UPLOAD_LIMIT
        self._edit_message(msg, body, req.files, upload_limit=upload_limit)
        return msg.to_payload()

    async def _r_bulk_delete(self, req, cid):
        ch = self._channel(cid)
        self._require(ch, "manage_messages")
        ids = (req.json or {}).get("messages") or []
        if not 2 <= len(ids) <= 100:
            raise ApiError(400, 50035, "Invalid Form Body", rule="bulk delete needs 2..100 ids")
        for mid in ids:
            self._delete_message(self._msg_in(ch, mid))
        return None

    async def _r_typing(self, req, cid):
        self._require(self._channel(cid), "send_messages")
        return None

    # reactions ------------------------------------------------------------------------------------------
    async def _r_reaction(self, req, cid, mid, emoji, who):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        if req.method == "PUT":
            if who != "@me":
                raise ApiError(405, 0, "405: Method Not Allowed", rule="bots can only add their own reactions")
            if re.fullmatch(r"[A-Za-z0-9_ ]+", emoji):
                raise ApiError(400, 10014, "Unknown Emoji", rule=f"not an emoji: {emoji!r}")
            self._require(ch, "read_message_history")
            if emoji not in msg.reactions or not msg.reactions[emoji]:
                self._require(ch, "add_reactions")
                if sum(1 for u in msg.reactions.values() if u) >= 20:
                    raise ApiError(400, 30010, "Maximum number of reactions reached (20)",
                                   rule="more than 20 reactions")
            users = msg.reactions.setdefault(emoji, [])
            if self.bot_user.id not in users:
                users.append(self.bot_user.id)
                self._reaction_event("MESSAGE_REACTION_ADD", msg, self.bot_user.id, emoji)
            return None
        uid = self.bot_user.id if who == "@me" else int(who)
        if uid != self.bot_user.id:
            self._require(ch, "manage_messages")
        if uid in msg.reactions.get(emoji, []):
            msg.reactions[emoji].remove(uid)
            self._reaction_event("MESSAGE_REACTION_REMOVE", msg, uid, emoji)
        return None

    async def _r_reactions_emoji(self, req, cid, mid, emoji):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        if req.method == "GET":
            return [self.users[u].payload() for u in msg.reactions.get(emoji, []) if u in self.users]
        self._require(ch, "manage_messages")
        msg.reactions.pop(emoji, None)
        return None

    async def _r_reactions_all(self, req, cid, mid):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        self._require(ch, "manage_messages")
        msg.reactions.clear()
        return None

    # direct messages ------------------------------------------------------------------------------------
    async def _r_dm(self, req):
        user = self.users.get(int((req.json or {}).get("recipient_id", 0)))
        if user is None:
            raise ApiError(400, 50035, "Invalid Form Body", rule="DM to an unknown user")
        return self.dm_channel(user).payload()

    # lookups and permission checks ---------------------------------------------------------------------------
    def _channel(self, cid) -> FakeChannel:
        ch = self.channels.get(int(cid))
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel", rule=f"unknown channel {cid}")
        return ch

    def _require(self, ch: FakeChannel, *perm_names: str) -> None:
        if ch.guild is None:
            return
        perms = ch.guild.bot_member.permissions_in(ch)
        if not perms & P["view_channel"]:
            raise ApiError(403, 50001, "Missing Access", rule=f"bot cannot see #{ch.name}")
        missing = [p for p in perm_names if not perms & P[p]]
        if missing:
            raise ApiError(403, 50013, "Missing Permissions", rule=f"bot lacks {missing} in #{ch.name}")

    def _msg_in(self, ch: FakeChannel, mid) -> FakeMessage:
        msg = self._messages.get(int(mid))
        if msg is None or msg.channel_id != ch.id or msg.deleted or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message", rule=f"unknown message {mid}")
        return msg
