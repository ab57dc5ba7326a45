"""Issue #14 through the real bot against the fake Discord: MP4 next to (or instead of) the GIF, with a
server default and a fallback to GIF; a morph chain through three prompts whose frames at the joins are the
plain morphs' end frames; and 🔍 refine, whose reply starts and ends on the two frames it was asked between."""
from __future__ import annotations

import sys

import aiohttp
import numpy as np
from e2e_helpers import gif_frames, job_id_of, png

from morph.video import decode_mp4

#: Frames of one position rendered in other batches differ by float rounding only (of 255).
ROUNDING = 2


def same_picture(a, b) -> bool:
    return int(np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max()) <= ROUNDING


async def picked(fake, user, message, job, frame: int):
    """The PNG the bot answers with when ``user`` chooses ``frame`` (0-based) in the result's frame menu."""
    it = await fake.select(user, message, f"morph:frames:{job.id}-{job.token}", [str(frame)])
    return png(it.original.attachment(f"morph-{job.id}-frame-{frame + 1:03d}.png").data)


async def test_mp4_gif_or_both_and_the_servers_default(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")
    admin = h.guild.add_member("mod", permissions=["manage_guild"])

    # format:mp4: the video alone (plus the contact sheet), every frame at the rendered size
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=7, seed=3, format="mp4")
    mp4_id = job_id_of(it.content)
    result = await h.result_message(mp4_id)
    assert [a.filename for a in result.attachments] == [f"morph-{mp4_id}.mp4", f"morph-{mp4_id}-sheet.png"]
    video = result.attachments[0]
    frames = decode_mp4(video.data)
    assert len(frames) == 7 and {f.size for f in frames} == {(64, 64)}
    payload = video.to_payload()
    assert (payload["content_type"], payload["width"], payload["height"]) == ("video/mp4", 64, 64)
    async with aiohttp.ClientSession() as http, http.get(video.url) as resp:  # the fake's CDN serves it as a video
        assert resp.headers["Content-Type"] == "video/mp4" and await resp.read() == video.data
    job = await h.wait_state(mp4_id, "delivered")
    assert job.result.files == ("mp4",) and job.result.animation("mp4").frame_count == 7
    assert "No MP4" not in result.content

    # format:both: MP4 first, then the GIF, both with every frame (boomerang: forward, then back)
    it = await fake.slash(bob, "morph", from_="a tree", to="a car", frames=5, format="both", boomerang=True)
    both_id = job_id_of(it.content)
    result = await h.result_message(both_id)
    assert [a.filename for a in result.attachments] == [f"morph-{both_id}.mp4", f"morph-{both_id}.gif",
                                                        f"morph-{both_id}-sheet.png"]
    assert len(decode_mp4(result.attachments[0].data)) == 8 == len(gif_frames(result.attachments[1].data))

    # a server's default: GIF for every /morph that does not say
    limits = await fake.slash(admin, "morphadmin limits", default_format="gif")
    assert limits.ephemeral and "default_format: gif" in limits.content
    it = await fake.slash(alice, "morph", from_="a fox", to="an owl", frames=4)
    gif_id = job_id_of(it.content)
    result = await h.result_message(gif_id)
    assert [a.filename for a in result.attachments] == [f"morph-{gif_id}.gif", f"morph-{gif_id}-sheet.png"]
    assert len(gif_frames(result.attachments[0].data)) == 4
    shown = await fake.slash(bob, "morph", from_="a fox", to="an owl", frames=4, format="mp4")  # the option wins
    assert [a.filename for a in (await h.result_message(job_id_of(shown.content))).attachments][0].endswith(".mp4")
    assert fake.violations == []


