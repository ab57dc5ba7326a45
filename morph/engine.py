"""The loaded model and its API: :class:`Morpher` loads a Stable Diffusion (1.x/2.x or SDXL) pipeline once and
renders prompt morphs with it.

It holds what every render shares: the pipeline (:mod:`morph.models`) and its sampling profile
(:mod:`morph.profiles`), the prompts' text embeddings (:meth:`Morpher.encode`), the seeded starting noise,
the UNet's extra inputs, the optionally compiled UNet, frames per batch from free memory and the cap an
out-of-memory retry leaves, and a lock per pipeline. One render's steps (encode, noise, pace, denoise in
batches, decode) are :class:`morph.render.Render`, which :meth:`Morpher.render` runs.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable

import torch

from morph.models import is_sdxl, load_pipeline, native_size, resolve_device
from morph.profiles import profile_for
from morph.render import Render, TextEmbedding
from morph.request import CLIP_MAX_TOKENS, MorphError, Progress, RenderRequest, RenderResult

#: Frames per UNet batch on CPU/MPS, where bigger batches do not run faster per frame.
CPU_BATCH = 4
#: Upper bound on frames per UNet batch on CUDA (x2 with guidance).
MAX_GPU_BATCH = 48
#: Rough activation memory per latent pixel per UNet sample for an SD 1.x UNet (320 base channels) in fp16
#: with fused attention; scaled by base channels and dtype size. OOM fallback covers a wrong guess.
_UNET_BYTES_PER_LATENT_PIXEL = 110_000
_VAE_BYTES_PER_PIXEL = 5_000  # SD VAE decoder (128 base channels), fp16, per output pixel


_PIPELINE_LOCKS: dict[int, threading.Lock] = {}  # pipelines live in models' cache for the process lifetime


def import_libraries() -> None:
    """Import everything loading a model and rendering need: torch, and the diffusers and transformers
    classes, which those libraries import lazily on first use. Seconds of Python work that holds the GIL;
    a program that must stay responsive (the bot's event loop) does it in a thread before it serves anyone.
    Importing this module (the engine) is part of it.
    """
    from diffusers import (  # noqa: F401 — loaded, not used
        AutoencoderKL,
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: F401 — loaded, not used


class Morpher:
    """Renders prompt morphs with one loaded Stable Diffusion (1.x/2.x or SDXL) pipeline.

    ``model``: a diffusers SD 1.x/2.x or SDXL repo id or folder, or a built-in model (``tiny``, ``tiny-sdxl``,
    ``sd15-random``, ``sdxl-random``; see :mod:`morph.builtin`). ``device``: None = cuda, then mps, then cpu.
    ``batch_size``: frames per UNet batch (None = chosen from free memory). ``compile``: run the UNet through
    ``torch.compile`` (see :meth:`_compile_unet`): True, or the name of a ``torch.compile`` mode
    (``"reduce-overhead"`` adds CUDA graphs; whether they pay: bench/RESULTS.md). ``loras``:
    (path, weight) pairs of LoRA styles fused in at load (:func:`morph.request.parse_loras` reads them).
    ``profile``: the sampling profile (:mod:`morph.profiles`) whose sampler, steps and guidance a request
    gets when it leaves them out; "auto" recognises it from the model. ``anchor_mode``: how the smooth path
    gets the ends' attention keys/values (:mod:`morph.anchoring`): "cache" (the ends denoised first, their
    attention inputs kept), "batch" (the ends ride along in every UNet batch), "auto" (cache where it fits
    :data:`morph.render.ANCHOR_CACHE_SHARE` of free memory). Render calls are serialised by a lock per pipeline.
    """

    def __init__(self, model: str = "tiny", device: str | None = None, batch_size: int | None = None,
                 compile: bool | str = False, loras: tuple[tuple[str, float], ...] = (),
                 profile: str | None = "auto", anchor_mode: str = "auto"):
        if anchor_mode not in ("auto", "cache", "batch"):
            raise MorphError(f"anchor mode must be auto, cache or batch (got {anchor_mode!r}).")
        self.anchor_mode = anchor_mode
        self.model = model
        self.device = resolve_device(device)
        self.pipe = load_pipeline(model, self.device, loras=loras)
        self.dtype = self.pipe.unet.dtype
        self.native_size = native_size(self.pipe)
        #: SDXL: two text encoders, a pooled embedding and size conditioning.
        self.xl = is_sdxl(self.pipe)
        #: The sampler, steps and guidance requests get by default (morph.profiles).
        self.profile = profile_for(self.pipe, profile)
        if batch_size is not None and int(batch_size) < 1:
            raise MorphError("batch size must be at least 1.")
        self.batch_size = int(batch_size) if batch_size else None
        self._batch_cap: int | None = None  # see batch_cap
        # One lock per loaded pipeline: Morphers sharing a cached pipeline never run it at the same time.
        self._lock = _PIPELINE_LOCKS.setdefault(id(self.pipe), threading.Lock())
        #: The UNet that renders call: the pipeline's own, or its compiled wrapper (same weights).
        self.unet = self.pipe.unet
        #: Why ``compile`` was asked for but the UNet runs eagerly (None when compile works or was not asked).
        self.compile_error: str | None = None
        if compile:
            self._compile_unet(None if compile is True else str(compile))

    def guided(self, guidance: float) -> bool:
        """Whether ``guidance`` runs classifier-free guidance (an unconditional half of every UNet batch): above
        1, and not on a UNet that takes the guidance scale as an input (LCM-distilled)."""
        return guidance > 1.0 and self.pipe.unet.config.time_cond_proj_dim is None

    # ------------------------------------------------------------------------------------------- info
    def device_info(self) -> dict:
        """Device name, total/free memory in bytes (None when unknown), model id, native size, profile name."""
        total = free = None
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            name = torch.cuda.get_device_name(index)
            free, total = torch.cuda.mem_get_info(index)
        else:
            name = self.device.type
            if self.device.type == "cpu":
                total, free = _host_memory()
        return {"device": name, "memory_total": total, "memory_free": free, "model": self.model,
                "native_size": self.native_size, "profile": self.profile.name}

    def free_memory(self) -> int:
        """Free memory in bytes where renders keep tensors: the GPU's on CUDA, else available RAM (0 if unknown)."""
        if self.device.type == "cuda":
            return int(torch.cuda.mem_get_info(self.device.index)[0])
        return int(_host_memory()[1] or 0)

    def frames_per_batch(self, size: int) -> int:
        """Frames per UNet batch at ``size`` px: the fixed ``batch_size``, else an estimate from free memory."""
        if self.batch_size:
            n = self.batch_size
        elif self.device.type != "cuda":
            n = CPU_BATCH
        else:
            free = self.free_memory()
            latent_pixels = (size // self.pipe.vae_scale_factor) ** 2
            scale = self.pipe.unet.config.block_out_channels[0] / 320 * self.dtype.itemsize / 2
            per_frame = 2 * latent_pixels * _UNET_BYTES_PER_LATENT_PIXEL * scale
            n = max(1, min(MAX_GPU_BATCH, int(free * 0.7 // per_frame)))
        if self._batch_cap is not None:
            n = min(n, self._batch_cap)
        return max(1, n)

    @property
    def batch_cap(self) -> int | None:
        """The most frames per UNet batch known to fit on this device (learnt from an out-of-memory retry,
        see :meth:`cap_batch`); None while nothing is known. :meth:`frames_per_batch` never exceeds it."""
        return self._batch_cap

    def cap_batch(self, frames: int | None) -> None:
        """Render at most ``frames`` per UNet batch from now on, in every later render of this Morpher
        (a render that ran out of memory halves its batch and calls this, so the next ones do not fail
        again); None forgets the cap."""
        if frames is not None and int(frames) < 1:
            raise ValueError(f"a batch holds at least one frame (got {frames})")
        self._batch_cap = None if frames is None else int(frames)

    def decode_slice(self, size: int) -> int:
        """Frames per VAE decode at ``size`` px: an estimate from free memory on CUDA (a render halves it on
        out-of-memory), else CPU_BATCH."""
        if self.device.type != "cuda":
            return CPU_BATCH
        free = self.free_memory()
        scale = self.pipe.vae.config.block_out_channels[0] / 128 * self.dtype.itemsize / 2
        return max(1, min(16, int(free * 0.5 // (size * size * _VAE_BYTES_PER_PIXEL * scale))))

    def _compile_unet(self, mode: str | None = None) -> None:
        """Compile the UNet once, with only the batch dimension dynamic, and warm it up at the native size.

        Worth it for a long-running worker: renders get faster, but compiling takes minutes for a real model
        (measured gains and compile times: bench/RESULTS.md). The warm-up pays that here, at start-up, for the
        batch sizes renders use (one frame and a full batch, x2 with guidance); the batch dimension is marked
        dynamic, so every batch size in between reuses those graphs. Only the batch: with ``dynamic=True`` the
        image sides turn symbolic too, and compiling SD 1.5's UNet that way took longer than a worker can wait
        (bench/RESULTS.md). If compiling fails (no C++ compiler, no Triton, an unsupported model), the UNet
        stays eager and ``compile_error`` says why: a slower worker beats a broken one.
        """
        side = self.native_size // self.pipe.vae_scale_factor
        per_frame = 2 if self.guided(self.profile.guidance) else 1  # samples per frame at the default guidance
        try:
            compiled = torch.compile(self.pipe.unet, mode=mode)
            with torch.inference_mode():  # renders run in inference mode: same guards, no recompile
                for frames in sorted({1, self.frames_per_batch(self.native_size)}):
                    n = per_frame * frames
                    x = torch.zeros(n, self.pipe.unet.config.in_channels, side, side, device=self.device,
                                    dtype=self.dtype)
                    kwargs = self.unet_kwargs(self.zero_text(n), self.native_size, self.profile.guidance)
                    # "maybe": a UNet whose code fixes the batch size still compiles, with static graphs
                    for tensor in [x, *_tensors(kwargs)]:
                        torch._dynamo.maybe_mark_dynamic(tensor, 0)
                    t = torch.tensor(999.0, device=self.device)  # float32, as Render passes every timestep
                    compiled(x, t, return_dict=False, **kwargs)
        except Exception as err:  # noqa: BLE001 — any compile failure falls back to the eager UNet
            first_line = (str(err).strip().splitlines() or [""])[0][:300]
            self.compile_error = f"{type(err).__name__}: {first_line}"
            return
        self.unet = compiled

    # ----------------------------------------------------------------------------------------- render
    def render(self, request: RenderRequest, progress: Callable[[Progress], None] | None = None,
               cancel: threading.Event | None = None) -> RenderResult:
        """Render the morph ``request`` (the steps: :mod:`morph.render`). Raises MorphError or Cancelled."""
        req = self.profile.fill(request.validate())
        with self._lock, torch.inference_mode():
            return Render(self, req, progress, cancel).run()

    # Plain tensors in, plain tensors out: used by Render and by tests/benchmarks.
    def encode(self, prompt: str) -> tuple[TextEmbedding, list[str]]:
        """The text embedding (1×77×D, SDXL: plus the pooled 1×P) of ``prompt`` and the words dropped past
        CLIP's 77 tokens (if any).

        SD 1.x/2.x: the text encoder's last hidden state. SDXL, as its pipeline does: both encoders' penultimate
        hidden states side by side, the pooled embedding from the second; and an empty prompt (only the
        negative prompt may be empty) is zeros when the model says ``force_zeros_for_empty_prompt``.
        """
        pipe = self.pipe
        pairs = [(pipe.tokenizer, pipe.text_encoder)]
        if self.xl:
            pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
        hidden, pooled, dropped = [], None, []
        for i, (tok, encoder) in enumerate(pairs):
            max_len = min(int(getattr(tok, "model_max_length", CLIP_MAX_TOKENS) or CLIP_MAX_TOKENS), CLIP_MAX_TOKENS)
            inputs = tok(prompt, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
            if i == 0:
                full = tok(prompt, truncation=False, verbose=False).input_ids
                if len(full) > max_len:
                    dropped = tok.decode(full[max_len - 1:-1]).split()
            ids = inputs.input_ids.to(self.device)
            if not self.xl:
                mask = None
                if getattr(encoder.config, "use_attention_mask", False):
                    mask = inputs.attention_mask.to(self.device)
                hidden.append(encoder(ids, attention_mask=mask)[0])
                continue
            out = encoder(ids, output_hidden_states=True)
            if out[0].ndim == 2:  # CLIPTextModelWithProjection: the pooled, projected embedding
                pooled = out[0]
            hidden.append(out.hidden_states[-2])
        text = TextEmbedding(torch.cat(hidden, dim=-1).to(self.dtype),
                             None if pooled is None else pooled.to(self.dtype))
        if self.xl and not prompt.strip() and pipe.config.get("force_zeros_for_empty_prompt", False):
            text = TextEmbedding(torch.zeros_like(text.tokens),
                                 None if text.pooled is None else torch.zeros_like(text.pooled))
        return text, dropped

    def zero_text(self, n: int) -> TextEmbedding:
        """A text embedding of zeros for ``n`` samples, shaped as :meth:`encode`'s (for warm-ups)."""
        config = self.pipe.unet.config
        tokens = torch.zeros(n, CLIP_MAX_TOKENS, config.cross_attention_dim, device=self.device, dtype=self.dtype)
        pooled = None
        if self.xl:
            pooled = torch.zeros(n, self.pipe.text_encoder_2.config.projection_dim, device=self.device,
                                 dtype=self.dtype)
        return TextEmbedding(tokens, pooled)

    def unet_kwargs(self, text: TextEmbedding, size: int, guidance: float) -> dict:
        """The UNet's keyword arguments besides sample and timestep for a batch conditioned on ``text``: the
        token embeddings; for SDXL the added conditions (pooled text, and the size/crop numbers
        (size, size, 0, 0, size, size) that its pipeline passes for a square image without crop); for a
        UNet that takes the guidance scale as an input (LCM-distilled), its embedding."""
        n = text.tokens.shape[0]
        kwargs: dict = {"encoder_hidden_states": text.tokens}
        if self.xl:
            time_ids = torch.tensor([[size, size, 0, 0, size, size]], device=self.device, dtype=self.dtype)
            kwargs["added_cond_kwargs"] = {"text_embeds": text.pooled, "time_ids": time_ids.repeat(n, 1)}
        dim = self.pipe.unet.config.time_cond_proj_dim
        if dim is not None:
            w = torch.full((n,), float(guidance) - 1.0)
            kwargs["timestep_cond"] = self.pipe.get_guidance_scale_embedding(w, embedding_dim=dim).to(
                self.device, self.dtype)
        return kwargs

    def noise(self, seed: int, size: int) -> torch.Tensor:
        """The starting latent noise (1×C×h×w, unscaled) for ``seed``: drawn on the CPU, so the same on every
        device, then moved to the model's device and dtype."""
        side = size // self.pipe.vae_scale_factor
        shape = (1, self.pipe.unet.config.in_channels, side, side)
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)
        return noise.to(self.device, self.dtype)


def _tensors(kwargs: dict):
    """The tensors among UNet keyword arguments (one level of nested dicts: SDXL's added conditions)."""
    for value in kwargs.values():
        if isinstance(value, dict):
            yield from _tensors(value)
        elif isinstance(value, torch.Tensor):
            yield value


def _host_memory() -> tuple[int | None, int | None]:
    """(total, available) RAM in bytes from the OS, or (None, None)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return total, free
