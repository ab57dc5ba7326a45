"""Who may do what, decided by the bot itself (``default_permissions`` is only a hint admins can change).

- A *guild admin* has Manage Server or Administrator in the interaction's computed permissions
  (``interaction.permissions``; Discord sends the channel-level total, so an Administrator arrives
  with every bit set, but we also accept the administrator bit alone).
- A guild admin acts only on their own guild: a job or setting of another guild is refused.
- A *bot owner* (``OWNER_IDS`` plus the application's owner/team) may act on every guild.
"""
from __future__ import annotations

from collections.abc import Collection

import discord


def is_guild_admin(permissions: discord.Permissions | None) -> bool:
    return permissions is not None and bool(permissions.administrator or permissions.manage_guild)


def can_admin(*, user_id: int, permissions: discord.Permissions | None, owner_ids: Collection[int],
              caller_guild_id: int | None, target_guild_id: int | None) -> bool:
    """May this caller use admin powers on ``target_guild_id`` (None = the caller's own guild)?"""
    if user_id in owner_ids:
        return True
    if caller_guild_id is None or not is_guild_admin(permissions):
        return False
    return target_guild_id is None or int(target_guild_id) == int(caller_guild_id)


def can_manage_job(*, user_id: int, job_user_id: int, job_guild_id: int | None,
                   permissions: discord.Permissions | None, owner_ids: Collection[int],
                   caller_guild_id: int | None) -> bool:
    """The job's author, an admin of the job's guild, or a bot owner."""
    if user_id == job_user_id:
        return True
    if job_guild_id is None:
        return user_id in owner_ids
    return can_admin(user_id=user_id, permissions=permissions, owner_ids=owner_ids,
                     caller_guild_id=caller_guild_id, target_guild_id=job_guild_id)
