"""Model loading: the built-in models, the generated tokenizer, schedulers, and clear load failures."""
import json
import os

import pytest
import torch

from morph import builtin, models
from morph.request import SCHEDULERS, MorphError

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
    again = builtin.build_builtin(tiny=True)
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
    vocab_dir = builtin.generated_tokenizer_dir()
    with open(os.path.join(vocab_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    merges = open(os.path.join(vocab_dir, "merges.txt"), encoding="utf-8").read().splitlines()[1:]
    assert 512 + 300 < len(vocab) < 2000 and len(merges) > 300


def test_sd15_random_has_the_real_architecture():
    # Built on the meta device: same modules and parameter counts, no memory, no time.
    pipe = builtin.build_builtin(tiny=False, device=torch.device("meta"))
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


@pytest.fixture(scope="module")
def tiny_sdxl():
    return models.load_pipeline("tiny-sdxl", "cpu")


def test_tiny_sdxl_uses_the_real_sdxl_pipeline_classes(tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    assert isinstance(tiny_sdxl, StableDiffusionXLPipeline) and models.is_sdxl(tiny_sdxl)
    assert isinstance(tiny_sdxl.text_encoder, CLIPTextModel)
    assert isinstance(tiny_sdxl.text_encoder_2, CLIPTextModelWithProjection)
    assert tiny_sdxl.unet.config.addition_embed_type == "text_time"
    assert models.native_size(tiny_sdxl) == 96
    assert not models.is_sdxl(models.load_pipeline("tiny", "cpu"))
    # as fast as tiny: about a million UNet parameters
    assert sum(p.numel() for p in tiny_sdxl.unet.parameters()) < 2_000_000


def test_sdxl_random_has_the_real_architecture():
    pipe = builtin.build_builtin(tiny=False, device=torch.device("meta"), xl=True)
    count = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("unet", "vae")}
    assert count["unet"] == 2_567_463_684  # SDXL base 1.0's UNet
    assert count["vae"] == 83_653_863
    unet = pipe.unet.config
    assert tuple(unet.block_out_channels) == (320, 640, 1280) and unet.cross_attention_dim == 2048
    assert tuple(unet.transformer_layers_per_block) == (1, 2, 10)
    te2 = pipe.text_encoder_2.config
    assert (te2.hidden_size, te2.num_hidden_layers, te2.projection_dim) == (1280, 32, 1280)
    assert models.native_size(pipe) == 1024
    assert pipe.vae.config.scaling_factor == 0.13025 and pipe.vae.config.force_upcast


@pytest.mark.parametrize("name,cls", [("tiny", "StableDiffusionPipeline"), ("tiny-sdxl", "StableDiffusionXLPipeline")])
def test_a_saved_model_folder_loads_with_its_pipeline_class(tmp_path, name, cls):
    """The from_pretrained path on real files: a saved built-in model loads as itself, same weights."""
    original = models.load_pipeline(name, "cpu")
    original.save_pretrained(tmp_path / name)
    loaded = models.load_pipeline(str(tmp_path / name), "cpu")
    assert type(loaded).__name__ == cls and loaded is not original
    assert models.native_size(loaded) == models.native_size(original)
    ours, theirs = original.unet.state_dict(), loaded.unet.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("class_name", ["StableDiffusion3Pipeline", "FluxPipeline", "KandinskyV22Pipeline"])
def test_other_architectures_are_refused_naming_what_is_supported(tmp_path, class_name):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": class_name,
                                                            "transformer": ["diffusers", "SD3Transformer2DModel"]}))
    with pytest.raises(MorphError) as info:
        models.load_pipeline(str(tmp_path), "cpu")
    msg = str(info.value)
    assert class_name in msg and "1.x/2.x" in msg and "SDXL" in msg and "'tiny'" in msg
    assert "\n" not in msg


def test_lcm_scheduler_and_trailing_spacing(tiny, caplog):
    lcm = models.make_scheduler(tiny, "lcm")
    assert type(lcm).__name__ == "LCMScheduler" and lcm.config.beta_end == tiny.scheduler.config.beta_end
    assert "were passed to LCMScheduler" not in caplog.text  # no warning per batch about PNDM-only settings
    euler = models.make_scheduler(tiny, "euler", timestep_spacing="trailing")
    euler.set_timesteps(4)
    assert euler.timesteps.tolist() == [999.0, 749.0, 499.0, 249.0]  # Turbo/Lightning's spacing
    own = models.make_scheduler(tiny, "euler")
    own.set_timesteps(4)
    assert own.timesteps.tolist() != euler.timesteps.tolist()  # without it, the model's own spacing


def test_a_model_with_pickled_weights_is_refused_naming_safetensors(tmp_path):
    """Pickled weights (.bin) can run code when loaded: only safetensors load, and the refusal says so."""
    original = models.load_pipeline("tiny", "cpu")
    folder = tmp_path / "pickled"
    original.save_pretrained(folder, safe_serialization=False)
    assert list(folder.glob("unet/*.bin")) and not list(folder.glob("unet/*.safetensors"))  # the UNet is pickled
    with pytest.raises(models.ModelLoadError) as info:
        models.load_pipeline(str(folder), "cpu")
    assert "safetensors" in str(info.value) and "pickled" in str(info.value)
    # the same model saved with safetensors loads
    original.save_pretrained(tmp_path / "safe")
    assert models.load_pipeline(str(tmp_path / "safe"), "cpu").unet is not None
