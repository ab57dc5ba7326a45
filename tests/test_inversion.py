"""Picture morphs (morph.inversion): the toy model's frames at the ends reproduce the pictures, the mixed
picture → prompt morph, reroll, refine, the request's rules and the command line."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from morph import images, inversion
from morph.cli import main
from morph.request import MorphError, RenderRequest
from toykit import shapes

torch.set_num_threads(1)
STAR = "a yellow star on a green background"


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Two toy pictures drawn by the shapes world's own code, one saved as a JPEG (another format, another
    size: prepared to the model's 64 px)."""
    folder = tmp_path_factory.mktemp("pictures")
    a, b = folder / "circle.png", folder / "star.jpg"
    shapes.draw(shapes.Scene("circle", "red", "blue", 36, 32, 32)).save(a)
    shapes.draw(shapes.Scene("star", "yellow", "green", 40, 30, 34)).resize((128, 128)).save(b, quality=95)
    return str(a), str(b)


@pytest.fixture(scope="module")
def toy():
    from morph import Morpher

    return Morpher("toy", device="cpu")


@pytest.fixture(scope="module")
def two_pictures(toy, pictures):
    return toy.render(RenderRequest(images=list(pictures), frames=4, pacing="uniform"))


# ------------------------------------------------------------------------------------------- maths
def test_adain_slerp_is_exact_at_the_ends_and_mixes_channel_statistics():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 4, 8, 8, generator=g) * torch.tensor([1.0, 2.0, 0.5, 1.0]).view(1, 4, 1, 1)
    b = torch.randn(1, 4, 8, 8, generator=g) + torch.tensor([0.0, 3.0, -1.0, 0.0]).view(1, 4, 1, 1)
    assert torch.equal(inversion.adain_slerp(a, b, 0.0), a) and torch.equal(inversion.adain_slerp(a, b, 1.0), b)
    mid = inversion.adain_slerp(a, b, 0.5)
    (ma, sa), (mb, sb), (mm, sm) = (inversion._mean_std(x) for x in (a, b, mid))
    assert torch.allclose(mm, (ma + mb) / 2, atol=1e-4) and torch.allclose(sm, (sa + sb) / 2, atol=1e-3)


def test_psnr():
    x = np.zeros((4, 4, 3), np.uint8)
    y = x.copy()
    y[0, 0, 0] = 255
    assert inversion.psnr(x, x) == float("inf")
    assert inversion.psnr(x, y) == pytest.approx(10 * np.log10(48), abs=1e-9)


# ------------------------------------------------------------------------------------ the toy model
@pytest.mark.slow
def test_both_ends_reproduce_their_pictures(two_pictures, pictures):
    result = two_pictures
    assert result.request.scheduler == "ddim" and result.request.guidance == 1.0
    assert len(result.frames) == 4 and result.ts[0] == 0.0 and result.ts[-1] == 1.0
    targets = [images.load(p, 64) for p in pictures]
    measured = [inversion.psnr(result.frames[0], targets[0]), inversion.psnr(result.frames[-1], targets[1])]
    assert result.reconstruction == [round(measured[0], 2), round(measured[1], 2)]
    assert min(measured) >= 24.0, measured
    # and on the way the frames leave the first picture for the second
    to_a = [inversion.psnr(f, targets[0]) for f in result.frames]
    to_b = [inversion.psnr(f, targets[1]) for f in result.frames]
    assert to_a == sorted(to_a, reverse=True) and to_b == sorted(to_b), (to_a, to_b)


@pytest.mark.slow
def test_guidance_on_the_inverted_noise_strays_from_the_picture(toy, pictures, two_pictures):
    """Why picture morphs render without guidance: with CFG the ends no longer retrace the inversion (with
    described pictures: an empty prompt is the unconditional one, where guidance changes nothing)."""
    described = dict(images=list(pictures), prompts=["a red circle on a blue background", STAR], frames=2,
                     pacing="uniform")
    plain = toy.render(RenderRequest(**described))
    guided = toy.render(RenderRequest(**described, guidance=7.5))
    assert min(plain.reconstruction) >= 24.0
    assert max(guided.reconstruction) < min(plain.reconstruction) - 3, (guided.reconstruction, plain.reconstruction)


