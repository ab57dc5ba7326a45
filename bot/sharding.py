"""Which Discord shard a guild is on, and whether this process runs it.

Discord sends a guild's events (interactions included) only to the gateway sessions of the guild's shard,
``(guild_id >> 22) % shard_count``; DMs go to shard 0 (https://discord.com/developers/docs/events/gateway#sharding).
A front process running some shards therefore hears only those guilds, and is the one that must deliver,
edit and reposition their jobs.
"""
from __future__ import annotations

from collections.abc import Iterable


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard of ``guild_id`` among ``shard_count`` shards; ``None`` (a DM) is shard 0."""
    if shard_count < 1:
        raise ValueError(f"shard_count must be at least 1 (got {shard_count})")
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


def owns_guild(guild_id: int | None, shard_count: int | None, shard_ids: Iterable[int] | None) -> bool:
    """Whether a process running shards ``shard_ids`` of ``shard_count`` gets ``guild_id``'s events.

    ``shard_count`` None (unsharded) or ``shard_ids`` None (every shard of the count): always true.
    """
    if shard_count is None or shard_ids is None:
        return True
    return shard_of(guild_id, shard_count) in set(shard_ids)
