"""Scenario 6: bad input through the real command path → an ephemeral error, nothing enqueued, no ping.

Two layers: what Discord's client refuses to send at all (the option limits the bot declared: min/max
length and value), and what reaches the bot and must be refused by it (also the client-refused values
sent anyway with ``strict=False``, as a modified client could).
"""
from __future__ import annotations

import pytest
from e2e_helpers import job_id_of

from fakediscord import OptionRejected

ALL_STATES = ["queued", "running", "rendered", "delivered", "failed", "cancelled"]

# (options, words expected in the refusal)
REACHES_THE_BOT = [
    (dict(from_="   ", to="a cat"), ["empty"]),
    (dict(from_="a dog", to="\t \n"), ["empty"]),
    (dict(from_="<@123456789012345678> dog", to="a cat"), ["mention"]),
    (dict(from_="a dog", to="@everyone party"), ["@everyone"]),
    (dict(from_="a dog", to="@here"), ["@here"]),
    (dict(from_="<@&123456789012345678>", to="a cat"), ["role mention"]),
    (dict(from_="a dog", to="<#123456789012345678> cat"), ["channel mention"]),
    (dict(from_="dog\x00cat", to="a cat"), ["control"]),
    (dict(from_="a dog", to="cat\u202egod"), ["control"]),
    (dict(from_="a dog", to="a cat", negative="<@!123456789012345678>"), ["mention"]),
]
CLIENT_REFUSES = [
    (dict(from_="", to="a cat"), "length", ["empty"]),
    (dict(from_="x" * 1001, to="a cat"), "length", ["1,000"]),  # numbers as the member's language writes them
    (dict(from_="a dog", to="y" * 6000), "length", ["1,000"]),
    (dict(from_="a dog", to="a cat", frames=1), "min_value", ["frames"]),
    (dict(from_="a dog", to="a cat", frames=500), "max_value", ["frames"]),
    (dict(from_="a dog", to="a cat", seed=-1), "min_value", ["seed"]),
    (dict(from_="a dog", to="a cat", seed=2**40), "max_value", ["seed"]),
]


async def test_bad_input_is_refused_privately(harness):
    fake, h = harness.fake, harness
    await h.start_bot(max_frames=12)
    eve = h.guild.add_member("eve")

    for options, why, _ in CLIENT_REFUSES:
        with pytest.raises(OptionRejected, match=why):
            fake.slash(eve, "morph", **options)
    assert fake.interactions == {}

    cases = REACHES_THE_BOT + [(opts, words) for opts, _, words in CLIENT_REFUSES]
    for options, words in cases:
        strict = (options, words) in REACHES_THE_BOT
        it = await fake.slash(eve, "morph", strict=strict, **options)
        assert it.latency < 3.0
        assert it.response_type == 4 and it.ephemeral, (options, it.content)
        text = it.content
        assert text.startswith("❌"), (options, text)
        assert all(w.lower() in text.lower() for w in words), (options, text)
        assert len(text) <= 2000

    assert await h.store.list_jobs(None, states=ALL_STATES) == []
    visible = [m for m in fake.all_messages() if not m.ephemeral]
    assert visible == []  # nothing public was posted
    assert not any(m.pings_anyone for m in fake.all_messages())
    assert all(m.allowed_mentions == {"parse": []} for m in fake.all_messages())
    assert fake.violations == []

    # DMs: /morph is server-only, Discord's client does not offer it there
    with pytest.raises(OptionRejected, match="server-only"):
        fake.slash(eve.user, "morph", from_="a dog", to="a cat")

    # a good request right after still works (the refusals did not count as submissions), even at the
    # longest allowed prompt full of markdown and mention look-alikes: every message stays within limits
    long = ("**a** `dog` <@ 1> @ everyone " * 40)[:1000]
    ok = await fake.slash(eve, "morph", from_=long, to="a cat", frames=4)
    assert not ok.ephemeral and "queued" in ok.content.lower()
    result = await h.result_message(job_id_of(ok.content), timeout=60)
    assert len(result.content) <= 2000 and not result.pings_anyone
    assert all(len(o["label"]) <= 100 for s in result.selects() for o in s["options"])
    assert fake.violations == []
