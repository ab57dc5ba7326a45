"""Picture ends of a morph: a picture turned into the starting noise that renders it again (DDIM inversion),
the two ends' noises mixed with their statistics kept, and how well the ends reproduce their pictures.

A morph between two pictures (or a picture and a prompt) is an ordinary render (:mod:`morph.render`) whose
starting noise at a picture end is not drawn from the seed but found from the picture:

1. the picture (already checked, cropped and resized by :mod:`morph.images`) is encoded by the model's VAE
   (the posterior mean, times the VAE's scaling factor);
2. DDIM inversion walks the deterministic sampler backwards from that latent to the noise at the first
   timestep, with the render's own timesteps and the end's text (its prompt, empty when none is given) and
   *no* classifier-free guidance: :func:`invert` mirrors ``DDIMScheduler.step`` (eta 0) exactly, step for
   step, so the forward render retraces the path. diffusers' ``DDIMInverseScheduler`` does the same
   stepping; doing it here keeps the two directions provably the same sampler whatever the scheduler
   config's ``steps_offset``/``set_alpha_to_one``;
3. the render samples with DDIM (the one sampler whose inversion this is) and, unless the request asks for
   guidance, without guidance, as DiffMorpher does (:data:`morph.request.IMAGE_SCHEDULER` and
   ``IMAGE_GUIDANCE``, which the request's validation fills in): inverting without guidance and sampling with it
   does not return to the picture (CFG pushes every step away from the inverted path; measured in
   bench/RESULTS.md);
4. between the ends the noise is :func:`adain_slerp` of the two: a slerp whose per-channel mean and
   standard deviation are set to the linear mix of the ends' (AdaIN, as DiffMorpher's ``slerp(…, adain=True)``):
   inverted noise is not white (it keeps the picture's layout and colour in its channel statistics), and a
   plain slerp would wash those out in the middle;
5. a two-picture morph has no noise drawn from the seed, so the seed varies the middle only: the middle
   frames' noise leans towards the seed's noise by :data:`SEED_VARIATION` × sin(πt) (nothing at the ends,
   which stay the pictures). So a reroll (a new seed) gives a new middle between the same two pictures.
   A picture → prompt morph takes the prompt end's noise from the seed as any prompt morph does.

Each end's inversion costs one UNet evaluation per step (no guidance): an image morph costs at most two
inversions more than a prompt morph of the same frames (bench: ``python -m bench.images``).

No per-picture training (no LoRA fitting). On the smooth path (the default) the frames in between attend to
the two pictures' own keys/values (:mod:`morph.anchoring`): a picture end is rendered from its inverted noise
like any end, its attention inputs recorded at every step as it is denoised back towards the picture, and the
frames are anchored to those recordings. So the keys/values are those of the very frame that reproduces the
picture, and a refine (anchored to the same two ends) gives back the frames it refines. Each picture end also
keeps its inverted path (``InvertedEnd.trajectory``, the latent at every sampling step).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from morph import images
from morph.interpolate import slerp

#: How far (at t=0.5) the middle of a two-picture morph leans towards the seed's noise (see the module).
SEED_VARIATION = 0.25


@dataclass
class InvertedEnd:
    """One picture end: the picture as the model sees it (RGB at the render's size), its clean latent and the
    starting noise DDIM inversion found for it."""

    picture: object  # PIL.Image.Image
    latent: torch.Tensor  # 1×C×h×w, scaled as the UNet sees latents
    noise: torch.Tensor  # 1×C×h×w
    #: the inverted path, one latent per sampling timestep in sampling order (the noise first): what the end's
    #: own frame passes through, for whatever needs the picture's keys/values at each step (attention anchoring)
    trajectory: list[torch.Tensor] = field(default_factory=list)


END_NAMES = ("first picture", "second picture")


class PictureEnds:
    """The picture ends of one render: loads and inverts them when made (after the prompts are encoded), then
    gives each frame's starting noise (:meth:`noise`) and the ends' reconstruction (:meth:`reconstruction`).

    ``model``: the loaded model (a :class:`morph.render.Model`); ``paths``: the request's ``images``;
    ``texts``: the two ends' text embeddings; ``scheduler()``: a fresh scheduler with the render's timesteps;
    ``seed_noise``: the seed's starting noise; ``on_step(step, total)``: after each inversion step.
    """

    def __init__(self, model: Any, paths: list[str | None], size: int, texts: list, guidance: float,
                 scheduler: Callable[[], Any], seed_noise: torch.Tensor,
                 on_step: Callable[[int, int], None] | None = None):
        self.ends: list[InvertedEnd | None] = []
        for i, path in enumerate(paths):
            if path is None:
                self.ends.append(None)
                continue
            picture = images.load(path, size, END_NAMES[i])
            latent = picture_latent(model.pipe, picture, model.device, seed_noise.dtype)
            kwargs = model.unet_kwargs(texts[i], size, guidance)
            steps: list[torch.Tensor] = []
            noise = invert(model.unet, scheduler(), latent, kwargs, on_step=on_step, trajectory=steps)
            self.ends.append(InvertedEnd(picture, latent, noise, steps))
        # A prompt end starts from the seed's noise, as in any prompt morph; two pictures lean their middle
        # towards it (SEED_VARIATION), so a new seed gives a new middle.
        self.noise_a, self.noise_b = (end.noise if end is not None else seed_noise for end in self.ends)
        self.seed_noise = seed_noise if all(self.ends) else None

    def noise(self, t: float) -> torch.Tensor:
        """The starting noise (1×C×h×w) of the frame at ``t``."""
        return end_noise(self.noise_a, self.noise_b, t, self.seed_noise)

    def reconstruction(self, rendered: dict) -> list[float | None]:
        """Per end: PSNR (dB) of its rendered frame (``rendered``: images by path position) against its picture;
        None for a prompt end or an end that was not rendered."""
        out: list[float | None] = []
        for i, end in enumerate(self.ends):
            frame = rendered.get(float(i))
            out.append(None if end is None or frame is None else round(psnr(frame, end.picture), 2))
        return out


def picture_latent(pipe, picture, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The VAE's latent (posterior mean × scaling factor, 1×C×h×w) of an RGB PIL picture."""
    pixels = torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 127.5 - 1.0)
    pixels = pixels.permute(2, 0, 1).unsqueeze(0).to(device, pipe.vae.dtype)
    latent = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    return latent.to(dtype)


