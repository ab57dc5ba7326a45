"""``morph-bot`` / ``python -m bot``: run the Discord bot (or, with ``--playground``, the local playground)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import aiohttp
import discord

from bot.aio import stop_on_signals
from bot.startup import exit_with, setup_logging

log = logging.getLogger("bot")

NO_TOKEN = ("DISCORD_TOKEN is not set. Set DISCORD_TOKEN in .env (copy .env.example; the token is on the "
            "Bot page of your application at https://discord.com/developers/applications), "
            "or run `make run` for the local playground without Discord.")
BAD_TOKEN = ("Discord refused the token in DISCORD_TOKEN (login failed). Copy it again from the Bot page of "
             "your application (Reset Token), put it in .env, and start again.")


def cli() -> None:
    """The ``morph-bot`` command and ``python -m bot``: :func:`main`, then :func:`exit_with` its status."""
    exit_with(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="morph-bot", description="Discord bot that morphs one prompt into "
                                     "another. Settings come from the environment and .env (see .env.example).")
    parser.add_argument("--playground", action="store_true",
                        help="run the local playground (a fake Discord in the browser) instead of connecting")
    parser.add_argument("--no-worker", action="store_true",
                        help="the Discord front only: render workers run as morph-worker (same as MORPH_WORKER=0)")
    parser.add_argument("--auto", action="store_true",
                        help="the bot when DISCORD_TOKEN is set (environment or .env), else the playground "
                             "(what `make run` does)")
    args = parser.parse_args(argv)

    from bot.config import ConfigError

    try:
        playground, settings = choose_mode(playground=args.playground, auto=args.auto)
    except ConfigError as err:
        print(f"morph-bot: configuration error: {err}", file=sys.stderr)
        return 2
    if args.no_worker:
        settings = settings.replace(run_worker=False)
    setup_logging(settings.log_level)

    if playground:
        from bot.playground import run_playground

        return int(run_playground(settings) or 0)

    if not settings.discord_token:
        print(f"morph-bot: {NO_TOKEN}", file=sys.stderr)
        return 2
    return run_bot(settings)


def choose_mode(*, playground: bool, auto: bool, env=None, dotenv_path=".env"):
    """(run the playground?, its Settings). ``auto`` picks the playground exactly when the token, read the
    way the bot reads it (environment over .env), is empty. Raises ConfigError for bad settings."""
    from bot.config import Settings

    if auto and not playground:
        playground = not Settings.from_env(env, dotenv_path).discord_token
    return playground, Settings.from_env(env, dotenv_path, playground=playground)


def run_bot(settings) -> int:
    """Run the bot until SIGINT or SIGTERM (exit status 0) or a failure (1 or 2, with a message)."""
    from bot.bot import make_bot
    from bot.db import DatabaseUnusable, MigrationError
    from bot.endpoints import current_endpoints, use_discord_endpoints

    use_discord_endpoints(settings.api_base, settings.gateway_url)
    if settings.api_base or settings.gateway_url:
        log.info("using Discord endpoints %s and %s", *current_endpoints())

    if settings.shard_count is not None:
        ids = settings.shard_ids if settings.shard_ids is not None else range(settings.shard_count)
        log.info("running Discord shards %s of %d", ", ".join(map(str, ids)), settings.shard_count)

    async def runner() -> None:
        with stop_on_signals() as stopping:
            try:
                # Leaving this block closes the bot: a job being rendered goes back to the queue, attempts
                # unchanged. A signal during start-up or while running ends up here the same way.
                async with make_bot(settings) as bot:
                    await bot.start(settings.discord_token)
            except asyncio.CancelledError:
                if not stopping:
                    raise

    try:
        asyncio.run(runner())
    except discord.LoginFailure:
        print(f"morph-bot: {BAD_TOKEN}", file=sys.stderr)
        return 2
    except (MigrationError, DatabaseUnusable) as err:
        print(f"morph-bot: database error: {err}", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired as err:  # pragma: no cover - we ask for none
        print(f"morph-bot: {err}", file=sys.stderr)
        return 2
    except (aiohttp.ClientError, OSError) as err:
        print(f"morph-bot: cannot reach Discord at {current_endpoints()[0]}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # where signal handlers cannot be installed (Windows)
        pass
    except Exception as err:  # whatever it was, exit (a supervisor restarts us), never hang
        log.exception("morph-bot stopped on an unexpected error")
        print(f"morph-bot: stopped on an unexpected error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    cli()
