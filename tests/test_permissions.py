"""``bot.permissions``: who may administer a server's queue and who may manage a job."""
from __future__ import annotations

import discord

from bot.permissions import can_admin, can_manage_job

GUILD, OTHER_GUILD, OWNER, ADMIN, MEMBER = 111, 222, 900, 901, 902

MANAGE = discord.Permissions(manage_guild=True)
ADMINISTRATOR = discord.Permissions(administrator=True)
NOTHING = discord.Permissions(send_messages=True, view_channel=True)


def test_non_admin_refused():
    assert not can_admin(user_id=MEMBER, permissions=NOTHING, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=GUILD)
    assert not can_admin(user_id=MEMBER, permissions=None, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=None)


def test_admin_of_own_guild_allowed_other_guild_refused():
    for perms in (MANAGE, ADMINISTRATOR, discord.Permissions.all()):
        assert can_admin(user_id=ADMIN, permissions=perms, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=GUILD)
        assert can_admin(user_id=ADMIN, permissions=perms, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=None)
        assert not can_admin(user_id=ADMIN, permissions=perms, owner_ids={OWNER}, caller_guild_id=GUILD,
                             target_guild_id=OTHER_GUILD)
    # Manage Server outside a guild (a DM) is no admin at all
    assert not can_admin(user_id=ADMIN, permissions=MANAGE, owner_ids=set(), caller_guild_id=None,
                         target_guild_id=None)


def test_owner_allowed_everywhere():
    assert can_admin(user_id=OWNER, permissions=NOTHING, owner_ids={OWNER}, caller_guild_id=GUILD,
                     target_guild_id=OTHER_GUILD)
    assert can_admin(user_id=OWNER, permissions=None, owner_ids={OWNER}, caller_guild_id=None,
                     target_guild_id=OTHER_GUILD)


def test_job_management_rights():
    kw = dict(job_user_id=MEMBER, job_guild_id=GUILD, owner_ids={OWNER}, caller_guild_id=GUILD)
    assert can_manage_job(user_id=MEMBER, permissions=NOTHING, **kw)  # author
    assert not can_manage_job(user_id=903, permissions=NOTHING, **kw)  # someone else
    assert can_manage_job(user_id=ADMIN, permissions=MANAGE, **kw)  # admin of the job's guild
    assert not can_manage_job(user_id=ADMIN, permissions=MANAGE, **{**kw, "caller_guild_id": OTHER_GUILD})
    assert can_manage_job(user_id=OWNER, permissions=NOTHING, **{**kw, "caller_guild_id": OTHER_GUILD})
