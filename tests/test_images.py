"""Uploaded pictures (morph.images): the types taken, what is done to them, and every refusal."""
import io

import numpy as np
import pytest
from PIL import Image

from morph import images
from morph.images import MAX_BYTES, MAX_SIDE, PictureError
from testkit.pictures import png_header_only


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def halves(width=80, height=40) -> Image.Image:
    """Left half red, right half blue."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(a)


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("JPEG", {"quality": 95}), ("WEBP", {"lossless": True}),
                                    ("GIF", {})])
def test_each_taken_type_is_read_by_content_and_prepared_to_the_model_size(fmt, kw):
    data = encode(Image.new("RGB", (50, 30), (0, 200, 0)), fmt, **kw)
    info = images.check(data)
    assert (info.format, info.width, info.height) == (fmt, 50, 30)
    out = images.prepare(data, 64)
    assert out.mode == "RGB" and out.size == (64, 64)
    assert np.abs(np.asarray(out, np.int16) - (0, 200, 0)).max() <= 6  # GIF's palette, JPEG's rounding


def test_centre_crop_keeps_the_middle_of_a_wide_picture():
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, :40] = (255, 0, 0)
    wide[:, 40:80] = (0, 255, 0)  # the middle third: all that a centre square crop keeps
    wide[:, 80:] = (0, 0, 255)
    out = np.asarray(images.prepare(encode(Image.fromarray(wide), "PNG"), 32))
    assert np.abs(out[:, 2:-2].astype(int) - (0, 255, 0)).max() <= 2  # (Lanczos rings a little at the edge)
    assert np.abs(out.astype(int) - (0, 255, 0)).max() <= 10


def test_exif_orientation_is_applied():
    picture = halves(80, 40)  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(picture, "JPEG", quality=95, exif=exif.tobytes())
    info = images.check(data)
    assert (info.width, info.height) == (40, 80)  # upright: portrait
    out = np.asarray(images.prepare(data, 32)).astype(int)
    # turned clockwise: the left (red) half is now on top, the blue one at the bottom
    assert out[2, 16, 0] > 200 and out[2, 16, 2] < 60
    assert out[-3, 16, 2] > 200 and out[-3, 16, 0] < 60


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 0, 255, 255), (10, 10, 30, 30))  # an opaque blue square
    out = np.asarray(images.prepare(encode(rgba, "PNG"), 40)).astype(int)
    assert tuple(out[2, 2]) == (255, 255, 255)
    assert tuple(out[20, 20]) == (0, 0, 255)


def test_other_colour_modes_become_rgb_without_clipping():
    grey16 = Image.fromarray(np.full((32, 32), 32896, np.uint16))  # 50% grey in 16 bits
    assert np.asarray(images.prepare(encode(grey16, "PNG"), 16)).mean() == pytest.approx(128, abs=1)
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red in print colours
    r, g, b = np.asarray(images.prepare(encode(cmyk, "JPEG"), 16)).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    out = np.asarray(images.prepare(buf.getvalue(), 32)).astype(int)
    assert np.abs(out - (255, 0, 0)).max() <= 2


@pytest.mark.parametrize("data,needle", [
    (b"GIF89a not really" + b"\0" * 64, "damaged"),
    (b"%PDF-1.4\n" + b"x" * 200, "not a PNG, JPEG, WebP or GIF"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a PNG, JPEG, WebP or GIF"),
    (b"", "empty"),
])
def test_other_types_and_garbage_are_refused(data, needle):
    with pytest.raises(PictureError, match=needle):
        images.check(data)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO"])
def test_pictures_pillow_could_read_but_we_do_not_take_are_refused_by_content(fmt, tmp_path):
    data = encode(Image.new("RGB", (32, 32), (1, 2, 3)), fmt)
    path = tmp_path / "looks-like.png"  # the name says PNG; the content decides
    path.write_bytes(data)
    with pytest.raises(PictureError, match="judged by its content"):
        images.load(path, 64)


def test_a_png_named_jpg_is_still_taken(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(Image.new("RGB", (20, 20), (9, 9, 9)), "PNG"))
    assert images.load(path, 16).size == (16, 16)


def test_truncated_file_is_refused_as_damaged():
    data = encode(halves(200, 200), "PNG")
    with pytest.raises(PictureError, match="damaged"):
        images.check(data[: len(data) // 2])
    jpeg = encode(Image.effect_noise((300, 300), 60).convert("RGB"), "JPEG")
    with pytest.raises(PictureError, match="damaged"):
        images.prepare(jpeg[: len(jpeg) // 3], 64)


@pytest.mark.parametrize("width,height", [(MAX_SIDE + 1, 16), (16, MAX_SIDE + 1)])
def test_too_many_pixels_are_refused_from_the_header_before_decoding(width, height):
    with pytest.raises(PictureError, match=f"{width}×{height} pixels; the limit is 4096×4096"):
        images.check(png_header_only(width, height))


def test_a_decompression_bomb_is_stopped_by_pillows_guard_at_open():
    with pytest.raises(PictureError, match="too large: at most 4096×4096"):
        images.prepare(png_header_only(60_000, 60_000), 64)  # 3.6 Gpx: would be 10 GB decoded


def test_the_largest_side_allowed_is_read():
    data = encode(Image.new("L", (MAX_SIDE, 16), 200), "PNG")
    assert images.check(data).width == MAX_SIDE


def test_too_small_is_refused():
    with pytest.raises(PictureError, match="only 8×8 pixels"):
        images.check(encode(Image.new("RGB", (8, 8)), "PNG"))


def test_files_over_ten_mib_are_refused_without_reading_all_of_them(tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(encode(Image.new("RGB", (32, 32)), "PNG"))
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(PictureError, match="over 10 MiB"):
        images.read_file(big)
    with pytest.raises(PictureError, match="over 10 MiB"):
        images.check(b"\x89PNG" + b"\0" * MAX_BYTES)
    exactly = tmp_path / "exact.bin"
    exactly.write_bytes(b"\0" * MAX_BYTES)
    assert len(images.read_file(exactly)) == MAX_BYTES


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(PictureError, match="does not exist"):
        images.read_file(tmp_path / "nope.png")
    with pytest.raises(PictureError, match="is a folder"):
        images.read_file(tmp_path)


def test_decompression_bomb_guard_stays_on():
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= MAX_SIDE * MAX_SIDE
