"""Each consumer of the Store names the part it uses in a protocol (mypy checks Store against them in
bot/bot.py); here: every member exists on the Store with the same parameters, and no protocol is the
whole Store."""
from __future__ import annotations

import inspect

import pytest

from bot.actions import ActionsStore
from bot.cogs.admin import AdminStore
from bot.cogs.morph import MorphCogStore
from bot.delivery import DeliveryStore
from bot.store import Store
from bot.worker import WorkerStore

PROTOCOLS = [DeliveryStore, WorkerStore, ActionsStore, MorphCogStore, AdminStore]


def members(proto) -> list[str]:
    return sorted(n for n in vars(proto) if not n.startswith("_"))


def public_methods(cls) -> set[str]:
    return {n for n, v in inspect.getmembers(cls) if not n.startswith("_") and callable(v)}


@pytest.mark.parametrize("proto", PROTOCOLS, ids=lambda p: p.__name__)
def test_the_store_offers_each_member_with_the_same_parameters(proto):
    for name in members(proto):
        wanted = getattr(proto, name)
        if isinstance(wanted, property):
            continue  # an attribute of the Store instance (db, artifacts)
        have = getattr(Store, name, None)
        assert have is not None, f"{proto.__name__}.{name} is not a Store method"
        assert list(inspect.signature(have).parameters) == list(inspect.signature(wanted).parameters), name
        assert inspect.iscoroutinefunction(have) == inspect.iscoroutinefunction(wanted), name


def test_every_consumer_gets_a_small_part():
    whole = public_methods(Store)
    assert len(whole) > 35
    for proto in PROTOCOLS:
        assert len(members(proto)) <= len(whole) // 2, proto.__name__
