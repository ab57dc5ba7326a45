"""Which shard a guild is on (Discord's formula) and which guilds a bot process owns."""
import pytest

from bot.bot import MorphBot, ShardedMorphBot, make_bot
from bot.config import Settings
from bot.sharding import owns_guild, shard_of


def guild_id(timestamp_ms: int, low_bits: int = 0) -> int:
    return (timestamp_ms << 22) | low_bits


def test_shard_of_is_discords_formula():
    # the timestamp bits decide, the low 22 bits (worker, process, counter) do not
    assert [shard_of(guild_id(ms, 0x3FFFFF), 4) for ms in range(6)] == [0, 1, 2, 3, 0, 1]
    # a real guild id: 41771983423143937 >> 22 == 9959216934
    assert [shard_of(41771983423143937, n) for n in (1, 2, 4, 5, 16)] == [0, 0, 2, 4, 6]
    assert shard_of(str(41771983423143937), 16) == 6  # ids as Discord's JSON gives them
    assert shard_of(None, 8) == 0  # DMs are on shard 0
    with pytest.raises(ValueError, match="shard_count"):
        shard_of(1, 0)


def test_owns_guild_unsharded_all_or_only_the_listed_shards():
    g = [guild_id(ms) for ms in range(4)]  # on shards 0, 1, 0, 1 of 2
    assert all(owns_guild(x, None, None) for x in g) and owns_guild(None, None, None)
    assert all(owns_guild(x, 2, None) for x in g)  # every shard of the count in this process
    assert [owns_guild(x, 2, (1,)) for x in g] == [False, True, False, True]
    assert [owns_guild(x, 2, [0]) for x in g] == [True, False, True, False]
    assert owns_guild(None, 2, (0,)) and not owns_guild(None, 2, (1,))


def test_make_bot_runs_the_configured_shards(tmp_path):
    plain = Settings(db_path=tmp_path / "db", data_dir=tmp_path / "a")
    bot = make_bot(plain)
    assert type(bot) is MorphBot and bot.owns_guild(guild_id(1)) and bot.owns_guild(None)

    sharded = plain.replace(shard_count=2, shard_ids=(1,))
    bot = make_bot(sharded)
    assert isinstance(bot, ShardedMorphBot) and (bot.shard_count, bot.shard_ids) == (2, [1])
    assert [bot.owns_guild(guild_id(ms)) for ms in range(4)] == [False, True, False, True]
    assert not bot.owns_guild(None)
    everything = make_bot(plain.replace(shard_count=3))
    assert everything.shard_count == 3 and everything.shard_ids is None

    with pytest.raises(TypeError, match="ShardedMorphBot"):
        MorphBot(sharded)  # a plain bot would silently hear every shard's guilds
    with pytest.raises(TypeError, match="DISCORD_SHARD_COUNT"):
        ShardedMorphBot(plain)
