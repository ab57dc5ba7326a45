"""bot.uploads: downloading an attachment with a size cap and a timeout (over loopback), then the checks and
the safety seam."""
import asyncio
import io
from types import SimpleNamespace

import pytest
from aiohttp import web
from PIL import Image

from bot import uploads
from morph.images import PictureError


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
    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    over.set()
    await runner.cleanup()


def attachment(url: str, size: int = 100):
    return SimpleNamespace(url=url, size=size)  # what download() reads of a discord.Attachment


async def test_download_and_check(server):
    seen = []

    async def safety(pictures, age_restricted):
        seen.append((list(pictures), age_restricted))
        return None

    got = await uploads.fetch_pictures({0: attachment(server + "/ok")}, age_restricted=True, safety=safety)
    assert got == {0: png()} and seen == [([png()], True)]


async def test_more_bytes_than_discord_said_are_cut_off(server):
    with pytest.raises(PictureError, match="first picture is over 1 MiB"):
        await uploads.download(attachment(server + "/big", size=10), "first picture", max_bytes=2**20)


async def test_a_slow_download_times_out(server):
    with pytest.raises(PictureError, match="took longer than 0.3 s"):
        await uploads.download(attachment(server + "/slow"), "first picture", timeout_s=0.3)


async def test_missing_and_addressless_attachments(server):
    with pytest.raises(PictureError, match="HTTP 404"):
        await uploads.download(attachment(server + "/gone"), "second picture")
    with pytest.raises(PictureError, match="no address"):
        await uploads.download(attachment("file:///etc/passwd"), "second picture")


async def test_the_safety_check_refuses_before_anything_is_queued(server):
    async def refuse(pictures, age_restricted):
        return "This picture cannot be used in this channel."

    with pytest.raises(PictureError, match="cannot be used in this channel"):
        await uploads.fetch_pictures({0: attachment(server + "/ok")}, age_restricted=False, safety=refuse)
