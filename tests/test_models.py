"""Model loading: the built-in models, the generated tokenizer, schedulers, and clear load failures."""
import json
import os

import pytest
import torch

from morph import models
from morph.request import MorphError, SCHEDULERS

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return models.load_pipeline("tiny", "cpu")


def test_tiny_uses_the_real_pipeline_classes_and_is_cached(tiny):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    assert isinstance(tiny, StableDiffusionPipeline)
    assert isinstance(tiny.unet, UNet2DConditionModel) and isinstance(tiny.vae, AutoencoderKL)
    assert isinstance(tiny.text_encoder, CLIPTextModel) and isinstance(tiny.tokenizer, CLIPTokenizer)
    assert tiny.safety_checker is None
    assert models.native_size(tiny) == 64
    assert tiny.unet.dtype == torch.float32
    assert models.load_pipeline("tiny", "cpu") is tiny


def test_tiny_weights_are_the_same_every_time_and_leave_the_callers_rng_alone(tiny):
    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    again = models._build_builtin(tiny=True)
    assert torch.equal(torch.rand(3), expected_next)  # building did not consume the global RNG
    for name in ("unet", "vae", "text_encoder"):
        ours = getattr(tiny, name).state_dict()
        theirs = getattr(again, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name


def test_generated_tokenizer_behaves_like_clip(tiny):
    tok = tiny.tokenizer
    assert tok.model_max_length == 77
    ids = tok("A photo of a dog, highly detailed").input_ids
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert tokens[1:-1] == ["a</w>", "photo</w>", "of</w>", "a</w>", "dog</w>", ",</w>", "highly</w>",
                            "detailed</w>"]
    # Unknown words fall back to byte-level pieces, never to <unk>.
    odd = tok.convert_ids_to_tokens(tok("xyzzy ünïcode").input_ids)[1:-1]
    assert "<|endoftext|>" not in odd and "".join(odd).replace("</w>", "") == "xyzzyÃ¼nÃ¯code"
    padded = tok("dog", padding="max_length", max_length=77, truncation=True).input_ids
    assert len(padded) == 77
    long = tok(" ".join(["dog"] * 100), truncation=True, max_length=77).input_ids
    assert len(long) == 77 and long[-1] == tok.eos_token_id
    vocab_dir = models._generated_tokenizer_dir()
    with open(os.path.join(vocab_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    merges = open(os.path.join(vocab_dir, "merges.txt"), encoding="utf-8").read().splitlines()[1:]
    assert 512 + 300 < len(vocab) < 2000 and len(merges) > 300


def test_sd15_random_has_the_real_architecture():
    # Built on the meta device: same modules and parameter counts, no memory, no time.
    pipe = models._build_builtin(tiny=False, device=torch.device("meta"))
    count = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("unet", "vae")}
    assert count["unet"] == 859_520_964  # SD 1.5's UNet
    assert count["vae"] == 83_653_863  # SD's VAE
    assert tuple(pipe.unet.config.block_out_channels) == (320, 640, 1280, 1280)
    assert pipe.unet.config.cross_attention_dim == 768
    te = pipe.text_encoder.config
    assert (te.hidden_size, te.num_hidden_layers, te.num_attention_heads) == (768, 12, 12)
    assert models.native_size(pipe) == 512


@pytest.mark.parametrize("name,cls,extra", [
    ("dpm++2m", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    ("ddim", "DDIMScheduler", {"clip_sample": False}),  # as SD 1.x's scheduler file says
    ("pndm", "PNDMScheduler", {}),
    ("euler", "EulerDiscreteScheduler", {}),
])
def test_schedulers_by_name_share_the_models_noise_schedule(tiny, name, cls, extra):
    sched = models.make_scheduler(tiny, name)
    assert type(sched).__name__ == cls
    for key, value in extra.items():
        assert sched.config[key] == value
    for key in ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps"):
        assert sched.config[key] == tiny.scheduler.config[key]
    assert sched is not models.make_scheduler(tiny, name)  # fresh each time: multistep state


def test_every_request_scheduler_has_a_builder(tiny):
    for name in SCHEDULERS:
        models.make_scheduler(tiny, name)
    with pytest.raises(MorphError, match="unknown scheduler"):
        models.make_scheduler(tiny, "euler_a")


def test_unknown_repo_id_says_how_to_fix_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MorphError) as info:
        models.load_pipeline("no-such-owner/no-such-model-xyz", "cpu")
    msg = str(info.value)
    assert "no-such-owner/no-such-model-xyz" in msg
    assert "HF_HUB_OFFLINE" in msg and "'tiny'" in msg and "1.x/2.x" in msg
    assert "Traceback" not in msg and "\n" not in msg


def test_missing_folder_and_non_pipeline_folder(tmp_path):
    with pytest.raises(MorphError, match="No such folder") as info:
        models.load_pipeline(str(tmp_path / "missing"), "cpu")
    assert "'tiny'" in str(info.value)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(MorphError, match="model_index.json"):
        models.load_pipeline(str(tmp_path), "cpu")
    with pytest.raises(MorphError, match="no model given"):
        models.load_pipeline("  ", "cpu")


def test_devices():
    assert models.resolve_device("cpu").type == "cpu"
    assert models.resolve_device(None).type in ("cuda", "mps", "cpu")
    with pytest.raises(MorphError, match="unknown device"):
        models.resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(MorphError, match="no usable CUDA"):
            models.resolve_device("cuda")
