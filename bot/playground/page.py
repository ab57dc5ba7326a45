"""What the playground page shows, in the page's JSON shape: members, messages, commands, the queue panel.

Reads of the fake Discord (and, for the queue panel, of the bot's Store); app.js renders the result. URLs
of attachments point at the playground's own ``/attachments/`` route.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.i18n import N_, text
from bot.jobs import ACTIVE_STATES, STATES
from fakediscord import FakeDiscord, FakeGuild, FakeMember, FakeMessage
from fakediscord.model import LOADING, permissions_value

#: Jobs shown in the queue panel: active ones first, then the most recent finished ones.
QUEUE_LIMIT = 12
MEMBER_COLORS = ("#eb459e", "#3ba55c", "#faa61a", "#ed4245", "#9b59b6", "#1abc9c")
BOT_COLOR = "#5865f2"
#: Members with this permission are shown as admins (what /morphadmin needs).
ADMIN_BITS = permissions_value("manage_guild")
#: The page's own words (``data-ui`` keys of index.html and app.js), in the catalogue like every text of the bot:
#: the page is a Discord client, so it speaks the language of the member it acts as.
PAGE_TEXTS = {
    "text-channels": N_("Text channels"),
    "acting-as": N_("Acting as"),
    "topic": N_("Type /morph and two prompts — the real bot answers through a local fake Discord"),
    "composer": N_("Message #morph"),
    "hint": N_("Enter sends · Tab completes · ↑ previous command · quote multi-word prompts: "
               "/morph \"a red fox\" \"a cat\""),
    "queue": N_("Queue"),
    "members": N_("Members"),
    "commands": N_("Commands"),
    "no-jobs": N_("No jobs yet. Type a /morph command below."),
    "admin-role": N_("Admin · Manage Server"),
    "member-role": N_("Member"),
    "live": N_("live"),
    "reconnecting": N_("reconnecting…"),
}


def page_texts(locale: object) -> dict[str, str]:
    """:data:`PAGE_TEXTS` in the language of ``locale`` (the member the page acts as)."""
    tr = text(locale)
    return {key: tr._(message) for key, message in PAGE_TEXTS.items()}


class PageView:
    """The channels of ``guild`` the page shows (``channel`` first, then ``others``) as the playground's
    ``members`` see them (each member has a colour)."""

    def __init__(self, fake: FakeDiscord, guild: FakeGuild, channel, members: list[FakeMember],
                 others: list | None = None) -> None:
        self.fake, self.guild, self.channel = fake, guild, channel
        self.channels = [channel, *(others or [])]
        self.members = list(members)
        self.colors = {m.id: MEMBER_COLORS[i % len(MEMBER_COLORS)] for i, m in enumerate(self.members)}

    def member_rows(self) -> list[dict]:
        rows = [{"id": str(m.id), "name": m.name, "admin": bool(m.permissions_in(self.channel) & ADMIN_BITS),
                 "bot": False, "color": self.colors[m.id], "locale": m.user.locale} for m in self.members]
        rows.append({"id": str(self.fake.bot_user.id), "name": self.fake.bot_user.name, "admin": False,
                     "bot": True, "color": BOT_COLOR, "locale": None})
        return rows

    def channel_rows(self) -> list[dict]:
        """The channels a member can switch between; ``nsfw``: Discord marks it age-restricted."""
        return [{"id": str(c.id), "name": c.name, "nsfw": bool(c.nsfw)} for c in self.channels]

    def find_channel(self, channel_id) -> object:
        """The shown channel ``channel_id`` names (None or empty: the first)."""
        if channel_id in (None, ""):
            return self.channel
        for c in self.channels:
            if str(c.id) == str(channel_id):
                return c
        raise KeyError(channel_id)

    def visible_to(self, msg: FakeMessage, user_id: int) -> bool:
        return any(msg.channel_id == c.id for c in self.channels) and not msg.deleted and (
            not msg.ephemeral or msg.interaction_user_id == user_id)

    def page_message(self, msg: FakeMessage) -> dict:
        """A message in the page's shape (see app.js ``renderMessage``); attachment URLs point here."""
        p = msg.to_payload()
        author = p["author"]
        uid = int(author["id"])
        attachments, embedded = [], set()
        by_name = {a.filename: a for a in msg.attachments}
        embeds = []
        for e in p.get("embeds") or []:
            e = dict(e)
            for key in ("image", "thumbnail"):
                if isinstance(e.get(key), dict) and e[key].get("url"):
                    url = e[key]["url"]
                    if url.startswith("attachment://") and url[13:] in by_name:
                        embedded.add(url[13:])
                        att = by_name[url[13:]]
                        e[key] = {k: v for k, v in att.to_payload().items() if k in ("width", "height")}
                        e[key]["url"] = self._attachment_url(att)
                    elif not url.startswith(("http://", "https://")):
                        e.pop(key)
            embeds.append(e)
        for a in msg.attachments:
            if a.filename in embedded:
                continue  # Discord shows an attachment used by an embed inside the embed only
            row = a.to_payload()
            row["url"] = row["proxy_url"] = self._attachment_url(a)
            attachments.append(row)
        interaction = None
        reference_id = (p.get("message_reference") or {}).get("message_id")
        it = self.fake.interactions.get(msg.interaction_id) if msg.interaction_id else None
        if it is not None:
            if it.type == 3 and it.message is not None and not reference_id:
                reference_id = str(it.message.id)  # a reply to a button/menu shows above the message it came from
            elif it.type == 2:
                interaction = {"name": " ".join(_command_path(it.data)), "user_name": it.user.name}
        content = p.get("content") or ""
        if msg.flags & LOADING:
            content = f"*{author.get('username', 'The bot')} is thinking…*"
        reactions = [{"emoji": emoji, "count": len(users), "users": [str(u) for u in users]}
                     for emoji, users in msg.reactions.items() if users]
        return {
            "id": str(msg.id), "channel_id": str(msg.channel_id),
            "author": {"id": str(uid), "name": author.get("global_name") or author.get("username") or "?",
                       "bot": bool(author.get("bot")),
                       "color": BOT_COLOR if author.get("bot") else self.colors.get(uid)},
            "content": content, "timestamp": p.get("timestamp"), "edited_timestamp": p.get("edited_timestamp"),
            "embeds": embeds, "attachments": attachments, "components": p.get("components") or [],
            "reactions": reactions, "ephemeral": msg.ephemeral,
            "for_user": str(msg.interaction_user_id) if msg.ephemeral and msg.interaction_user_id else None,
            "reference_id": str(reference_id) if reference_id else None, "interaction": interaction,
            "loading": bool(msg.flags & LOADING),
        }

    @staticmethod
    def _attachment_url(a) -> str:
        return f"/attachments/{a.id}/{a.filename}"

    def channel_messages(self, user_id: int, channel=None) -> list[dict]:
        msgs = self.fake.messages.get((channel or self.channel).id, [])
        return [self.page_message(m) for m in msgs if self.visible_to(m, user_id)]

    def synced_commands(self) -> list[dict]:
        """Commands the bot synced: guild ones shadow global ones of the same name."""
        out: dict[str, dict] = {}
        for scope in (None, self.guild.id):
            for c in self.fake.commands.get(scope, []):
                out[c["name"]] = c
        return list(out.values())


