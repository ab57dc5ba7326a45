"""One render, top to bottom: what :meth:`morph.engine.Morpher.render` runs for a request, and the text
embeddings it mixes.

1. encode every prompt (two, or a chain's up to four) and the negative prompt once with the model
   (:meth:`~morph.engine.Morpher.encode`: 77 tokens each; for SDXL both text encoders' hidden states plus the
   pooled embedding); the request already has its sampler, steps and guidance (:mod:`morph.profiles`);
2. one starting noise from ``seed`` for every frame of the whole path (slerped towards ``seed_b``'s noise by
   t when given, two-prompt morphs only), so a chain's frame at a prompt is that prompt's plain render; a
   picture end's noise is found from its picture instead (DDIM inversion, :mod:`morph.inversion`);
3. choose the frames' path positions (uniform, or perceptual pacing: :func:`morph.pacing.pace`, with a frame
   on every prompt of a chain and on both ends of a refine range) and for each batch: interpolate the text
   embeddings between the two prompts of each frame's segment (lerp or per-token slerp; SDXL's pooled
   embedding alike), run the denoising loop below with classifier-free guidance in the same UNet batch (none
   when guidance is 0 or 1), decode the latents in slices; on out-of-memory halve the batch (or slice) and
   retry the same frames;
4. measure neighbour distances, the midpoint and candidates of each segment.

The denoising loop follows diffusers' ``StableDiffusionPipeline.__call__`` (and ``StableDiffusionXLPipeline``'s:
pooled text and size/crop numbers as added conditions, the same for every frame) step for step (init noise
sigma, ``scale_model_input``, CFG, ``scheduler.step``), so the frames at t=0 and t=1 equal plain pipeline
renders of each prompt with the same seed. Multistep schedulers keep state, so every batch gets a fresh
scheduler. A sampler that adds fresh noise at each step (LCM) gets the same noise for every frame, drawn
from the seed (:func:`step_generators`), or neighbouring frames would disagree.

This module sits below :mod:`morph.engine`: a :class:`Render` gets the loaded model as a :class:`Model`
(what it uses of a ``Morpher``), so the two never import each other.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from morph import anchoring, inversion, pacing
from morph.anchoring import Anchors, Row
from morph.interpolate import lerp, slerp
from morph.models import make_scheduler
from morph.profiles import Profile
from morph.request import (
    CLIP_MAX_TOKENS,
    PROMPT_NAMES,
    Cancelled,
    Invalid,
    Notice,
    Progress,
    RenderRequest,
    RenderResult,
    Segment,
    is_out_of_memory,
)

#: Added to the request's seed for the per-step noise of samplers that add noise at each step (LCM), so that
#: noise is not the starting noise over again.
_STEP_NOISE_SEED_OFFSET = 0x5EED
#: The share of free memory (device memory on CUDA, RAM elsewhere) the smooth path may keep the ends'
#: attention inputs in (the cached way); above it they ride along in every UNet batch instead.
ANCHOR_CACHE_SHARE = 0.2

log = logging.getLogger("morph.render")


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


class Model(Protocol):
    """What a render uses of the loaded model: a :class:`morph.engine.Morpher`."""

    model: str
    pipe: Any
    device: torch.device
    native_size: int
    profile: Profile
    #: The UNet renders call (the pipeline's own, or its compiled wrapper).
    unet: Callable[..., Any]

    #: How the smooth path gets the ends' keys/values: "auto", "cache" or "batch" (morph.anchoring).
    anchor_mode: str

    def guided(self, guidance: float) -> bool: ...
    def free_memory(self) -> int: ...
    def encode(self, prompt: str) -> tuple[TextEmbedding, list[str]]: ...
    def noise(self, seed: int, size: int) -> torch.Tensor: ...
    def unet_kwargs(self, text: TextEmbedding, size: int, guidance: float) -> dict: ...
    def frames_per_batch(self, size: int) -> int: ...
    def cap_batch(self, frames: int | None) -> None: ...
    def decode_slice(self, size: int) -> int: ...


class Render:
    """State of one render call (kept out of Morpher so concurrent-looking code stays obvious)."""

    def __init__(self, morpher: Model, req: RenderRequest, progress: Callable[[Progress], None] | None,
                 cancel: threading.Event | None):
        self.m = morpher
        self.pipe = morpher.pipe
        self.req = req
        self.progress = progress
        self.cancel = cancel
        self.size = req.size or morpher.native_size
        self.warnings: list[Notice] = []
        self.frames_done = 0
        self.unet_evals = 0
        self.images: dict[float, object] = {}  # by path position (_key)
        assert req.guidance is not None and req.scheduler is not None, "Profile.fill sets them"
        self.guidance: float = req.guidance
        self.scheduler_name: str = req.scheduler
        self.guided = morpher.guided(self.guidance)
        self.steps_per_frame = 0
        #: The smooth path's anchoring state (None on the plain path), see _anchoring.
        self.anchors: Anchors | None = None
        #: Latents of the ends that rode along in a batch (the in-batch way), by position.
        self.riders: dict[float, torch.Tensor] = {}
        #: The cached way's ends not denoised yet: they lead the render's first batch (:meth:`_render_new`).
        self.ends_first: list[float] = []

    def run(self) -> RenderResult:
        started = time.perf_counter()
        req = self.req
        self._report(0, 0, 0.0, "encode")
        self.embs = [self._encode(prompt, PROMPT_NAMES[i]) for i, prompt in enumerate(req.prompts)]
        self.uncond = self._encode(req.negative, "negative prompt") if self.guided else None
        if req.negative and not self.guided:
            self.warnings.append(Notice("negative_unused", {"guidance": self.guidance}))
        self.noise_a = self.m.noise(req.seed, self.size)
        self.noise_b = self.m.noise(req.seed_b, self.size) if req.seed_b is not None else None
        self.pictures = (inversion.PictureEnds(self.m, req.images, self.size, self.embs, self.guidance,
                                               self._scheduler, self.noise_a, self._inverted)
                         if req.images else None)  # picture ends: their noises found from the pictures
        self.steps_per_frame = len(self._scheduler().timesteps)
        with self._anchoring():
            return self._run(started)

    def _run(self, started: float) -> RenderResult:
        req = self.req
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
            model=self.m.model, request=req,
            reconstruction=self.pictures.reconstruction(
                {self._key(t): self.images[self._key(t)] for t in ts[:n]}) if self.pictures else [])

    # ------------------------------------------------------------------------------------ smooth path
    @contextlib.contextmanager
    def _anchoring(self):
        """The smooth path for the block (nothing on the plain path): anchoring processors on the UNet, the
        ends of every segment the render touches denoised first where their attention inputs fit
        :data:`ANCHOR_CACHE_SHARE` of free memory (else they ride along in each batch), the UNet's own
        processors back afterwards. A compiled UNet's graphs were traced with the plain processors, so the
        smooth path runs the same weights eagerly (logged)."""
        if self.req.path != "smooth":
            yield
            return
        unet = self.pipe.unet
        if self.m.unet is not unet:
            log.info("smooth path: the compiled UNet was traced with plain attention; running it eagerly")
        ends = self._all_ends()
        need = anchoring.cache_bytes(unet, self.size // self.pipe.vae_scale_factor, self.steps_per_frame,
                                     len(ends), 2 if self.guided else 1)
        keep = self.m.anchor_mode == "cache" or (self.m.anchor_mode == "auto"
                                                  and need <= ANCHOR_CACHE_SHARE * self.m.free_memory())
        if self.m.anchor_mode == "auto" and not keep:
            log.info("smooth path: the ends' attention inputs (%.0f MiB) exceed %.0f%% of free memory; "
                     "the ends ride along in every batch", need / 2**20, ANCHOR_CACHE_SHARE * 100)
        self.anchors = Anchors(keep=keep)
        try:
            with self.anchors.installed(unet):
                if keep:  # the ends lead the first batch, once: every later batch reads their recordings
                    self.ends_first = ends
                yield
        finally:
            self.anchors.clear()

    def _segment_ends(self, u: float) -> tuple[float, float]:
        """The ids (path positions, a loop's end mapped to its start) of the two ends of ``u``'s segment."""
        k, _ = self.req.locate(u)
        return self._key(float(k)), self._key(float(k + 1))

    def _all_ends(self) -> list[float]:
        """The ends of every segment the rendered range touches (a refine's anchored to the same ends as the
        render it refines), in path order."""
        lo, hi = self.req.path_range()
        first, last = self.req.locate(lo)[0], self.req.locate(hi)[0]
        if hi > lo and self.req.locate(hi)[1] == 0.0:
            last -= 1  # hi is a prompt: its segment starts there, nothing of it is rendered
        ends = [e for k in range(first, max(first, last) + 1) for e in self._segment_ends(float(k))]
        return list(dict.fromkeys(ends))

    def _rows(self, keys: list[float]) -> list[Row]:
        """What each frame of a batch is to the anchoring: a segment's end records its attention inputs,
        any other frame is anchored to its segment's two ends at its t."""
        rows = []
        for u in keys:
            k, t = self.req.locate(u)
            ends = self._segment_ends(u)
            rows.append(Row(record=u) if t == 0.0 or u in ends else Row(ends=ends, t=t))
        return rows

    # ------------------------------------------------------------------------------------ pieces
    def _encode(self, prompt: str, what: str) -> TextEmbedding:
        emb, dropped = self.m.encode(prompt)
        if dropped:
            self.warnings.append(Notice("prompt_truncated", {"what": what, "limit": CLIP_MAX_TOKENS,
                                                             "dropped": " ".join(dropped)}))
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
        self._render_new(keys)
        self._report(0, 0, self._fraction(0, 0), "decode")
        return [pacing.image_features(self.images[k]) for k in keys]

    def _render_new(self, keys: list[float]) -> None:
        """Denoise and decode the positions among ``keys`` not rendered yet (each once) into ``images``."""
        todo = [k for k in dict.fromkeys(keys) if k not in self.images]
        if todo and self.ends_first:  # in front: a frame in any sub-batch finds its ends recorded
            lead = [e for e in self.ends_first if e not in self.images]
            todo = lead + [k for k in todo if k not in lead]
            self.ends_first = []
        if todo:
            images = self._decode(self._denoise_with_fallback(todo))
            self.images.update(zip(todo, images, strict=False))
            if self.anchors is not None:  # after the update: an end may be in this very batch
                for k in todo:
                    self.images[k] = self._straightened(k, self.images[k])

    def _straightened(self, u: float, image):
        """A smooth-path frame in between with its colour straightened towards its two ends'
        (:func:`morph.anchoring.straightened`); an end as it is. The ends are rendered first where they are
        not yet (the in-batch way does not keep their pictures)."""
        k, t = self.req.locate(u)
        ends = list(self._segment_ends(u))
        if t == 0.0 or u in ends or anchoring.STRAIGHTEN <= 0:
            return image
        riding = [e for e in ends if e not in self.images and e in self.riders]
        if riding:
            self.images.update(zip(riding, self._decode(torch.stack([self.riders[e] for e in riding])), strict=True))
        self._render_new(ends)
        a, b = (self.images[e] for e in ends)
        return anchoring.straightened(image, a, b, t, anchoring.STRAIGHTEN, anchoring.STRAIGHTEN_BLUR)

    def _conditions(self, ts: list[float]) -> tuple[TextEmbedding, torch.Tensor]:
        """Per-frame text embeddings (n×77×D, SDXL: and n×P pooled) and starting noise (n×C×h×w) for path
        positions ``ts``: segment k's embedding mixes prompt k's towards the next prompt's by its t."""
        mixes = []
        for u in ts:
            k, t = self.req.locate(u)
            mixes.append(self.embs[k].mix(self.embs[(k + 1) % len(self.embs)], t, self.req.interpolation))
        emb = TextEmbedding.cat(mixes)
        if self.pictures is not None:  # a plain two-end morph (validate): u is its t
            noise = torch.cat([self.pictures.noise(t) for t in ts])
        elif self.noise_b is None:
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
                if not is_out_of_memory(err):
                    raise
            else:
                i += n
                self.frames_done += n
                self.unet_evals += n
                continue
            _free_memory(self.m.device)  # outside the except block: the traceback no longer pins tensors
            if n == 1:
                raise Invalid("out_of_memory_batch", size=self.size)
            cap = n // 2
            self.m.cap_batch(cap)
        return torch.cat(out)

    def _denoise(self, ts: list[float]) -> torch.Tensor:
        """The denoising loop of ``StableDiffusionPipeline.__call__`` for a batch of frames."""
        req, unet = self.req, self.m.unet
        rows: list[Row] = []
        extra: list[float] = []
        if self.anchors is not None:
            unet = self.pipe.unet
            rows = self._rows(ts)
            if not self.anchors.keep:  # the ends this batch is anchored to ride along (then are dropped)
                have = {r.record for r in rows}
                extra = list(dict.fromkeys(float(e) for r in rows if r.ends for e in r.ends  # type: ignore[arg-type]
                                           if e not in have))
                rows = [Row(record=e) for e in extra] + rows
                ts = extra + list(ts)
        emb, latents = self._conditions(ts)
        n = len(ts)
        if rows:  # the UNet batch: [unconditional half,] conditional half; an end's halves are two ends
            rows = ([_half(r, "uncond") for r in rows] if self.guided else []) + [_half(r, "cond") for r in rows]
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
            if self.anchors is not None:
                self.anchors.begin(i, rows)
            # One timestep dtype for every scheduler (Euler's are float, the others' int64), so a compiled UNet
            # never compiles again for another scheduler; the UNet turns it into float32 anyway.
            noise_pred = unet(model_input, t.float(), return_dict=False, **kwargs)[0]
            if self.guided:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + self.guidance * (cond - uncond)
            latents = scheduler.step(noise_pred, t, latents, return_dict=False, **step_kwargs)[0]
            if self.anchors is not None:  # the conditional half's rows: one per sample of ``latents``
                latents = self.anchors.pull(i, rows[len(rows) - n:], latents, self._pull())
            self._report(n, i + 1, self._fraction(n, i + 1), "denoise", steps=total)
        if extra:  # the riding ends' latents, for their pictures (_straightened)
            self.riders.update(zip(extra, latents[:len(extra)], strict=True))
        return latents[len(extra):]

    def _pull(self) -> float:
        """How far the frames in between are pulled onto their ends' latent line after each step
        (:data:`morph.anchoring.LATENT_PULL`); not at all on a picture morph, whose seed is what gives a
        reroll a new middle between the same pictures (a pull every step would all but erase it)."""
        return 0.0 if self.pictures is not None else anchoring.LATENT_PULL

    def _decode(self, latents: torch.Tensor) -> list:
        """VAE-decode in slices (halved on out-of-memory) and return PIL images."""
        self._check_cancel()
        vae = self.pipe.vae
        images: list = []
        step = self.m.decode_slice(self.size)
        i = 0
        while i < latents.shape[0]:
            part = latents[i:i + step]
            try:
                # an SDXL VAE may stay in fp32 (models.load_pipeline): decode in its dtype
                decoded = vae.decode(part.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                decoded = None
            if decoded is None:
                _free_memory(self.m.device)
                if step == 1:
                    raise Invalid("out_of_memory_decode", size=self.size)
                step //= 2
                continue
            images += self.pipe.image_processor.postprocess(decoded, output_type="pil")
            i += part.shape[0]
        return images

    # --------------------------------------------------------------------------------- reporting
    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"cancelled after {self.frames_done} of {self.req.frames} frames")

    def _inverted(self, step: int, total: int) -> None:
        """After each step of a picture's inversion (morph.inversion)."""
        self._check_cancel()
        self._report(0, step, 0.0, "invert", steps=total)

    def _fraction(self, batch: int, step: int) -> float:
        work = self.req.frames * max(1, self.steps_per_frame)
        return min(1.0, (self.frames_done * self.steps_per_frame + batch * step) / work)

    def _report(self, batch: int, step: int, fraction: float, stage: str, steps: int | None = None) -> None:
        if self.progress is not None:
            self.progress(Progress(frames_done=self.frames_done, frames_total=self.req.frames, step=step,
                                   steps=steps if steps is not None else self.steps_per_frame,
                                   fraction=fraction, stage=stage))


def _half(row: Row, half: str) -> Row:
    """``row`` for one half of a classifier-free-guidance batch: its ids tagged with the half."""
    return Row(record=None if row.record is None else (row.record, half), t=row.t,
               ends=None if row.ends is None else ((row.ends[0], half), (row.ends[1], half)))


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
