"""Loading Stable Diffusion pipelines (real or built in-process), LoRA styles, and building schedulers.

``load_pipeline(model_id)`` accepts:

* any diffusers Stable Diffusion 1.x/2.x (``StableDiffusionPipeline``) or SDXL (``StableDiffusionXLPipeline``)
  repo id or local directory (``from_pretrained``), distilled variants included (SD-Turbo, SDXL-Turbo,
  LCM); other pipelines (SD3, Flux, ...) are refused with a message naming what is supported;
* ``tiny``, ``tiny-sdxl``, ``sd15-random``, ``sdxl-random``: the same pipeline classes built in-process with
  random weights from a fixed seed (tiny ones for tests and offline demos, the real architectures for
  benchmarks without weights): :mod:`morph.builtin`;
* ``toy``: a small model *trained* on pictures of coloured shapes ("a big red star on a blue background"),
  committed in ``morph/toy_model/`` and loaded from there by ``from_pretrained`` like any local model
  (trained by ``python -m toykit train``; see :mod:`toykit.train`). Native size 64 px.

LoRA styles (``loras``: (path, weight) pairs) are loaded with diffusers' LoRA loader (``peft``) and fused into
the weights at load time: a render costs the same with them as without.
"""
from __future__ import annotations

import inspect
import os
import threading

import torch

from morph.builtin import SD15_RANDOM, SDXL_RANDOM, TINY, TINY_SDXL, build_builtin
from morph.request import SCHEDULERS, ModelLoadError, MorphError

TOY = "toy"
#: Model names that need no download.
BUILTIN_MODELS = (TINY, TINY_SDXL, SD15_RANDOM, SDXL_RANDOM, TOY)
#: Where the trained ``toy`` model lives (a diffusers pipeline folder, package data).
TOY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_model")
#: What ``MORPH_MODEL`` may be, for messages.
SUPPORTED = ("Stable Diffusion 1.x/2.x (StableDiffusionPipeline, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5, "
             "stabilityai/sd-turbo) or SDXL (StableDiffusionXLPipeline, e.g. "
             "stabilityai/stable-diffusion-xl-base-1.0, stabilityai/sdxl-turbo)")
# model_index.json classes loaded as SD 1.x/2.x and as SDXL (an LCM checkpoint is an SD 1.5 with an LCM UNet).
_SD_CLASSES = ("StableDiffusionPipeline", "LatentConsistencyModelPipeline")
_SDXL_CLASSES = ("StableDiffusionXLPipeline",)

_cache: dict[tuple, object] = {}
_cache_lock = threading.Lock()


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/"auto" picks cuda, then mps, then cpu."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise MorphError(f"unknown device '{device}': use cpu, cuda, cuda:N or mps.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MorphError(f"device '{device}' was asked for but this machine has no usable CUDA GPU; use cpu.")
    return dev


def load_pipeline(model_id: str, device: str | torch.device | None = None,
                  loras: tuple[tuple[str, float], ...] = ()):
    """Return a ready ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline`` on ``device``, with the
    ``loras`` ((path, weight) pairs) fused in; cached per (model id, device, loras).

    fp16 on CUDA (diffusers uses PyTorch's scaled-dot-product attention by default), fp32 elsewhere; an SDXL
    VAE that overflows in fp16 (``force_upcast`` in its config) is kept in fp32, as diffusers' SDXL pipeline
    decodes. The safety checker is off. Raises MorphError with a fix-it message when the model or a LoRA
    cannot be loaded.
    """
    model_id = (model_id or "").strip()
    if not model_id:
        raise MorphError("no model given: pass a Stable Diffusion 1.x/2.x or SDXL repo id or folder, or 'tiny'.")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    loras = tuple((str(path), float(weight)) for path, weight in loras)
    key = (model_id, str(dev), loras)
    with _cache_lock:
        pipe = _cache.get(key)
        if pipe is None:
            dtype = torch.float16 if dev.type == "cuda" else torch.float32
            if model_id == TOY:
                pipe = _from_pretrained(TOY_DIR, dtype)
            elif model_id in BUILTIN_MODELS:
                pipe = build_builtin(tiny=model_id in (TINY, TINY_SDXL), device=dev,
                                     xl=model_id in (TINY_SDXL, SDXL_RANDOM))
            else:
                pipe = _from_pretrained(model_id, dtype)
            pipe = pipe.to(dev)
            if pipe.unet.dtype != dtype:  # built-in models are built in fp32
                pipe = pipe.to(dtype)
            if is_sdxl(pipe) and dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
                pipe.vae.to(torch.float32)
            _use_sdpa(pipe)
            if loras:
                _fuse_loras(pipe, loras, model_id)
            pipe.set_progress_bar_config(disable=True)
            _cache[key] = pipe
    return pipe


def is_sdxl(pipe) -> bool:
    """Whether ``pipe`` is an SDXL pipeline (two text encoders, pooled embedding, size conditioning)."""
    return getattr(pipe, "text_encoder_2", None) is not None


def native_size(pipe) -> int:
    """The image size (pixels) the model was trained at: UNet sample size x VAE scale factor."""
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def make_scheduler(pipe, name: str, timestep_spacing: str | None = None):
    """A fresh scheduler ``name`` (one of ``morph.request.SCHEDULERS``) built from the pipeline's config, with
    its ``timestep_spacing`` changed when given (few-step profiles want "trailing").

    Multistep schedulers keep state between steps, so callers take a fresh one per denoising run.
    """
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
        PNDMScheduler,
    )

    config = pipe.scheduler.config
    # A keyword, not a config entry: from_config ignores entries the config file left to defaults.
    kw = {"timestep_spacing": timestep_spacing} if timestep_spacing else {}
    if name == "dpm++2m":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2, **kw)
    if name == "ddim":
        return DDIMScheduler.from_config(config, **kw)  # eta=0 is the step default: deterministic
    if name == "pndm":
        return PNDMScheduler.from_config(config, **kw)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config, **kw)
    if name == "lcm":  # adds noise per step: the engine makes it the same for every frame
        # only its own settings: the others (e.g. PNDM's skip_prk_steps) would log a warning for every batch
        known = set(inspect.signature(LCMScheduler.__init__).parameters) | {"_use_default_values"}
        return LCMScheduler.from_config({k: v for k, v in config.items() if k in known}, **kw)
    raise MorphError(f"unknown scheduler '{name}'; use one of: {', '.join(SCHEDULERS)}.")


