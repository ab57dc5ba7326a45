"""The morph renderer: encode both prompts once, interpolate, denoise every frame in batches, pace, decode.

One render, top to bottom (:meth:`Morpher.render`):

1. validate the request and fill in what it left out from the model's profile (:mod:`morph.profiles`:
   sampler, steps, guidance); encode every prompt (two, or a chain's up to four) and the negative prompt once
   (77 tokens each; for SDXL both text encoders' hidden states plus the pooled embedding);
2. one starting noise from ``seed`` for every frame of the whole path (slerped towards ``seed_b``'s noise by
   t when given, two-prompt morphs only), so a chain's frame at a prompt is that prompt's plain render;
3. choose the frames' path positions (uniform, or perceptual pacing: :func:`morph.pacing.pace`, with a frame
   on every prompt of a chain and on both ends of a refine range) and for each batch: interpolate the text
   embeddings between the two prompts of each frame's segment (lerp or per-token slerp; SDXL's pooled
   embedding alike), run the denoising loop below with classifier-free guidance in the same UNet batch (none
   when guidance is 0 or 1), decode the latents in slices;
4. measure neighbour distances, the midpoint and candidates of each segment.

The denoising loop follows diffusers' ``StableDiffusionPipeline.__call__`` (and ``StableDiffusionXLPipeline``'s:
pooled text and size/crop numbers as added conditions, the same for every frame) step for step (init noise
sigma, ``scale_model_input``, CFG, ``scheduler.step``), so the frames at t=0 and t=1 equal plain pipeline
renders of each prompt with the same seed. Multistep schedulers keep state, so every batch gets a fresh
scheduler. A sampler that adds fresh noise at each step (LCM) gets the same noise for every frame, drawn
from the seed (:func:`step_generators`), or neighbouring frames would disagree.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable

import torch

from morph import pacing
from morph.interpolate import lerp, slerp
from morph.models import CLIP_MAX_TOKENS, is_sdxl, load_pipeline, make_scheduler, native_size, resolve_device
from morph.profiles import profile_for
from morph.request import PROMPT_NAMES, Cancelled, MorphError, Progress, RenderRequest, RenderResult, Segment

#: Frames per UNet batch on CPU/MPS, where bigger batches do not run faster per frame.
CPU_BATCH = 4
#: Upper bound on frames per UNet batch on CUDA (x2 with guidance).
MAX_GPU_BATCH = 48
#: Rough activation memory per latent pixel per UNet sample for an SD 1.x UNet (320 base channels) in fp16
#: with fused attention; scaled by base channels and dtype size. OOM fallback covers a wrong guess.
_UNET_BYTES_PER_LATENT_PIXEL = 110_000
_VAE_BYTES_PER_PIXEL = 5_000  # SD VAE decoder (128 base channels), fp16, per output pixel


_PIPELINE_LOCKS: dict[int, threading.Lock] = {}  # pipelines live in models' cache for the process lifetime
#: Added to the request's seed for the per-step noise of samplers that add noise at each step (LCM), so that
#: noise is not the starting noise over again.
_STEP_NOISE_SEED_OFFSET = 0x5EED


def import_libraries() -> None:
    """Import everything loading a model and rendering need: torch, and the diffusers and transformers
    classes, which those libraries import lazily on first use. Seconds of Python work that holds the GIL;
    a program that must stay responsive (the bot's event loop) does it in a thread before it serves anyone.
    Importing this module (the engine) is part of it.
    """
    from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,  # noqa: F401 — loaded, not used
                           EulerDiscreteScheduler, LCMScheduler, PNDMScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: F401 — loaded, not used


def step_generators(seed: int, frames: int) -> list[torch.Generator]:
    """CPU generators for ``scheduler.step(generator=...)``, one per frame, all seeded alike from ``seed``.

    diffusers draws a sampler's per-step noise frame by frame from a list of generators, so every frame gets
    the same noise at each step (fresh from step to step), whatever the batch: a frame at t comes out the
    same in any render, and neighbours differ only by their text. On the CPU, so the same on every device.
    """
    return [torch.Generator("cpu").manual_seed(int(seed) + _STEP_NOISE_SEED_OFFSET) for _ in range(frames)]


@dataclass
class TextEmbedding:
    """A prompt's conditioning: token embeddings (n×77×D) and, for SDXL, the pooled embedding (n×P)."""

    tokens: torch.Tensor
    pooled: torch.Tensor | None = None

    def mix(self, other: TextEmbedding, t: float, how: str = "lerp") -> TextEmbedding:
        """Towards ``other`` by ``t``: lerp, or slerp of each token vector (and of the pooled vector)."""
        def f(a, b):
            return slerp(a, b, t, dim=-1) if how == "slerp" else lerp(a, b, t)

        return TextEmbedding(f(self.tokens, other.tokens),
                             None if self.pooled is None else f(self.pooled, other.pooled))

    def expand(self, n: int) -> TextEmbedding:
        """The same prompt for ``n`` samples (contiguous, as a compiled UNet was warmed up with)."""
        return TextEmbedding(self.tokens.expand(n, -1, -1).contiguous(),
                             None if self.pooled is None else self.pooled.expand(n, -1).contiguous())

    @staticmethod
    def cat(parts: list[TextEmbedding]) -> TextEmbedding:
        pooled = None if parts[0].pooled is None else torch.cat([p.pooled for p in parts if p.pooled is not None])
        return TextEmbedding(torch.cat([p.tokens for p in parts]), pooled)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):  # also torch.cuda.OutOfMemoryError
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class Morpher:
    """Renders prompt morphs with one loaded Stable Diffusion (1.x/2.x or SDXL) pipeline.

    ``model``: a diffusers SD 1.x/2.x or SDXL repo id or folder, or a built-in model (``tiny``, ``tiny-sdxl``,
    ``sd15-random``, ``sdxl-random``; see :mod:`morph.models`). ``device``: None = cuda, then mps, then cpu.
    ``batch_size``: frames per UNet batch (None = chosen from free memory). ``compile``: run the UNet through
    ``torch.compile`` (see :meth:`_compile_unet`): True, or the name of a ``torch.compile`` mode
    (``"reduce-overhead"`` adds CUDA graphs; whether they pay: bench/RESULTS.md). ``loras``:
    (path, weight) pairs of LoRA styles fused in at load (:func:`morph.request.parse_loras` reads them).
    ``profile``: the sampling profile (:mod:`morph.profiles`) whose sampler, steps and guidance a request
    gets when it leaves them out; "auto" recognises it from the model. Render calls are serialised by a lock
    per pipeline.
    """

    def __init__(self, model: str = "tiny", device: str | None = None, batch_size: int | None = None,
                 compile: bool | str = False, loras: tuple[tuple[str, float], ...] = (),
                 profile: str | None = "auto"):
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

    def frames_per_batch(self, size: int) -> int:
        """Frames per UNet batch at ``size`` px: the fixed ``batch_size``, else an estimate from free memory."""
        if self.batch_size:
            n = self.batch_size
        elif self.device.type != "cuda":
            n = CPU_BATCH
        else:
            free, _ = torch.cuda.mem_get_info(self.device.index if self.device.index is not None else None)
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

    def _decode_slice(self, size: int) -> int:
        if self.device.type != "cuda":
            return CPU_BATCH
        free, _ = torch.cuda.mem_get_info(self.device.index if self.device.index is not None else None)
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
                    t = torch.tensor(999.0, device=self.device)  # float32, as _denoise passes every timestep
                    compiled(x, t, return_dict=False, **kwargs)
        except Exception as err:  # noqa: BLE001 — any compile failure falls back to the eager UNet
            first_line = (str(err).strip().splitlines() or [""])[0][:300]
            self.compile_error = f"{type(err).__name__}: {first_line}"
            return
        self.unet = compiled

    # ----------------------------------------------------------------------------------------- render
    def render(self, request: RenderRequest, progress: Callable[[Progress], None] | None = None,
               cancel: threading.Event | None = None) -> RenderResult:
        """Render the morph ``request`` (see the module docstring). Raises MorphError or Cancelled."""
        req = self.profile.fill(request.validate())
        with self._lock, torch.inference_mode():
            return _Render(self, req, progress, cancel).run()

    # Plain tensors in, plain tensors out: used by _Render and by tests/benchmarks.
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