async def test_without_pyav_an_mp4_request_gets_a_gif_and_says_so(harness, monkeypatch):
    fake, h = harness.fake, harness
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed: `import av` fails
    await h.start_bot()
    alice = h.guild.add_member("alice")

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=6, format="mp4")
    job_id = job_id_of(it.content)
    result = await h.result_message(job_id)
    assert [a.filename for a in result.attachments] == [f"morph-{job_id}.gif", f"morph-{job_id}-sheet.png"]
    assert len(gif_frames(result.attachments[0].data)) == 6
    assert "No MP4 this time" in result.content and "GIF" in result.content
    assert "PyAV" not in result.content  # the reason is for the log (it may name the server's paths)
    job = await h.wait_state(job_id, "delivered")
    assert job.result.fell_back is True and "PyAV" in job.result.mp4_error and job.result.files == ("gif",)
    assert fake.violations == []


async def test_a_three_prompt_chain_joins_on_the_plain_morphs_end_frames(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice, bob, carol = (h.guild.add_member(n) for n in ("alice", "bob", "carol"))
    dog, cat, bird = "a photo of a dog", "a photo of a cat", "a photo of a bird"

    it = await fake.slash(alice, "morph", from_=dog, to=cat, then=bird, frames=12, seed=7)
    assert "**a photo of a dog** → **a photo of a cat** → **a photo of a bird**" in it.content
    chain_id = job_id_of(it.content)
    dog_cat = job_id_of((await fake.slash(bob, "morph", from_=dog, to=cat, frames=2, seed=7)).content)
    cat_bird = job_id_of((await fake.slash(carol, "morph", from_=cat, to=bird, frames=2, seed=7)).content)
    chain_msg, dog_cat_msg, cat_bird_msg = [await h.result_message(j) for j in (chain_id, dog_cat, cat_bird)]
    chain, one, two = [await h.wait_state(j, "delivered") for j in (chain_id, dog_cat, cat_bird)]

    ts = chain.result.ts
    assert len(ts) == 12 and ts[0] == 0.0 and ts[-1] == 2.0 and 1.0 in ts and list(ts) == sorted(ts)
    join = ts.index(1.0)
    viewer = h.guild.add_member("viewer")
    joins = [await picked(fake, viewer, chain_msg, chain, i) for i in (0, join, 11)]
    ends = [await picked(fake, viewer, dog_cat_msg, one, 0), await picked(fake, viewer, dog_cat_msg, one, 1),
            await picked(fake, viewer, cat_bird_msg, two, 0), await picked(fake, viewer, cat_bird_msg, two, 1)]
    assert same_picture(joins[0], ends[0])  # the dog
    assert same_picture(joins[1], ends[1]) and same_picture(joins[1], ends[2])  # the cat, where the parts meet
    assert same_picture(joins[2], ends[3])  # the bird
    mid = await picked(fake, viewer, chain_msg, chain, join - 1)
    assert not same_picture(mid, joins[1])  # frames inside a part are in-betweens

    # candidates per part (4 each), each button naming its part, one row per part; 8 reactions
    segments = chain.result.segments
    assert [len(s.candidates) for s in segments] == [4, 4]
    rows = [[c["label"] for c in row["components"]] for row in chain_msg.components[:2]]
    assert rows == [[f"{n} · dog→cat" for n in range(1, 5)], [f"{n} · cat→bird" for n in range(5, 9)]]
    assert "Candidates by part: 1–4 **a photo of a dog** → **a photo of a cat**, 5–8 **a photo of a cat** → " \
           "**a photo of a bird**" in chain_msg.content
    assert list(chain_msg.reactions) == ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣"]
    assert len(chain_msg.components) == 5  # Discord's limit: buttons ×2, frame menu, 🔍 menu, reroll/delete/report

    # 7️⃣ is the third candidate of the second part
    await fake.react(viewer, chain_msg, "7️⃣")
    frame = segments[1].candidates[2]
    reply = await fake.wait_for_message(lambda m: any(a.filename == f"morph-{chain_id}-frame-{frame + 1:03d}.png"
                                                      for a in m.attachments) and m.interaction_id is None)
    assert "candidate 7" in reply.content

    # a looped chain through four prompts: back to the first, 2 candidates per part
    loop = await fake.slash(alice, "morph", from_="a dog", to="a cat", then="a bird", then2="a fish", loop=True,
                            frames=12, seed=5)
    looped = await h.wait_state(job_id_of(loop.content), "delivered")
    assert looped.request.prompts == ["a dog", "a cat", "a bird", "a fish"] and looped.request.loop
    assert len(looped.result.ts) == 12 and looped.result.ts[-1] < 4.0  # the closing frame is the first
    # at most 2 per part (a part the pacing gave fewer frames may offer fewer)
    assert [s.index for s in looped.result.segments] == [0, 1, 2, 3]
    assert all(1 <= len(s.candidates) <= 2 for s in looped.result.segments)
    # then2 without then is refused, and nothing is queued
    lone = await fake.slash(bob, "morph", from_="a dog", to="a cat", then2="a fish")
    assert lone.ephemeral and "then2" in lone.content
    assert fake.violations == []


async def test_refine_renders_more_frames_between_two_chosen_neighbours(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice, bob, carol = (h.guild.add_member(n) for n in ("alice", "bob", "carol"))
    admin = h.guild.add_member("mod", permissions=["manage_guild"])

    first = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=6, seed=7,
                                        format="mp4")).content)
    original_msg = await h.result_message(first)
    original = await h.wait_state(first, "delivered")
    refine_id = f"morph:refine:{first}-{original.token}"
    menu = next(c for c in original_msg.selects() if c["custom_id"] == refine_id)
    assert [o["value"] for o in menu["options"]] == ["0", "1", "2", "3", "4"]  # the 5 gaps of 6 frames

    # bob asks for more frames between frames 3 and 4: a job of his, queued like any /morph
    it = await fake.select(bob, original_msg, refine_id, ["2"])
    assert it.response_type == 4 and not it.ephemeral and "Refine of job" in it.content
    refined_id = job_id_of(it.content)
    assert refined_id != first
    refined_msg = await h.result_message(refined_id)
    refined = await h.wait_state(refined_id, "delivered")
    assert refined.user_id == bob.id and refined.parent_id == first and refined.format == "mp4"
    assert refined_msg.message_reference["message_id"] == str(original_msg.id)  # posted as a reply
    ts = original.result.ts
    assert (refined.request.t_start, refined.request.t_end) == (ts[2], ts[3])
    assert refined.result.ts[0] == ts[2] and refined.result.ts[-1] == ts[3] and refined.request.frames == 6
    assert (refined.request.seed, refined.request.prompts) == (original.request.seed, original.request.prompts)
    assert len(decode_mp4(refined_msg.attachment(f"morph-{refined_id}.mp4").data)) == 6
    assert "More frames between two neighbouring frames of morph job #" in refined_msg.content

    # its first and last frames are the two frames it was asked between
    viewer = h.guild.add_member("viewer")
    ends = [await picked(fake, viewer, original_msg, original, i) for i in (2, 3)]
    inner = [await picked(fake, viewer, refined_msg, refined, i) for i in (0, 5, 2)]
    assert same_picture(inner[0], ends[0]) and same_picture(inner[1], ends[1])
    assert not same_picture(inner[2], ends[0]) and not same_picture(inner[2], ends[1])

    # the same picks, reactions and components as any result
    kinds = sorted({cid.split(":")[1] for cid in refined_msg.custom_ids()})
    assert kinds == ["delete", "frames", "pick", "refine", "report", "reroll"]
    assert list(refined_msg.reactions) == ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣"]

    # bans apply as to /morph: nothing is queued for a banned member
    await fake.slash(admin, "morphadmin ban", user=carol)
    before = len(await h.store.list_jobs(None, states=["queued", "running", "rendered", "delivered"]))
    refused = await fake.select(carol, original_msg, refine_id, ["0"])
    assert refused.ephemeral and "banned" in refused.content
    assert len(await h.store.list_jobs(None, states=["queued", "running", "rendered", "delivered"])) == before
    assert fake.violations == []