# --------------------------------------------------------------------------------------------- real models
def _from_pretrained(model_id: str, dtype):
    """Load ``model_id`` with the pipeline class its model_index.json names, if that is one we render with."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    try:
        class_name = DiffusionPipeline.load_config(model_id).get("_class_name", "")
    except Exception as err:  # every failure becomes one user-facing message
        raise ModelLoadError(_load_failure_message(model_id, err)) from err
    if class_name in _SDXL_CLASSES:
        cls, kwargs = StableDiffusionXLPipeline, {}
    elif class_name in _SD_CLASSES:
        cls, kwargs = StableDiffusionPipeline, dict(safety_checker=None, requires_safety_checker=False)
    else:
        raise ModelLoadError(f"'{model_id}' is a {class_name or 'pipeline without a class name'}, which this bot does "
                             f"not render with. Supported: {SUPPORTED}; SD3, Flux and other architectures are not. "
                             "'tiny' is a test model that needs no download.")
    try:
        # safetensors only: pickled weights (.bin, .ckpt) can run code when they are loaded
        pipe = cls.from_pretrained(model_id, use_safetensors=True, **kwargs, dtype=dtype)
    except Exception as err:  # every failure becomes one user-facing message
        raise ModelLoadError(_load_failure_message(model_id, err)) from err
    if getattr(pipe, "unet", None) is None:
        raise ModelLoadError(f"'{model_id}' loaded, but it has no UNet (a transformer-based model?). "
                             f"Supported: {SUPPORTED}.")
    return pipe


def _load_failure_message(model_id: str, err: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    is_path = model_id.startswith((".", "/", "~")) or os.sep in model_id and not _looks_like_repo_id(model_id)
    lines = [f"Could not load the model '{model_id}'."]
    if "safetensors" in str(err).lower():
        lines.append("It has no .safetensors weights for every part, and only those are loaded: pickled weights "
                     "(.bin, .ckpt) can run code when loaded. Use a version of the model saved with safetensors "
                     "(diffusers: save_pretrained(..., safe_serialization=True)).")
    elif is_path or os.path.exists(model_id):
        if not os.path.isdir(os.path.expanduser(model_id)):
            lines.append("No such folder: check the path.")
        else:
            lines.append("The folder is not a diffusers pipeline (it needs model_index.json with unet/, vae/, "
                         "text_encoder/, tokenizer/, scheduler/); single-file checkpoints are not supported.")
    else:
        if offline:
            lines.append("HF_HUB_OFFLINE is set, so only models already in the Hugging Face cache can be used: "
                         "download it once with network access (unset HF_HUB_OFFLINE), or give a local folder.")
        else:
            lines.append("Check the spelling of the repo id (owner/name), your network connection, and for gated "
                         "models that you accepted the licence and are logged in (HF_TOKEN).")
        lines.append(f"It must be a diffusers pipeline of {SUPPORTED}; SD3 and Flux are not supported.")
    lines.append("To try the bot without any download, use the model 'tiny'.")
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    lines.append(f"(details: {type(err).__name__}: {detail})")
    return " ".join(lines)


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts) and not os.path.exists(text)


def _fuse_loras(pipe, loras: tuple[tuple[str, float], ...], model_id: str) -> None:
    """Load each LoRA as a peft adapter, weight them, and fuse them into the UNet/text encoder weights.

    Fused and unloaded, they leave plain modules behind: renders cost the same as without them, and
    ``torch.compile`` sees an ordinary UNet. A LoRA made for another architecture fails here with a
    MorphError naming it, and one whose keys match nothing of this model too (diffusers only warns).
    """
    from safetensors.torch import load_file

    names = []
    for i, (path, _weight) in enumerate(loras):
        name = f"style{i}"
        try:
            pipe.load_lora_weights(load_file(path), adapter_name=name)
        except Exception as err:  # wrong architecture, corrupt file, missing peft ...
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ModelLoadError(f"Could not load the LoRA '{path}' into '{model_id}': is it made for this model's "
                                 f"architecture (SD 1.x/2.x or SDXL)? ({type(err).__name__}: {detail})") from err
        if not any(name in adapters for adapters in pipe.get_list_adapters().values()):
            raise ModelLoadError(f"The LoRA '{path}' has no weights that fit '{model_id}': is it made for this "
                                 "model's architecture (SD 1.x/2.x or SDXL)?")
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[weight for _path, weight in loras])
    pipe.fuse_lora(adapter_names=names)
    pipe.unload_lora_weights()  # keeps the fused weights, drops the adapter layers


def _use_sdpa(pipe) -> None:
    """Make sure the UNet and VAE use PyTorch's fused attention (diffusers' default on torch 2)."""
    try:
        from diffusers.models.attention_processor import AttnProcessor2_0
    except ImportError:  # pragma: no cover — very old diffusers
        return
    for module in (pipe.unet, pipe.vae):
        try:
            module.set_attn_processor(AttnProcessor2_0())
        except Exception:  # noqa: BLE001 — models with custom processors keep theirs, whatever they raise
            pass
