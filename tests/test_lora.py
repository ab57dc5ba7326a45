"""LoRA styles: a small LoRA that the test makes for the built-in model (peft, saved as diffusers saves LoRAs),
loaded by path with a weight. Loading it changes the frames, weight 0 restores them exactly, and the
fused weights render as diffusers' own unfused adapter does."""
import numpy as np
import pytest
import torch

from morph import Morpher, MorphError, RenderRequest, builtin, models
from morph.request import parse_loras

torch.set_num_threads(1)

REQ = RenderRequest(["a photo of a dog", "a photo of a cat"], frames=3, steps=3, seed=7, pacing="uniform", candidates=1)


def _frames(model, loras=()):
    return [np.asarray(im).astype(int) for im in Morpher(model, device="cpu", loras=loras).render(REQ).frames]


@pytest.mark.parametrize("model", ["tiny", "tiny-sdxl"])
def test_a_lora_changes_the_frames_and_weight_zero_restores_them(tmp_path, make_lora, model):
    ink = make_lora(model, tmp_path / "ink.safetensors")
    plain = _frames(model)
    styled = _frames(model, ((ink, 1.0),))
    off = _frames(model, ((ink, 0.0),))
    half = _frames(model, ((ink, 0.5),))
    assert all(np.abs(a - b).mean() > 2 for a, b in zip(plain, styled, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))
    # half the weight: in between
    for p, h, s in zip(plain, half, styled, strict=True):
        assert 0 < np.abs(p - h).mean() < np.abs(p - s).mean()
    assert all(np.array_equal(a, b) for a, b in zip(plain, _frames(model), strict=True))  # the plain model stayed plain


def test_fused_weights_render_as_the_unfused_adapter(tmp_path, make_lora):
    ink = make_lora("tiny", tmp_path / "ink.safetensors")
    fused = models.load_pipeline("tiny", "cpu", loras=((ink, 0.5),))
    reference = builtin.build_builtin(tiny=True)
    reference.load_lora_weights(str(tmp_path), weight_name="ink.safetensors", adapter_name="ink")
    reference.set_adapters(["ink"], adapter_weights=[0.5])
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    emb = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ours = fused.unet(x, 500, encoder_hidden_states=emb).sample
        theirs = reference.unet(x, 500, encoder_hidden_states=emb).sample
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert "lora" not in " ".join(name for name, _ in fused.unet.named_modules()).lower()  # plain modules left


def test_two_loras_each_with_its_own_weight(tmp_path, make_lora):
    ink = make_lora("tiny", tmp_path / "ink.safetensors", seed=0)
    film = make_lora("tiny", tmp_path / "film.safetensors", seed=1)
    both = _frames("tiny", ((ink, 1.0), (film, 1.0)))
    only_ink = _frames("tiny", ((ink, 1.0), (film, 0.0)))
    assert all(np.array_equal(a, b) for a, b in zip(only_ink, _frames("tiny", ((ink, 1.0),)), strict=True))
    assert all(np.abs(a - b).mean() > 1 for a, b in zip(both, only_ink, strict=True))


def test_a_lora_for_another_architecture_is_refused_naming_it(tmp_path, make_lora):
    xl_lora = make_lora("tiny-sdxl", tmp_path / "xl_style.safetensors")
    with pytest.raises(MorphError, match=r"LoRA '.*xl_style.safetensors' into 'tiny'.*architecture"):
        models.load_pipeline("tiny", "cpu", loras=((xl_lora, 1.0),))
    assert models.load_pipeline("tiny", "cpu") is models.load_pipeline("tiny", "cpu")  # nothing half-loaded cached


def test_lora_lists_are_parsed_and_checked(tmp_path):
    ink = tmp_path / "ink.safetensors"
    ink.write_bytes(b"")
    assert parse_loras(f"{ink}:0.8, {ink}") == ((str(ink), 0.8), (str(ink), 1.0))
    assert parse_loras(f"{ink}:-0.5") == ((str(ink), -0.5),)
    assert parse_loras("") == () and parse_loras(None) == ()
    for bad, words in [(f"{ink}:lots", "must be a number"), (f"{ink}:nan", "finite"),
                       (str(tmp_path / "none.safetensors"), "no such file"),
                       (str(tmp_path / "ink.ckpt"), ".safetensors")]:
        with pytest.raises(MorphError, match=words):
            parse_loras(bad)
