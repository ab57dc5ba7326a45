"""The Discord client: wires Store, Worker, Delivery, the use cases (Actions), cogs and persistent components
together. The only module that knows them all: none of them imports it."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import i18n, sharding
from bot import messages as msg
from bot.actions import Actions
from bot.cogs import AdminCog, ImagesCog, MorphCog
from bot.config import Settings
from bot.db import DatabaseUnavailable
from bot.delivery import Delivery
from bot.interactions import answer_unavailable, ephemeral, first_to_answer
from bot.safety import upload_check
from bot.startup import default_morpher_factory, log_safety_mode
from bot.translator import CatalogueTranslator
from bot.validation import warm_up_banned_words
from bot.views import DYNAMIC_ITEMS
from morph.request import MorphError

if TYPE_CHECKING:  # pragma: no cover
    from bot.worker import Worker

log = logging.getLogger(__name__)

# The bot has no voice features: silence discord.py's "PyNaCl/davey is not installed" start-up warnings.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False

#: Every OAuth2 scope the bot needs: ``bot`` (join the server as a bot user) and
#: ``applications.commands`` (register the slash commands).
SCOPES = ("bot", "applications.commands")


def bot_permissions() -> discord.Permissions:
    """The minimal channel permissions the invite asks for, and why:

    - View Channel: see the channel /morph is used in, so the bot can post results and read reactions there.
    - Send Messages: post the result message with the bot token (interaction tokens die after 15 min)
      and the replies to reaction picks.
    - Embed Links: the result message carries an embed showing the contact sheet of candidates.
    - Attach Files: the MP4 and/or GIF, the contact sheet and picked frames are file attachments.
    - Add Reactions: the bot adds 1️⃣..K to the result so people can pick by reacting.
    - Read Message History: reactions on (older, uncached) results are resolved by fetching the message,
      and delivery reads recent history to never post a result twice after a crash.

    Nothing else: no Manage Messages (the delete button deletes the bot's own message), no mentions,
    no privileged intents (no message content, no member list).
    """
    return discord.Permissions(view_channel=True, send_messages=True, embed_links=True, attach_files=True,
                               add_reactions=True, read_message_history=True)


def invite_url(client_id: int) -> str:
    """OAuth2 URL that adds the bot to a server with exactly :data:`SCOPES` and :func:`bot_permissions`."""
    return discord.utils.oauth_url(client_id, permissions=bot_permissions(), scopes=SCOPES)


def import_engine_libraries() -> None:
    """Import what loading a model needs (:func:`morph.engine.import_libraries`); call it in a thread."""
    from morph.engine import import_libraries

    import_libraries()


class MorphTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Only the first front to record an interaction answers it (see ``bot.interactions.first_to_answer``)."""
        return await first_to_answer(interaction)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        """Checks and user errors become an ephemeral message; anything else is logged with an apology."""
        original = getattr(error, "original", error)
        if isinstance(original, DatabaseUnavailable):  # the outage is logged once, by the database
            await answer_unavailable(interaction)
            return
        tr = i18n.text(interaction.locale)
        if isinstance(original, (app_commands.CheckFailure, MorphError)):
            text = (msg.error_text(original, interaction.locale) if isinstance(original, MorphError)
                    else str(original) or tr._("❌ You cannot use this command here."))
        elif isinstance(original, app_commands.TransformerError):  # a value Discord's client would not send
            text = tr._("❌ {value} is not a valid value for that option.", value=msg.safe(str(original.value), 100))
        else:
            log.error("command %s failed", getattr(interaction.command, "qualified_name", "?"), exc_info=original)
            text = tr._("❌ Something went wrong on the bot's side; it has been logged. Try again in a moment.")
        try:
            await ephemeral(interaction, text)
        except discord.HTTPException:
            pass


class MorphBot(commands.Bot):
    """``setup_hook`` (runs after login, before the gateway connects): open the Store (migrations), start
    loading the model in a thread (its libraries are imported before the gateway connects, its weights load
    while the bot serves), recover crashed jobs, build the use cases (:class:`~bot.actions.Actions`, also
    ``bot.actions``, where the components find them), register cogs and dynamic components, sync commands,
    start Delivery and Worker.

    ``start_worker=False`` (default: ``MORPH_WORKER``) runs the Discord front only: render workers run as
    ``morph-worker`` processes sharing the database. ``store`` injects
    an opened Store (not closed by the bot). Other keyword arguments go to ``commands.Bot``
    (e.g. ``guild_ready_timeout``). Sharded settings (DISCORD_SHARD_COUNT) need :class:`ShardedMorphBot`;
    :func:`make_bot` picks the right class.
    """

    def __init__(self, settings: Settings, *, morpher_factory: Callable[[], object] | None = None,
                 store=None, start_worker: bool | None = None, **options) -> None:
        if settings.shard_count is not None and not isinstance(self, discord.AutoShardedClient):
            raise TypeError("DISCORD_SHARD_COUNT is set: run ShardedMorphBot (make_bot(settings) picks it)")
        options.setdefault("intents", discord.Intents.default())  # no privileged intents
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        options.setdefault("help_command", None)
        options.setdefault("tree_cls", MorphTree)
        super().__init__(command_prefix=commands.when_mentioned, **options)
        self.settings = settings
        self.morpher_factory = morpher_factory or default_morpher_factory(settings)
        self.store = store
        self._own_store = store is None
        self.start_worker = settings.run_worker if start_worker is None else start_worker
        self.worker: Worker | None = None
        self.delivery: Delivery | None = None
        self.actions: Actions | None = None
        self.owner_id_set: frozenset[int] = frozenset(settings.owner_ids)
        self.invite: str | None = None

    async def setup_hook(self) -> None:
        from bot.store import Store
        from bot.worker import Worker, recover_own_jobs

        if self.store is None:
            self.store = await Store.open(self.settings.db_path, self.settings)
        self.delivery = Delivery(self, self.store, self.settings, owns_guild=self.owns_guild)
        log_safety_mode(self.settings)
        if self.start_worker:  # the model starts loading in a thread of its own (see Worker.preload)
            self.worker = Worker(self.store, self.morpher_factory, self.settings)
            libraries_imported = self.worker.preload(prepare=import_engine_libraries)
            # Take back only what this worker's previous run left running (we are its restart; see
            # recover_own_jobs). Jobs of other processes sharing the database are left to them, or recovered
            # by the worker loop once their heartbeat is stale.
            await recover_own_jobs(self.store, self.settings.worker_id)
        self.owner_id_set = frozenset(self.settings.owner_ids) | self._application_owners()
        self.actions = Actions(self.store, self.settings, self.delivery, worker=self.worker,
                               owner_ids=self.owner_id_set)
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        await self.tree.set_translator(CatalogueTranslator())  # command names and texts in every catalogue's language
        await asyncio.to_thread(warm_up_banned_words)  # its tables load here, not during the first /morph
        await self.add_cog(MorphCog(self, self.actions, self.store))
        await self.add_cog(ImagesCog(self, self.actions, self.store, safety=upload_check(self.settings)))
        await self.add_cog(AdminCog(self.actions, self.store))
        await self.sync_commands()
        await self.delivery.start()
        if self.worker is not None:
            await libraries_imported  # before the gateway connects; the weights load on while the bot serves
            await self.worker.start()
        if self.application_id:
            self.invite = invite_url(self.application_id)
            if self.settings.api_base is None:  # an invite link means nothing for the playground's fake
                print(f"Invite the bot with: {self.invite}", flush=True)
            log.info("invite URL: %s", self.invite)

    def owns_guild(self, guild_id: int | None) -> bool:
        """Whether this process runs the Discord shard of ``guild_id`` (None: a DM, shard 0), so it hears
        that guild and must be the one to deliver its jobs. Always true unsharded."""
        return sharding.owns_guild(guild_id, self.settings.shard_count, self.settings.shard_ids)

    def _application_owners(self) -> frozenset[int]:
        """Who owns the application on Discord: its owner; for a team-owned one, the team's owner and the
        members who accepted the invitation with the admin or developer role (as ``commands.Bot.is_owner``
        counts them). Read-only members and people only invited are not bot owners."""
        app = self.application
        if app is None:
            return frozenset()
        if app.team is not None:
            owners = {m.id for m in app.team.members
                      if m.membership_state is discord.TeamMembershipState.accepted
                      and m.role in (discord.TeamMemberRole.admin, discord.TeamMemberRole.developer)}
            return frozenset(owners | ({app.team.owner_id} if app.team.owner_id else set()))
        return frozenset([app.owner.id]) if app.owner else frozenset()

    async def sync_commands(self) -> None:
        """Globally, or to DEV_GUILD_ID (guild commands update instantly; global ones can take an hour)."""
        try:
            if self.settings.dev_guild_id:
                guild = discord.Object(id=self.settings.dev_guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), self.settings.dev_guild_id)
            else:
                synced = await self.tree.sync()
                log.info("synced %d global commands", len(synced))
        except discord.HTTPException as err:
            log.error("could not sync slash commands (%s); the previous registration stays in use", err)

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.delivery is not None:
            await self.delivery.stop()
        await super().close()
        if self.store is not None and self._own_store:
            await self.store.close()
            self.store = None

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d servers", self.user, getattr(self.user, "id", "?"), len(self.guilds))