def invert(unet, scheduler, latent: torch.Tensor, unet_kwargs: dict, on_step=None,
           trajectory: list | None = None) -> torch.Tensor:
    """DDIM inversion of ``latent`` (clean, t=0) to the noise at the scheduler's first timestep.

    ``scheduler``: a ``DDIMScheduler`` with its timesteps set (the render's). It is the exact reverse of its
    ``step`` with eta 0: x_prev = √ᾱ_prev · x̂0 + √(1-ᾱ_prev) · ε, so going up x_t = √ᾱ_t · x̂0 + √(1-ᾱ_t) · ε
    with x̂0 from the lower level and ε predicted at the lower level (the one approximation of DDIM
    inversion: ε at x_t is not known before x_t is). ``unet_kwargs``: the end's text conditioning, no
    unconditional half. ``on_step(i, total)`` is called after each step (progress, cancel checks).
    ``trajectory``: when given, filled with the latent at each sampling timestep, in sampling order.
    """
    timesteps = list(scheduler.timesteps.flip(0))  # ascending: t_0 < t_1 < … (the last sampling step first)
    ratio = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod
    x = latent.float()
    for i, t in enumerate(timesteps):
        lower = int(t) - ratio  # the level sampling steps down to from t (DDIMScheduler.step's prev_timestep)
        a_low = alphas[lower] if lower >= 0 else scheduler.final_alpha_cumprod
        a_t = alphas[int(t)]
        eps = unet(x.to(latent.dtype), t.float(), return_dict=False, **unet_kwargs)[0].float()
        x0 = (x - (1 - a_low).sqrt() * eps) / a_low.sqrt()
        x = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
        if trajectory is not None:
            trajectory.insert(0, x.to(latent.dtype))
        if on_step is not None:
            on_step(i + 1, len(timesteps))
    return x.to(latent.dtype)


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation over the spatial axes (N×C×1×1 each)."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return flat.mean(-1)[..., None, None], (flat.var(-1) + 1e-5).sqrt()[..., None, None]


def adain_slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Slerp from ``a`` (t=0) to ``b`` (t=1) with each channel's mean and standard deviation set to the lerp of
    the ends' (AdaIN). Exact at both ends."""
    t = float(t)
    if t in (0.0, 1.0):
        return (a if t == 0.0 else b).clone()
    mixed = slerp(a, b, t).float()
    (mean_a, std_a), (mean_b, std_b), (mean_m, std_m) = (_mean_std(x.float()) for x in (a, b, mixed))
    mean, std = (1 - t) * mean_a + t * mean_b, (1 - t) * std_a + t * std_b
    return ((mixed - mean_m) / std_m * std + mean).to(a.dtype)


def end_noise(noise_a: torch.Tensor, noise_b: torch.Tensor, t: float, seed_noise: torch.Tensor | None) -> torch.Tensor:
    """The starting noise at ``t`` of a morph with at least one picture end: :func:`adain_slerp` of the ends'
    noises; ``seed_noise`` (two-picture morphs) leans the middle towards the seed's noise (see the module)."""
    noise = adain_slerp(noise_a, noise_b, t)
    if seed_noise is not None and 0.0 < t < 1.0:
        noise = slerp(noise, seed_noise, SEED_VARIATION * math.sin(math.pi * t))
    return noise


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB of two same-sized RGB pictures (PIL or uint8 arrays); inf when equal."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"pictures of different sizes: {x.shape} and {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
