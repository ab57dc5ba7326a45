"""bot.uploads: downloading an attachment with a size cap and a timeout (over loopback), then the checks and
the safety seam."""
import asyncio
import io
from types import SimpleNamespace

import pytest
from aiohttp import web
from PIL import Image

from bot import uploads
from bot.messages import error_text
from bot.uploads import Fetch
from morph.images import PictureError, Problem
from morph.request import MorphError


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
async def server():
    """A loopback server: /ok (a PNG), /big (2 MiB), /slow (answers only when the test is over), anything
    else 404."""
    over = asyncio.Event()

    async def ok(_):
        return web.Response(body=png(), content_type="image/png")

    async def big(_):
        return web.Response(body=b"\0" * (2 * 2**20))

    async def slow(_):
        await over.wait()
        return web.Response(body=png())

    app = web.Application()
    hits: list[str] = []

    @web.middleware
    async def count(request, handler):
        hits.append(request.path)
        return await handler(request)

    app.middlewares.append(count)
    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", hits=hits)
    over.set()
    await runner.cleanup()


def attachment(url, size: int = 100, content_type: str | None = "image/png", width: int | None = 32,
               height: int | None = 32):
    """What download() reads of a discord.Attachment (``url``: a path on the server, or a full address)."""
    url = url if isinstance(url, str) else url.url + "/ok"
    return SimpleNamespace(url=url, size=size, content_type=content_type, width=width, height=height)


async def test_download_and_check(server):
    seen = []

    async def safety(pictures, age_restricted):
        seen.append((list(pictures), age_restricted))
        return None

    got = await uploads.fetch_pictures({0: attachment(server.url + "/ok")}, age_restricted=True, safety=safety)
    assert got == {0: png()} and seen == [([png()], True)]


async def test_more_bytes_than_discord_said_are_cut_off(server):
    with pytest.raises(PictureError, match="first picture is over 1 MiB") as err:
        await uploads.download(attachment(server.url + "/big", size=10), "first picture", max_bytes=2**20)
    assert err.value.kind == Problem.OVER_BYTES and "size_mib" not in err.value.facts


async def test_a_slow_download_times_out(server):
    with pytest.raises(PictureError) as err:
        await uploads.download(attachment(server.url + "/slow"), "first picture", timeout_s=0.3)
    assert (err.value.kind, err.value.facts) == (Fetch.TIMEOUT, {"seconds": 0.3})
    assert "took longer than 1 second to download" in error_text(err.value)  # rounded to its unit


async def test_missing_and_addressless_attachments(server):
    with pytest.raises(PictureError) as err:
        await uploads.download(attachment(server.url + "/gone"), "second picture")
    assert (err.value.kind, err.value.what, err.value.facts) == (Fetch.HTTP, "second picture", {"status": 404})
    assert "HTTP 404" in error_text(err.value)
    with pytest.raises(PictureError) as err:
        await uploads.download(attachment("file:///etc/passwd"), "second picture")
    assert err.value.kind == Fetch.NO_URL and "no address" in error_text(err.value)


async def test_the_safety_check_refuses_before_anything_is_queued(server):
    async def refuse(pictures, age_restricted):
        return "This picture cannot be used in this channel."

    with pytest.raises(MorphError, match="cannot be used in this channel"):
        await uploads.fetch_pictures({0: attachment(server.url + "/ok")}, age_restricted=False, safety=refuse)


@pytest.mark.parametrize("reported,kind,facts", [
    (dict(size=11 * 2**20), Problem.OVER_BYTES, {"limit_mib": 10.0, "size_mib": 11.0}),
    (dict(content_type="video/mp4"), Problem.NOT_A_PICTURE, {"content_type": "video/mp4"}),
    (dict(content_type="text/plain; charset=utf-8"), Problem.NOT_A_PICTURE, {"content_type": "text/plain"}),
    (dict(width=5000, height=300), Problem.OVER_PIXELS, {"width": 5000, "height": 300, "limit": 4096}),
    (dict(width=8, height=300), Problem.UNDER_PIXELS, {"width": 8, "height": 300, "limit": 16}),
])
async def test_what_discord_reports_is_refused_before_downloading(server, reported, kind, facts):
    """Size, content type and width/height from the interaction: refused without a request to the CDN, also
    when the other end's attachment is fine (neither is downloaded)."""
    bad = attachment(server, **reported)
    with pytest.raises(PictureError) as err:
        await uploads.fetch_pictures({0: attachment(server), 1: bad}, age_restricted=False)
    assert err.value.kind == kind and err.value.what == "second picture"
    assert facts.items() <= err.value.facts.items()
    assert server.hits == []


async def test_what_discord_does_not_know_is_judged_by_the_bytes(server):
    """No content type or an unknown one, no width and height: downloaded, then checked by content."""
    for content_type in (None, "application/octet-stream"):
        got = await uploads.download(attachment(server, content_type=content_type, width=None, height=None),
                                     "first picture")
        assert got == png()
    assert server.hits == ["/ok", "/ok"]


@pytest.mark.parametrize("err", [
    PictureError(Problem.OVER_BYTES, "first picture", limit_mib=10.0, size_mib=12.5),
    PictureError(Problem.OVER_BYTES, "first picture", limit_mib=10.0),
    PictureError(Problem.EMPTY, "second picture"),
    PictureError(Problem.NOT_A_PICTURE, "first picture", formats="PNG, JPEG, WebP or GIF", content_type="video/mp4"),
    PictureError(Problem.NOT_A_PICTURE, "first picture", formats="PNG, JPEG, WebP or GIF"),
    PictureError(Problem.DAMAGED, "second picture"),
    PictureError(Problem.OVER_PIXELS, "first picture", limit=4096, width=5000, height=4000),
    PictureError(Problem.OVER_PIXELS, "first picture", limit=4096),
    PictureError(Problem.UNDER_PIXELS, "second picture", limit=16, width=8, height=9),
    PictureError(Fetch.NO_URL, "first picture"),
    PictureError(Fetch.HTTP, "first picture", status=503),
    PictureError(Fetch.TIMEOUT, "second picture", seconds=20.0),
    PictureError(Fetch.NETWORK, "first picture", error="ClientOSError"),
], ids=lambda e: f"{e.kind}-{'+'.join(e.facts)}")
def test_every_picture_refusal_is_worded_in_english_and_japanese(err):
    """Typed refusals worded by the bot through the catalogue: each kind has its own sentence in both
    languages, with the facts filled in and the picture named in that language."""
    en, ja = error_text(err, "en-US"), error_text(err, "ja")
    assert en.startswith("❌ ") and ja.startswith("❌ ") and en != ja
    assert "{" not in en + ja and "=" not in en + ja  # a sentence, not the log summary
    assert ("first picture" if err.what == "first picture" else "second picture") in en
    assert ("1枚目の画像" if err.what == "first picture" else "2枚目の画像") in ja
    for fact in ("width", "height", "status", "limit"):
        if fact in err.facts:
            assert str(err.facts[fact]) in en and str(err.facts[fact]) in ja
    if "size_mib" in err.facts:
        assert "12.5 MiB" in en and "12.5 MiB" in ja