@pytest.mark.slow
def test_picture_to_prompt_ends_on_the_prompts_own_render(toy, pictures):
    mixed = toy.render(RenderRequest(images=[pictures[0], None], prompts=["", STAR], frames=3, seed=5,
                                     pacing="uniform"))
    assert mixed.reconstruction[0] >= 24.0 and mixed.reconstruction[1] is None
    # The prompt end is the plain render of the prompt with the seed, the same sampler and guidance
    plain = toy.render(RenderRequest(prompts=["a red circle", STAR], frames=2, seed=5, scheduler="ddim",
                                     guidance=1.0, pacing="uniform"))
    assert np.array_equal(np.asarray(mixed.frames[-1]), np.asarray(plain.frames[-1]))
    from toykit import judge

    assert judge.judge(mixed.frames[-1]).shape == "star"


@pytest.mark.slow
def test_reroll_gives_a_new_middle_between_the_same_pictures(toy, pictures, two_pictures):
    other = toy.render(RenderRequest(images=list(pictures), frames=4, pacing="uniform", seed=99))
    for i in (0, -1):
        assert np.array_equal(np.asarray(other.frames[i]), np.asarray(two_pictures.frames[i]))
    middle = np.abs(np.asarray(other.frames[1], int) - np.asarray(two_pictures.frames[1], int)).mean()
    assert middle > 0.5


@pytest.mark.slow
def test_refine_between_two_frames_of_a_picture_morph_keeps_them(toy, two_pictures):
    req = two_pictures.request
    t0, t1 = two_pictures.ts[1], two_pictures.ts[2]
    refined = toy.render(req.refine(t0, t1, 3))
    assert len(refined.ts) == 3 and refined.ts[0] == t0 and refined.ts[-1] == t1
    # the same frames, up to the float rounding of other batches (as every refine: README)
    assert _max_diff(_arrays(refined)[::2], _arrays(two_pictures)[1:3]) <= BATCH_TOLERANCE
    assert refined.reconstruction == [None, None]  # neither end of the morph is in the range


# ------------------------------------------------------------------------------------ the smooth path
#: Frames rendered in other batches differ by float rounding at most (uint8 steps), as in test_anchoring.
BATCH_TOLERANCE = 2


def _arrays(result):
    return [np.asarray(im).astype(int) for im in result.frames]


