"""The local playground: the real bot against a fake Discord, shown as a Discord-like page in the browser.

``morph-bot --playground`` (and ``make run`` without a DISCORD_TOKEN) calls :func:`run_playground`.
Tests use :class:`Playground` (``async with Playground(settings, port=0) as pg: pg.url``).
"""
from bot.playground.app import Playground, load_morpher, run_playground

__all__ = ["Playground", "load_morpher", "run_playground"]
