from pathlib import Path

import pytest

from bot.config import DEFAULT_MODEL, ConfigError, Settings, parse_dotenv

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_anything():
    s = Settings.from_env({}, dotenv_path=None)
    assert s.discord_token == ""
    assert s.db_path == Path.cwd() / "data" / "morph.sqlite3"  # made absolute once, at start
    assert s.data_dir == Path.cwd() / "data" / "artifacts"
    assert s.model == DEFAULT_MODEL
    assert (s.max_user_active, s.max_guild_queue, s.cooldown_s) == (2, 20, 30.0)
    assert (s.default_frames, s.max_frames, s.default_steps, s.retention_days) == (24, 60, None, 14.0)
    assert s.api_base is None and s.gateway_url is None and s.owner_ids == () and s.dev_guild_id is None
    assert s.compile is False and s.loras == () and s.profile == "auto"


def test_playground_defaults_to_toy_unless_set():
    assert Settings.from_env({}, None, playground=True).model == "toy"
    assert Settings.from_env({"MORPH_MODEL": "my/model"}, None, playground=True).model == "my/model"


def test_environment_values_are_parsed():
    s = Settings.from_env({
        "DISCORD_TOKEN": " abc.def ", "MORPH_DB": "/tmp/x.db", "MORPH_DATA_DIR": "/tmp/art",
        "DEV_GUILD_ID": "123", "OWNER_IDS": "1, 2 3", "MORPH_MAX_USER_ACTIVE": "5",
        "MORPH_MAX_GUILD_QUEUE": "1_000", "MORPH_COOLDOWN_S": "2.5", "MORPH_DEFAULT_FRAMES": "10",
        "MORPH_MAX_FRAMES": "12", "MORPH_DEFAULT_STEPS": "4", "MORPH_RETENTION_DAYS": "0.5",
        "LOG_LEVEL": "debug", "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10/",
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gw", "MORPH_DEVICE": "cpu", "MORPH_COMPILE": "yes"}, None)
    assert s.discord_token == "abc.def"
    assert s.db_path == Path("/tmp/x.db") and s.data_dir == Path("/tmp/art")
    assert s.dev_guild_id == 123 and s.owner_ids == (1, 2, 3)
    assert (s.max_user_active, s.max_guild_queue, s.cooldown_s) == (5, 1000, 2.5)
    assert (s.default_frames, s.max_frames, s.default_steps, s.retention_days) == (10, 12, 4, 0.5)
    assert s.log_level == "DEBUG" and s.device == "cpu" and s.compile is True
    assert s.api_base == "http://127.0.0.1:9/api/v10" and s.gateway_url == "ws://127.0.0.1:9/gw"


@pytest.mark.parametrize("env, words", [
    ({"MORPH_MAX_USER_ACTIVE": "two"}, ["MORPH_MAX_USER_ACTIVE", "whole number", "'two'"]),
    ({"MORPH_MAX_USER_ACTIVE": "0"}, ["MORPH_MAX_USER_ACTIVE", "at least 1"]),
    ({"MORPH_MAX_GUILD_QUEUE": "1.5"}, ["MORPH_MAX_GUILD_QUEUE", "whole number"]),
    ({"MORPH_COOLDOWN_S": "abc"}, ["MORPH_COOLDOWN_S", "number"]),
    ({"MORPH_COOLDOWN_S": "-1"}, ["MORPH_COOLDOWN_S", "at least 0"]),
    ({"MORPH_COOLDOWN_S": "nan"}, ["MORPH_COOLDOWN_S", "finite"]),
    ({"MORPH_MAX_FRAMES": "500"}, ["MORPH_MAX_FRAMES", "at most 120"]),
    ({"MORPH_DEFAULT_FRAMES": "80"}, ["MORPH_DEFAULT_FRAMES", "MORPH_MAX_FRAMES"]),
    ({"MORPH_DEFAULT_STEPS": "0"}, ["MORPH_DEFAULT_STEPS"]),
    ({"MORPH_RETENTION_DAYS": "forever"}, ["MORPH_RETENTION_DAYS"]),
    ({"DEV_GUILD_ID": "my-server"}, ["DEV_GUILD_ID"]),
    ({"OWNER_IDS": "1,bob"}, ["OWNER_IDS", "'bob'"]),
    ({"LOG_LEVEL": "loud"}, ["LOG_LEVEL", "INFO"]),
    ({"DISCORD_API_BASE": "127.0.0.1:80"}, ["DISCORD_API_BASE", "http://"]),
    ({"DISCORD_GATEWAY_URL": "http://x"}, ["DISCORD_GATEWAY_URL", "ws://"]),
    ({"MORPH_COMPILE": "maybe"}, ["MORPH_COMPILE", "1 or 0", "'maybe'"]),
    ({"MORPH_PROFILE": "fast"}, ["MORPH_PROFILE", "turbo", "lcm", "'fast'"]),
    ({"MORPH_FORMAT": "webm"}, ["MORPH_FORMAT", "mp4, gif, both", "'webm'"]),
    ({"MORPH_LORAS": "styles/missing.safetensors:0.8"}, ["MORPH_LORAS", "no such file", "styles/missing.safetensors"]),
    ({"MORPH_LORAS": "ink.ckpt"}, ["MORPH_LORAS", ".safetensors"]),
])
def test_bad_values_raise_config_error_naming_the_variable(env, words):
    with pytest.raises(ConfigError) as e:
        Settings.from_env(env, None)
    for w in words:
        assert w in str(e.value)


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    p = tmp_path / ".env"
    p.write_text("# comment\n\nDISCORD_TOKEN='from file'\nexport MORPH_COOLDOWN_S=5  # seconds\n"
                 'MORPH_MAX_FRAMES="40"\nMORPH_MODEL=tiny\n')
    s = Settings.from_env({"MORPH_MODEL": "env/model"}, p)
    assert s.discord_token == "from file"
    assert s.cooldown_s == 5.0 and s.max_frames == 40
    assert s.model == "env/model"


def test_missing_dotenv_is_fine(tmp_path):
    assert Settings.from_env({}, tmp_path / "nope.env").model == DEFAULT_MODEL


def test_bad_dotenv_line_names_the_line(tmp_path):
    p = tmp_path / ".env"
    p.write_text("DISCORD_TOKEN=x\nthis is not a setting\n")
    with pytest.raises(ConfigError, match="line 2"):
        Settings.from_env({}, p)
    with pytest.raises(ConfigError, match="never closed"):
        parse_dotenv('A="open\n')


def test_settings_repr_hides_the_token():
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx7qZk.hidden-part-of-the-token"
    s = Settings(discord_token=token)
    for text in (repr(s), str(s), repr(s.replace(model="tiny"))):
        assert token not in text and "hidden" not in text, text
    assert "discord_token='<set>'" in repr(s) and "model=" in repr(s)  # still a useful repr
    assert "discord_token=''" in repr(Settings())  # an unset token is shown as unset
    assert s.discord_token == token  # only the repr hides it


@pytest.mark.parametrize("line, key", [
    ("DISCORD_TOKEN: MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx7qZk.hidden-part", "DISCORD_TOKEN"),
    ("export DISCORD_TOKEN MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx7qZk.hidden-part", "DISCORD_TOKEN"),
    ("MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx7qZk.hidden-part", None),
])
def test_malformed_dotenv_line_is_named_but_not_echoed(tmp_path, line, key):
    p = tmp_path / ".env"
    p.write_text(f"# my settings\nMORPH_MODEL=tiny\n{line}\n")
    with pytest.raises(ConfigError) as e:
        Settings.from_env({}, p)
    text = str(e.value)
    assert "hidden" not in text and "MTIz" not in text and "Gx7qZk" not in text, text
    assert f"{p}, line 3" in text and "KEY=value" in text
    if key:
        assert key in text


def test_env_example_lists_every_setting_and_parses():
    text = (ROOT / ".env.example").read_text()
    keys = parse_dotenv(text).keys()
    for key in ("DISCORD_TOKEN", "DEV_GUILD_ID", "OWNER_IDS", "MORPH_MODEL", "MORPH_DEVICE", "MORPH_DB",
                "MORPH_DATA_DIR", "MORPH_RETENTION_DAYS", "MORPH_MAX_USER_ACTIVE", "MORPH_MAX_GUILD_QUEUE",
                "MORPH_COOLDOWN_S", "MORPH_DEFAULT_FRAMES", "MORPH_MAX_FRAMES", "MORPH_DEFAULT_STEPS",
                "LOG_LEVEL", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "MORPH_WORKER_ID", "MORPH_LORAS",
                "MORPH_PROFILE", "MORPH_FORMAT"):
        assert key in keys
    # the example itself yields the defaults
    assert Settings.from_env({}, ROOT / ".env.example") == Settings.from_env({}, None)


def test_worker_id_defaults_to_the_host_name_and_is_checked():
    import socket

    assert Settings.from_env({}, None).worker_id == socket.gethostname() == Settings().worker_id
    assert Settings.from_env({"MORPH_WORKER_ID": "gpu-2"}, None).worker_id == "gpu-2"
    for bad in ("a/b", "two words", "x" * 201):
        with pytest.raises(ConfigError, match="MORPH_WORKER_ID"):
            Settings.from_env({"MORPH_WORKER_ID": bad}, None)


def test_playground_address_comes_from_dotenv_too(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PLAYGROUND_HOST=0.0.0.0\nPLAYGROUND_PORT=9000\n")
    s = Settings.from_env({}, dotenv)
    assert (s.playground_host, s.playground_port) == ("0.0.0.0", 9000)
    default = Settings.from_env({}, None)
    assert (default.playground_host, default.playground_port) == ("127.0.0.1", 8765)
    with pytest.raises(ConfigError, match="PLAYGROUND_PORT"):
        Settings.from_env({"PLAYGROUND_PORT": "70000"}, None)


def test_loras_and_profile(tmp_path):
    ink, film = tmp_path / "ink.safetensors", tmp_path / "film.safetensors"
    ink.write_bytes(b"x")
    film.write_bytes(b"x")
    s = Settings.from_env({"MORPH_LORAS": f" {ink}:0.8 , {film}", "MORPH_PROFILE": "LCM"}, None)
    assert s.loras == ((str(ink), 0.8), (str(film), 1.0)) and s.profile == "lcm"
    with pytest.raises(ConfigError, match="MORPH_LORAS.*weight after ':' must be a number"):
        Settings.from_env({"MORPH_LORAS": f"{ink}:strong"}, None)


def test_shard_settings_are_parsed_and_checked():
    s = Settings.from_env({}, None)
    assert s.shard_count is None and s.shard_ids is None  # unsharded: one gateway session, as always
    s = Settings.from_env({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "2, 0"}, None)
    assert (s.shard_count, s.shard_ids) == (4, (2, 0))
    s = Settings.from_env({"DISCORD_SHARD_COUNT": "3"}, None)
    assert (s.shard_count, s.shard_ids) == (3, None)  # every shard of the count in this process
    for env, words in [
        ({"DISCORD_SHARD_COUNT": "0"}, ["DISCORD_SHARD_COUNT", "at least 1"]),
        ({"DISCORD_SHARD_COUNT": "two"}, ["DISCORD_SHARD_COUNT", "whole number"]),
        ({"DISCORD_SHARD_IDS": "0"}, ["DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"]),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"}, ["between 0 and 1", "got 2"]),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "-1"}, ["DISCORD_SHARD_IDS", "'-1'"]),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "one"}, ["DISCORD_SHARD_IDS", "'one'"]),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": ",,"}, ["DISCORD_SHARD_IDS", "',,'"]),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,1"}, ["DISCORD_SHARD_IDS", "twice"]),
    ]:
        with pytest.raises(ConfigError) as e:
            Settings.from_env(env, None)
        for w in words:
            assert w in str(e.value), (env, str(e.value))
    assert {"DISCORD_SHARD_COUNT", "DISCORD_SHARD_IDS"} <= parse_dotenv((ROOT / ".env.example").read_text()).keys()


def test_the_database_password_never_shows():
    from bot.config import mask_secrets

    url = "postgresql://morph:s3cr3t@db.internal:5432/morph?password=hunter2&sslmode=verify-full"
    s = Settings.from_env({"MORPH_DB": url}, dotenv_path=None)
    assert s.db_path == url  # the bot still connects with it
    shown = repr(s)
    assert "s3cr3t" not in shown and "hunter2" not in shown and "postgresql://morph:***@db.internal" in shown
    assert "password=***" in shown and "sslmode=verify-full" in shown
    assert mask_secrets("auth failed for s3cr3t / hunter2", url) == "auth failed for *** / ***"


async def test_an_unreachable_database_error_does_not_show_the_password(tmp_path):
    from bot.db import DatabaseUnusable, open_database

    url = "postgresql://morph@127.0.0.1:1/morph?password=hunter2"
    with pytest.raises(DatabaseUnusable) as err:
        await open_database(url)
    assert "hunter2" not in str(err.value) and "password=***" in str(err.value)


@pytest.mark.parametrize("url", ["postgresql://morph@db:abc/morph", "postgresql://morph:pw@db:99999/morph"])
def test_a_port_that_is_not_a_number_is_a_clear_error(url):
    with pytest.raises(ConfigError, match="MORPH_DB: the port") as err:
        Settings.from_env({"MORPH_DB": url}, dotenv_path=None)
    assert ":pw@" not in str(err.value)


def test_a_lora_weight_far_out_of_range_is_refused(tmp_path):
    lora = tmp_path / "ink.safetensors"
    lora.write_bytes(b"x")
    with pytest.raises(ConfigError, match="MORPH_LORAS: .*weight must be a finite number between -10 and 10"):
        Settings.from_env({"MORPH_LORAS": f"{lora}:1e300"}, dotenv_path=None)
    assert Settings.from_env({"MORPH_LORAS": f"{lora}:0.8"}, dotenv_path=None).loras == ((str(lora), 0.8),)


@pytest.mark.parametrize(("url", "warned"), [
    ("postgresql://morph@db.example.org/morph", True),
    ("postgresql://morph@10.1.2.3:5432/morph", True),
    ("postgresql://morph@db.example.org/morph?sslmode=verify-full", False),
    ("postgresql://morph@127.0.0.1:5432/morph", False),
    ("postgresql://morph@localhost/morph", False),
    ("postgresql://morph@[::1]/morph", False),
    ("postgresql:///morph?host=/run/postgresql", False),
])
def test_a_remote_database_without_sslmode_is_warned_about(url, warned, monkeypatch):
    from bot.config import tls_warning

    monkeypatch.delenv("PGSSLMODE", raising=False)
    warning = tls_warning(url)
    assert (warning is not None) == warned
    if warned:
        assert "sslmode=verify-full" in warning