def _max_diff(a, b):
    return max(int(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


@pytest.fixture
def anchor_mode(toy):
    """Sets the module's Morpher's anchor mode and batch size for one test, and puts them back after it."""
    saved = toy.anchor_mode, toy.batch_size

    def choose(mode: str, batch: int | None = None) -> None:
        toy.anchor_mode, toy.batch_size = mode, batch

    yield choose
    toy.anchor_mode, toy.batch_size = saved


@pytest.mark.slow
def test_picture_morphs_take_the_smooth_path_anchored_to_the_pictures_renders(toy, pictures, two_pictures):
    """The frames in between attend to the two ends' own keys/values: the ends (the inverted pictures denoised
    back) are the plain path's, the middle is not."""
    assert two_pictures.request.path == "smooth"
    plain = toy.render(RenderRequest(images=list(pictures), frames=4, pacing="uniform", path="plain"))
    smooth, flat = _arrays(two_pictures), _arrays(plain)
    for i in (0, -1):
        assert np.abs(smooth[i] - flat[i]).max() <= 1
    assert all(np.abs(smooth[i] - flat[i]).mean() > 0.5 for i in (1, 2))
    assert min(two_pictures.reconstruction) >= 24.0 and plain.reconstruction == pytest.approx(
        two_pictures.reconstruction, abs=0.2)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cache", "batch"])
def test_smooth_picture_frames_do_not_depend_on_their_batch_and_refine_keeps_them(toy, pictures, anchor_mode, mode):
    """Either way of getting the ends' keys/values (cached, or riding along in each batch): a frame comes out
    the same whatever batch it is in, and a refine (anchored to the same two inverted ends) gives back the
    frames it refines."""
    req = RenderRequest(images=list(pictures), frames=5, pacing="uniform", seed=2)
    anchor_mode(mode, 1)
    one = toy.render(req)
    anchor_mode(mode, 4)
    four = toy.render(req)
    assert one.ts == four.ts == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert _max_diff(_arrays(one), _arrays(four)) <= BATCH_TOLERANCE
    assert min(four.reconstruction) >= 24.0
    refined = toy.render(four.request.refine(0.25, 0.75, 3))
    assert refined.ts == [0.25, 0.5, 0.75] and refined.reconstruction == [None, None]
    assert _max_diff(_arrays(four)[1:4], _arrays(refined)) <= BATCH_TOLERANCE


@pytest.mark.slow
def test_a_refine_reaching_a_picture_end_reports_its_reconstruction(toy, two_pictures):
    """The reconstruction is of the ends among the frames delivered: a refine from the first picture reports the
    first end only."""
    refined = toy.render(two_pictures.request.refine(0.0, two_pictures.ts[1], 2))
    assert refined.reconstruction == [two_pictures.reconstruction[0], None]


# --------------------------------------------------------------------------------------- the request
@pytest.mark.parametrize("changes,needle", [
    ({"images": ["a.png"]}, "two ends"),
    ({"images": [None, None]}, "at least one picture"),
    ({"images": ["a.png", ""]}, "picture file's path"),
    ({"images": ["a.png", None], "prompts": ["", ""]}, "second prompt is empty"),
    ({"images": ["a.png", "b.png"], "prompts": ["x", "y", "z"]}, "not part of a chain"),
    ({"images": ["a.png", "b.png"], "loop": True}, "not part of a chain or a loop"),
    ({"images": ["a.png", "b.png"], "seed_b": 3}, "second seed"),
    ({"images": ["a.png", "b.png"], "scheduler": "dpm++2m"}, "sample with ddim"),
])
def test_picture_requests_are_checked(changes, needle):
    with pytest.raises(MorphError, match=needle):
        RenderRequest(**changes).validate()


def test_picture_request_defaults_and_round_trip():
    r = RenderRequest(images=["a.png", None], prompts=["", " a  cat "]).validate()
    assert (r.prompts, r.images, r.scheduler, r.guidance) == (["", "a cat"], ["a.png", None], "ddim", 1.0)
    assert RenderRequest.from_dict(r.to_dict()) == r
    assert r.refine(0.2, 0.4, 3).validate().images == ["a.png", None]
    assert RenderRequest(images=["a.png", "b.png"], guidance=4).validate().guidance == 4


# --------------------------------------------------------------------------------------- command line
def test_cli_refuses_a_bad_picture_before_loading_the_model(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"just text, named like a picture")
    out = tmp_path / "o.gif"
    assert main(["render", "--model", "no/such-model-anywhere", "--image-a", str(bad), "a cat", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a PNG, JPEG, WebP or GIF" in err and "notes.png" in err and not out.exists()
    assert main(["render", "--image-a", str(bad), "--image-b", str(bad), "one prompt", "-o", str(out)]) == 2
    assert "give no prompt or two" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_morphs_a_picture_into_a_prompt(tmp_path, capsys, pictures):
    out = tmp_path / "o.gif"
    assert main(["render", "--model", "toy", "--image-a", pictures[0], STAR, "--frames", "3", "--pacing",
                 "uniform", "-q", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "sampling: 25 steps ddim, guidance 1" in stdout
    db = float(stdout.split("reconstruction: the first frame matches its picture at ")[1].split(" dB")[0])
    assert db >= 24.0
    gif = Image.open(io.BytesIO(out.read_bytes()))
    assert gif.n_frames == 3


@pytest.mark.slow
def test_inverted_trajectory_is_kept_for_each_picture_end(toy, pictures):
    """What attention anchoring needs: each picture end's latent at every sampling step, the noise first."""
    from morph.render import Render

    req = toy.profile.fill(RenderRequest(images=[pictures[0], None], prompts=["", STAR], frames=2).validate())
    with torch.inference_mode():
        render = Render(toy, req, None, None)
        texts = [toy.encode(p)[0] for p in req.prompts]
        ends = inversion.PictureEnds(toy, req.images, 64, texts, 1.0, render._scheduler, toy.noise(0, 64))
    first, second = ends.ends
    assert second is None and len(first.trajectory) == req.steps
    assert torch.equal(first.trajectory[0], first.noise)
    assert torch.equal(ends.noise(0.0), first.noise) and torch.equal(ends.noise(1.0), toy.noise(0, 64))