class _Render:
    """State of one render call (kept out of Morpher so concurrent-looking code stays obvious)."""

    def __init__(self, morpher: Morpher, req: RenderRequest, progress, cancel):
        self.m = morpher
        self.pipe = morpher.pipe
        self.req = req
        self.progress = progress
        self.cancel = cancel
        self.size = req.size or morpher.native_size
        self.warnings: list[str] = []
        self.frames_done = 0
        self.unet_evals = 0
        self.images: dict[float, object] = {}  # by path position (_key)
        assert req.guidance is not None and req.scheduler is not None, "Profile.fill sets them"
        self.guidance: float = req.guidance
        self.scheduler_name: str = req.scheduler
        self.guided = morpher.guided(self.guidance)
        self.steps_per_frame = 0

    def run(self) -> RenderResult:
        started = time.perf_counter()
        req = self.req
        self._report(0, 0, 0.0, "encode")
        self.embs = [self._encode(prompt, PROMPT_NAMES[i]) for i, prompt in enumerate(req.prompts)]
        self.uncond = self._encode(req.negative, "negative prompt") if self.guided else None
        if req.negative and not self.guided:
            self.warnings.append(f"The negative prompt was not used: at guidance {req.guidance:g} this model renders "
                                 "without classifier-free guidance, which is what a negative prompt steers.")
        self.noise_a = self.m.noise(req.seed, self.size)
        self.noise_b = self.m.noise(req.seed_b, self.size) if req.seed_b is not None else None
        self.steps_per_frame = len(self._scheduler().timesteps)

        batch = self.m.frames_per_batch(self.size)
        knots = req.knots()
        closed = req.closes_loop()  # the closing position is the first frame again: paced, not rendered twice
        ts, distances = pacing.pace(
            self._render_ts, pacing.feature_distance, req.frames + closed, batch,
            perceptual=req.pacing == "perceptual", knots=knots,
            on_round=lambda ts, d: self._report(0, 0, self._fraction(0, 0), "pace"))
        picks = pacing.segment_picks(ts, distances, knots, req.candidates, closed)
        segments = [Segment(req.locate(knot)[0], first, last, mid, cands)
                    for knot, (first, last, mid, cands) in zip(knots, picks, strict=False)]
        n = req.frames
        return RenderResult(
            frames=[self.images[self._key(t)] for t in ts[:n]], ts=[float(t) for t in ts[:n]],
            distances=distances[:n - 1], max_over_mean=pacing.max_over_mean(distances),
            one_minus_gini=pacing.one_minus_gini(distances),
            midpoint=min(n - 1, pacing.midpoint_index(distances)),
            candidates=[c for s in segments for c in s.candidates], segments=segments,
            warnings=self.warnings, unet_evals=self.unet_evals, seconds=time.perf_counter() - started,
            model=self.m.model, request=req)

    # ------------------------------------------------------------------------------------ pieces
    def _encode(self, prompt: str, what: str) -> TextEmbedding:
        emb, dropped = self.m.encode(prompt)
        if dropped:
            self.warnings.append(f"The {what} is longer than CLIP's {CLIP_MAX_TOKENS} tokens; these words were "
                                 f"dropped: {' '.join(dropped)}")
        return emb

    def _scheduler(self):
        scheduler = make_scheduler(self.pipe, self.scheduler_name, self.m.profile.timestep_spacing)
        scheduler.set_timesteps(self.req.steps, device=self.m.device)
        return scheduler

    def _key(self, u: float) -> float:
        """The position whose image is the frame at path position ``u``: ``u`` itself, except that a loop's
        end is its start (the same prompt, noise and seed)."""
        return u % self.req.segments if self.req.loop else u

    def _render_ts(self, ts: list[float]) -> list:
        """Denoise and decode the frames at ``ts`` (each position once); keep their images; return their
        pacing features."""
        keys = [self._key(t) for t in ts]
        todo = [k for k in dict.fromkeys(keys) if k not in self.images]
        if todo:
            images = self._decode(self._denoise_with_fallback(todo))
            self.images.update(zip(todo, images, strict=False))
        self._report(0, 0, self._fraction(0, 0), "decode")
        return [pacing.image_features(self.images[k]) for k in keys]

    def _conditions(self, ts: list[float]) -> tuple[TextEmbedding, torch.Tensor]:
        """Per-frame text embeddings (n×77×D, SDXL: and n×P pooled) and starting noise (n×C×h×w) for path
        positions ``ts``: segment k's embedding mixes prompt k's towards the next prompt's by its t."""
        mixes = []
        for u in ts:
            k, t = self.req.locate(u)
            mixes.append(self.embs[k].mix(self.embs[(k + 1) % len(self.embs)], t, self.req.interpolation))
        emb = TextEmbedding.cat(mixes)
        if self.noise_b is None:
            noise = self.noise_a.expand(len(ts), -1, -1, -1).clone()
        else:  # a plain two-prompt morph only (validate): u is its t
            noise = torch.cat([slerp(self.noise_a, self.noise_b, t) for t in ts])
        return emb, noise

    def _denoise_with_fallback(self, ts: list[float]) -> torch.Tensor:
        """Denoise ``ts`` in sub-batches; on out-of-memory halve the sub-batch and retry the same frames."""
        out: list[torch.Tensor] = []
        i = 0
        cap = len(ts)
        while i < len(ts):
            n = min(cap, len(ts) - i, self.m.frames_per_batch(self.size))
            chunk = ts[i:i + n]
            try:
                out.append(self._denoise(chunk))
            except Exception as err:
                if not _is_oom(err):
                    raise
            else:
                i += n
                self.frames_done += n
                self.unet_evals += n
                continue
            _free_memory(self.m.device)  # outside the except block: the traceback no longer pins tensors
            if n == 1:
                raise MorphError(f"Out of device memory even with one frame per batch at {self.size}px; "
                                 "try a smaller size, or free the GPU from other programs.")
            cap = n // 2
            self.m.cap_batch(cap)
        return torch.cat(out)

    def _denoise(self, ts: list[float]) -> torch.Tensor:
        """The denoising loop of ``StableDiffusionPipeline.__call__`` for a batch of frames."""
        req, unet = self.req, self.m.unet
        emb, latents = self._conditions(ts)
        n = len(ts)
        if self.guided:
            assert self.uncond is not None  # encoded whenever guided
            emb = TextEmbedding.cat([self.uncond.expand(n), emb])
        kwargs = self.m.unet_kwargs(emb, self.size, self.guidance)
        scheduler = self._scheduler()  # fresh: multistep schedulers keep state between steps
        step_kwargs = {"generator": step_generators(req.seed, n)} if req.scheduler == "lcm" else {}
        latents = latents * scheduler.init_noise_sigma
        total = len(scheduler.timesteps)
        for i, t in enumerate(scheduler.timesteps):
            self._check_cancel()
            model_input = torch.cat([latents] * 2) if self.guided else latents
            model_input = scheduler.scale_model_input(model_input, t)
            # One timestep dtype for every scheduler (Euler's are float, the others' int64), so a compiled UNet
            # never compiles again for another scheduler; the UNet turns it into float32 anyway.
            noise_pred = unet(model_input, t.float(), return_dict=False, **kwargs)[0]
            if self.guided:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + self.guidance * (cond - uncond)
            latents = scheduler.step(noise_pred, t, latents, return_dict=False, **step_kwargs)[0]
            self._report(n, i + 1, self._fraction(n, i + 1), "denoise", steps=total)
        return latents

    def _decode(self, latents: torch.Tensor) -> list:
        """VAE-decode in slices (halved on out-of-memory) and return PIL images."""
        self._check_cancel()
        vae = self.pipe.vae
        images: list = []
        step = self.m._decode_slice(self.size)
        i = 0
        while i < latents.shape[0]:
            part = latents[i:i + step]
            try:
                # an SDXL VAE may stay in fp32 (models.load_pipeline): decode in its dtype
                decoded = vae.decode(part.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            except Exception as err:
                if not _is_oom(err):
                    raise
                decoded = None
            if decoded is None:
                _free_memory(self.m.device)
                if step == 1:
                    raise MorphError(f"Out of device memory while decoding one {self.size}px frame; "
                                     "try a smaller size.")
                step //= 2
                continue
            images += self.pipe.image_processor.postprocess(decoded, output_type="pil")
            i += part.shape[0]
        return images

    # --------------------------------------------------------------------------------- reporting
    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"cancelled after {self.frames_done} of {self.req.frames} frames")

    def _fraction(self, batch: int, step: int) -> float:
        work = self.req.frames * max(1, self.steps_per_frame)
        return min(1.0, (self.frames_done * self.steps_per_frame + batch * step) / work)

    def _report(self, batch: int, step: int, fraction: float, stage: str, steps: int | None = None) -> None:
        if self.progress is not None:
            self.progress(Progress(frames_done=self.frames_done, frames_total=self.req.frames, step=step,
                                   steps=steps if steps is not None else self.steps_per_frame,
                                   fraction=fraction, stage=stage))


def _tensors(kwargs: dict):
    """The tensors among UNet keyword arguments (one level of nested dicts: SDXL's added conditions)."""
    for value in kwargs.values():
        if isinstance(value, dict):
            yield from _tensors(value)
        elif isinstance(value, torch.Tensor):
            yield value


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


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
