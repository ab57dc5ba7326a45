"""GIF encoding, contact sheet and frame PNGs: decoded back and checked, not just written."""
import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from morph.output import contact_sheet, encode_gif, save_frames, sheet_size
from morph.request import MorphError, Notice


def gradient_frames(n, size=64):
    """Distinct, smooth frames: frame k has its own colour so decoded order can be checked."""
    x = np.linspace(0, 1, size)
    frames = []
    for k in range(n):
        r = np.full((size, size), 255 * k / max(1, n - 1))
        g = np.outer(x, np.ones(size)) * 255
        b = np.outer(np.ones(size), x) * 255
        frames.append(Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8)))
    return frames


def noise_frames(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def decode(data):
    im = Image.open(io.BytesIO(data))
    assert im.format == "GIF"
    frames, durations = [], []
    for f in ImageSequence.Iterator(im):
        durations.append(f.info.get("duration"))
        frames.append(f.convert("RGB").copy())
    return im.info, frames, durations


def red_level(img):
    return float(np.asarray(img)[..., 0].mean())


def test_gif_loops_with_every_frame_and_duration():
    frames = gradient_frames(6)
    res = encode_gif(frames, duration_ms=80)
    info, decoded, durations = decode(res.data)
    assert info["loop"] == 0
    assert len(decoded) == res.frame_count == 6
    assert durations == [80] * 6
    assert (res.width, res.height) == decoded[0].size == (64, 64)
    assert res.reductions == [] and res.colors == 256 and res.encodes == 1
    # Frames come back in order: the red channel rises frame by frame.
    reds = [red_level(f) for f in decoded]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 200
    # A second, independent decoder agrees on the frames.
    import imageio.v3 as iio

    stack = iio.imread(res.data, index=None, extension=".gif")
    assert stack.shape[:3] == (6, 64, 64)


def test_boomerang_goes_back_without_repeating_ends():
    frames = gradient_frames(5)
    res = encode_gif(frames, boomerang=True)
    _, decoded, durations = decode(res.data)
    assert res.frame_count == len(decoded) == 8  # 0 1 2 3 4 3 2 1, then the loop shows 0 again
    reds = [round(red_level(f) / 63.75) for f in decoded]
    assert reds == [0, 1, 2, 3, 4, 3, 2, 1]
    assert durations == [100] * 8


def test_two_frame_boomerang_is_just_two_frames():
    res = encode_gif(gradient_frames(2), boomerang=True)
    assert res.frame_count == len(decode(res.data)[1]) == 2


def test_tiny_budget_is_met_by_reducing_and_reported():
    frames = noise_frames(24, 256)
    full = encode_gif(frames)
    budget = 30_000
    assert len(full.data) > budget * 10
    res = encode_gif(frames, budget_bytes=budget)
    assert len(res.data) <= budget
    assert res.reductions, "a reduction must be reported"
    assert str(res.reductions[0]).startswith("size 256→")
    assert any(str(r).startswith("frames 24→") for r in res.reductions)
    assert res.encodes <= 5, "the encoder should jump to a likely fit, not walk every rung"
    info, decoded, durations = decode(res.data)
    assert len(decoded) == res.frame_count < 24
    assert decoded[0].size == (res.width, res.height)
    assert res.width % 2 == 0 and res.height % 2 == 0
    assert info["loop"] == 0
    # The loop keeps about the same total length when frames are dropped.
    assert abs(sum(durations) - 24 * 100) <= 24 * 100 * 0.5
    assert all(d == res.duration_ms for d in durations)


def test_moderate_budget_only_shrinks_size_first():
    frames = noise_frames(8, 128, seed=1)
    full = encode_gif(frames)
    res = encode_gif(frames, budget_bytes=int(len(full.data) * 0.7))
    assert len(res.data) <= int(len(full.data) * 0.7)
    assert [r.code for r in res.reductions] == ["reduced_size"]
    assert res.frame_count == 8 and res.colors == 256
    assert res.width < 128


def test_frame_thinning_keeps_first_and_last():
    frames = gradient_frames(9, size=64)
    # Force thinning: at 64 px the size cannot go lower, so palette and then frames must give.
    full = encode_gif(frames)
    res = encode_gif(frames, budget_bytes=len(full.data) // 3)
    assert len(res.data) <= len(full.data) // 3
    _, decoded, _ = decode(res.data)
    assert Notice("reduced_frames", {"before": 9, "after": len(decoded)}) in res.reductions
    assert red_level(decoded[0]) < 5 and red_level(decoded[-1]) > 250


def test_impossible_budget_raises_clear_error():
    with pytest.raises(MorphError, match="cannot fit"):
        encode_gif(noise_frames(4, 128), budget_bytes=2_000)
    with pytest.raises(MorphError):
        encode_gif([], budget_bytes=1000)


def test_contact_sheet_size_and_labels_are_drawn():
    frames = [Image.new("RGB", (64, 64), (200, 200, 200)) for _ in range(7)]
    sheet = contact_sheet(frames)
    assert sheet.size == sheet_size(7, (64, 64)) == (5 * 256 + 6 * 8, 2 * 256 + 3 * 8)
    px = np.asarray(sheet).astype(int)
    # Inside each cell's top-left corner the label box and its white text change pixels from the grey.
    for i in range(7):
        row, col = divmod(i, 5)
        x, y = 8 + col * 264, 8 + row * 264
        corner = px[y:y + 60, x:x + 50]
        assert (corner < 50).all(-1).sum() > 100, f"no dark label box in cell {i + 1}"
        assert (corner > 240).all(-1).sum() > 50, f"no white label text in cell {i + 1}"
        centre = px[y + 200:y + 250, x + 200:x + 250]
        assert (centre == 200).all()
    # Different labels draw different pixels.
    other = np.asarray(contact_sheet(frames, labels=list("ABCDEFG"))).astype(int)
    assert (other != px).any()
    with pytest.raises(MorphError):
        contact_sheet(frames, labels=["1"])


def test_contact_sheet_single_row():
    sheet = contact_sheet(gradient_frames(3, size=32))
    assert sheet.size == (3 * 256 + 4 * 8, 256 + 2 * 8)


def test_save_frames_writes_numbered_pngs(tmp_path):
    frames = gradient_frames(3)
    paths = save_frames(frames, tmp_path / "out" / "frames")
    assert [p.name for p in paths] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    for p, f in zip(paths, frames, strict=True):
        assert np.array_equal(np.asarray(Image.open(p).convert("RGB")), np.asarray(f))
