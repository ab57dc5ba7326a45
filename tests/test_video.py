"""MP4 output (morph.video) and the one call for MP4/GIF/both (morph.animation.encode_animation): decoded frame
count, size, timing and colours; fitting the byte budget; the fallback to GIF when MP4 cannot be made here."""
import io
import sys

import numpy as np
import pytest
from PIL import Image, ImageSequence

from bench.video import psnr, scene_frames
from bot.messages import error_text
from morph.animation import encode_animation
from morph.output import encode_gif
from morph.request import MorphError
from morph.video import VideoUnavailable, available, decode_mp4, encode_mp4, probe_mp4


@pytest.fixture(scope="module")
def frames():
    return scene_frames(8, 128)  # photo-like: smooth sky gradient, textured hills, grain


def test_mp4_plays_in_discord_and_decodes_to_every_frame(frames):
    video = encode_mp4(frames, 10 * 1024 * 1024, duration_ms=80)
    info = probe_mp4(video.data)
    assert (info["codec"], info["profile"], info["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (info["width"], info["height"]) == (128, 128) and info["rate"] == 1000 / 80
    assert "mp4" in info["format"] and info["colorspace"] == 1  # BT.709, as converted
    assert video.data[4:8] == b"ftyp" and video.data.find(b"moov") < video.data.find(b"mdat")  # +faststart
    decoded = decode_mp4(video.data)
    assert len(decoded) == 8 == video.frame_count and all(f.size == (128, 128) for f in decoded)
    # Close to the rendered frames, in the right order (each decoded frame is nearest its own source).
    for i, got in enumerate(decoded):
        scores = [psnr(np.asarray(got), np.asarray(src)) for src in frames]
        assert int(np.argmax(scores)) == i and scores[i] > 32
    assert video.bitrate is None and video.reductions == [] and video.encodes == 1


def test_boomerang_goes_back_without_repeating_the_ends(frames):
    video = encode_mp4(frames[:4], 1024 * 1024, boomerang=True)
    decoded = decode_mp4(video.data)
    assert len(decoded) == video.frame_count == 6  # 0 1 2 3 2 1
    order = [int(np.argmax([psnr(np.asarray(d), np.asarray(f)) for f in frames[:4]])) for d in decoded]
    assert order == [0, 1, 2, 3, 2, 1]


def test_odd_sizes_become_even(frames):
    odd = [f.crop((0, 0, 101, 75)) for f in frames[:3]]
    video = encode_mp4(odd, 1024 * 1024)
    assert (video.width, video.height) == (100, 76) and decode_mp4(video.data)[0].size == (100, 76)


def test_a_tight_budget_is_met_by_bitrate_then_by_size(frames):
    free = encode_mp4(frames, 10 * 1024 * 1024)
    budget = len(free.data) // 2
    fitted = encode_mp4(frames, budget)
    assert len(fitted.data) <= budget and fitted.bitrate and str(fitted.reductions[0]).startswith("bitrate")
    assert (fitted.width, fitted.height) == (128, 128) and len(decode_mp4(fitted.data)) == 8
    # Far less: too few bits per pixel at full size, so the picture shrinks; every frame stays.
    large = scene_frames(8, 512)
    small = encode_mp4(large, 10_000)
    assert len(small.data) <= 10_000 and small.width < 512 and str(small.reductions[0]).startswith("size 512→")
    assert len(decode_mp4(small.data)) == 8
    with pytest.raises(MorphError, match="the MP4 cannot fit in 500 bytes") as refused:
        encode_mp4(frames, 500)
    # a typed refusal, so a member reads it in their language
    assert refused.value.code == "mp4_too_big" and refused.value.facts["budget"] == "500 bytes"
    assert error_text(refused.value, "ja").startswith("❌ MP4 を 500 bytes に収められません。")


def test_mp4_is_smaller_and_truer_than_the_gif(frames):
    both = encode_animation(frames, "both", 10 * 1024 * 1024)
    gif = [f.convert("RGB") for f in ImageSequence.Iterator(Image.open(io.BytesIO(both.gif.data)))]
    mp4 = decode_mp4(both.mp4.data)

    def mean_psnr(decoded):
        return np.mean([psnr(np.asarray(d), np.asarray(f)) for d, f in zip(decoded, frames, strict=True)])

    assert len(both.mp4.data) < len(both.gif.data) / 2 and mean_psnr(mp4) > mean_psnr(gif) + 1
    assert both.size <= 10 * 1024 * 1024 and both.notes == [] and both.mp4_error is None


def test_both_share_one_budget(frames):
    gif_alone = len(encode_gif(frames).data)
    budget = gif_alone  # the GIF alone just fits; with the MP4 beside it, it must give something up
    both = encode_animation(frames, "both", budget)
    assert both.size <= budget and len(both.mp4.data) <= budget // 2
    assert both.gif.reductions  # it got budget - MP4 bytes


@pytest.fixture
def no_pyav(monkeypatch):
    """PyAV as if not installed: ``import av`` raises ImportError."""
    monkeypatch.setitem(sys.modules, "av", None)


def test_missing_pyav_is_a_clear_signal(frames, no_pyav):
    with pytest.raises(VideoUnavailable, match="PyAV, which is not installed"):
        encode_mp4(frames, 1024 * 1024)
    assert "PyAV" in available()


@pytest.mark.parametrize("fmt", ["mp4", "both"])
def test_without_pyav_a_gif_takes_the_mp4s_place(frames, no_pyav, fmt):
    out = encode_animation(frames, fmt, 10 * 1024 * 1024, duration_ms=70)
    assert out.mp4 is None and "PyAV" in out.mp4_error
    assert len(out.notes) == 1 and "GIF instead" in out.notes[0] and "PyAV" in out.notes[0]
    im = Image.open(io.BytesIO(out.gif.data))
    assert im.format == "GIF" and im.n_frames == 8 and im.info["duration"] == 70
    assert out.gif.reductions == []  # the whole budget, not half of it


def test_an_ffmpeg_failure_is_the_same_signal(frames, monkeypatch):
    import av

    def broken(*args, **kwargs):
        raise av.error.ExternalError(-1, "encoder exploded")

    monkeypatch.setattr(av, "open", broken)
    with pytest.raises(VideoUnavailable, match="FFmpeg could not encode the MP4"):
        encode_mp4(frames, 1024 * 1024)
    assert encode_animation(frames, "mp4", 1024 * 1024).gif is not None


def test_gif_only_and_bad_format(frames):
    out = encode_animation(frames, "gif", 1024 * 1024)
    assert out.mp4 is None and out.gif is not None and out.mp4_error is None and out.notes == []
    with pytest.raises(MorphError, match="format must be one of: mp4, gif, both"):
        encode_animation(frames, "webm")
    assert available() is None


def test_bench_video_smoke(capsys):
    """`python -m bench.video` encodes both ways at each budget and prints one table row per budget."""
    from bench.video import main

    assert main(["--frames", "4", "--size", "64", "--budgets", "1,0.01"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 1 MiB") or line.startswith("| 0.01 MiB")]
    assert len(rows) == 2 and all(len(row.split("|")) == 11 for row in rows)
    assert "— (constant quality)" in rows[0] and "GIF/MP4 bytes" in out