class ShardedMorphBot(MorphBot, commands.AutoShardedBot):
    """MorphBot on Discord shards: runs shards ``settings.shard_ids`` (all when None) of
    ``settings.shard_count`` in this process, one gateway session each (discord.py's AutoShardedBot).
    Several such processes, each with its own shards, together hear every guild once."""

    def __init__(self, settings: Settings, **kwargs) -> None:
        if settings.shard_count is None:
            raise TypeError("ShardedMorphBot needs settings.shard_count (DISCORD_SHARD_COUNT)")
        kwargs.setdefault("shard_count", settings.shard_count)
        kwargs.setdefault("shard_ids", None if settings.shard_ids is None else list(settings.shard_ids))
        super().__init__(settings, **kwargs)


def make_bot(settings: Settings, **kwargs) -> MorphBot:
    """The bot the settings ask for: the plain single-session MorphBot, or ShardedMorphBot when
    DISCORD_SHARD_COUNT is set. Keyword arguments as for MorphBot."""
    cls = MorphBot if settings.shard_count is None else ShardedMorphBot
    return cls(settings, **kwargs)


if TYPE_CHECKING:  # pragma: no cover
    from bot.actions import ActionsStore
    from bot.cogs.admin import AdminStore
    from bot.cogs.morph import MorphCogStore
    from bot.delivery import DeliveryStore
    from bot.store import Store
    from bot.worker import WorkerStore

    def _store_serves_every_consumer(
            store: Store) -> tuple[DeliveryStore, WorkerStore, ActionsStore, MorphCogStore, AdminStore]:
        """Not run: mypy checks here that :class:`bot.store.Store` offers what each consumer's protocol names
        (each consumer is handed only the part of the Store it uses)."""
        return store, store, store, store, store