def _command_path(data: dict) -> list[str]:
    """``["morphadmin", "pause"]`` from an interaction's ``data`` (name plus subcommand names)."""
    out = [data.get("name", "")]
    options = data.get("options") or []
    while options and options[0].get("type") in (1, 2):
        out.append(options[0]["name"])
        options = options[0].get("options") or []
    return out


def store_jobs(store_of: Callable[[], Any], guild_id: int, users: dict[int, str]):
    """A ``jobs`` callable for :class:`PlaygroundServer` that reads the bot's Store (``store_of()``)."""

    async def jobs() -> list[dict]:
        store = store_of()
        if store is None:
            return []
        active = await store.list_jobs(guild_id, states=ACTIVE_STATES, limit=QUEUE_LIMIT)
        done = await store.list_jobs(guild_id, states=[s for s in STATES if s not in ACTIVE_STATES],
                                     limit=max(0, QUEUE_LIMIT - len(active)))
        places = {job.id: place for job, place, _paused in await store.queued_positions()} if active else {}
        rows = []
        for job in sorted(active, key=lambda j: j.id) + done:
            request = job.request
            prompts = list(request.prompts)
            rows.append({"id": job.id, "state": job.state, "position": places.get(job.id),
                         "user_name": users.get(job.user_id, str(job.user_id)),
                         "prompts": prompts + prompts[:1] if request.loop else prompts,
                         "frames": request.frames, "error": job.error})
        return rows

    return jobs
