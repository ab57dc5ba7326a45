"""Sampling profiles: the sampler, step count, guidance and timestep spacing a model is made for.

A model distilled for few steps (SD-Turbo / SDXL-Turbo, SDXL-Lightning / Hyper-SD, LCM and LCM-LoRA) makes
mush with 25 DPM-Solver++ steps and guidance 7.5, and a normal model makes mush with 4 steps and no guidance.
So a request that leaves ``steps``, ``guidance`` or ``scheduler`` out (None) gets them from its model's
profile (:meth:`Profile.fill`).

:func:`profile_for` recognises the profile from the loaded pipeline: an ``LCMScheduler`` in the scheduler
config, or a UNet that takes the guidance scale as an input (LCM-distilled UNets), is ``lcm``; "trailing"
timestep spacing on an Euler scheduler (how SD-Turbo and SDXL-Turbo ship) is ``turbo``; anything else is
``standard``. A LoRA that distils (LCM-LoRA, the Lightning and Hyper-SD LoRAs) or a distilled UNet put into
a base model leaves the base model's scheduler config as it was: such setups name their profile
(``MORPH_PROFILE`` / ``morph render --profile``).

Guidance 0 or 1 means no classifier-free guidance: the engine then runs no unconditional half of the UNet
batch, which halves the UNet work on top of the fewer steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from morph.request import MAX_STEPS, Invalid, MorphError, RenderRequest

#: Values of MORPH_PROFILE / --profile ("auto": recognise it from the model).
PROFILE_NAMES = ("auto", "standard", "turbo", "lightning", "lcm")
#: Few-step models are distilled for 1-8 steps; more steps make their pictures worse, not better.
FEW_STEPS_MAX = 8


@dataclass(frozen=True)
class Profile:
    name: str
    scheduler: str  # one of morph.request.SCHEDULERS
    steps: int
    guidance: float
    timestep_spacing: str | None = None  # None: the model's own scheduler config decides
    max_steps: int = MAX_STEPS

    def fill(self, request: RenderRequest) -> RenderRequest:
        """``request`` (validated) with the steps, guidance and scheduler it left out taken from this profile.
        Raises MorphError when it asks for more steps than the model is made for."""
        steps = request.steps or self.steps
        r = dataclasses.replace(
            request, steps=steps, guidance=self.guidance if request.guidance is None else float(request.guidance),
            scheduler=request.scheduler or self.scheduler)
        if steps > self.max_steps:
            raise Invalid("too_many_steps", max_steps=self.max_steps, profile=self.name, steps=steps,
                          default=self.steps)
        return r


#: SD 1.x/2.x: 25 steps of DPM-Solver++ 2M, guidance 7.5 (diffusers' StableDiffusionPipeline default guidance).
STANDARD = Profile("standard", "dpm++2m", 25, 7.5)
#: SDXL: the same sampler, guidance 5 (diffusers' StableDiffusionXLPipeline default).
STANDARD_XL = dataclasses.replace(STANDARD, guidance=5.0)
#: SD-Turbo / SDXL-Turbo (adversarial distillation): 1-4 steps, no guidance, trailing spacing.
TURBO = Profile("turbo", "euler", 4, 0.0, timestep_spacing="trailing", max_steps=FEW_STEPS_MAX)
#: SDXL-Lightning (its model card: Euler, trailing spacing, no guidance); Hyper-SD's LoRAs also want trailing
#: spacing and no guidance (its examples sample with DDIM, a request's ``scheduler="ddim"``).
LIGHTNING = dataclasses.replace(TURBO, name="lightning")
#: LCM and LCM-LoRA: the LCM sampler, 2-8 steps; guidance 1 (none) for LCM-LoRA.
LCM = Profile("lcm", "lcm", 4, 1.0, max_steps=FEW_STEPS_MAX)
#: An LCM-distilled UNet takes the guidance scale as an input (no unconditional batch at any guidance);
#: 8.5 is diffusers' LatentConsistencyModelPipeline default.
LCM_GUIDANCE_INPUT = dataclasses.replace(LCM, guidance=8.5)


#: The profiles a name selects (SDXL's "standard" differs only in guidance: see profile_for).
PROFILES = {"standard": STANDARD, "turbo": TURBO, "lightning": LIGHTNING, "lcm": LCM}


def profile_for(pipe, name: str | None = "auto") -> Profile:
    """The profile of the loaded pipeline ``pipe``: ``name`` when it names one, else recognised (see module)."""
    name = (name or "auto").strip().lower()
    if name not in PROFILE_NAMES:
        raise MorphError(f"unknown profile '{name}'; use one of: {', '.join(PROFILE_NAMES)}.")
    guidance_input = getattr(pipe.unet.config, "time_cond_proj_dim", None) is not None
    xl = getattr(pipe, "text_encoder_2", None) is not None  # as morph.models.is_sdxl (which imports torch)
    if name == "auto":
        scheduler = type(pipe.scheduler).__name__
        if scheduler == "LCMScheduler" or guidance_input:
            name = "lcm"
        elif scheduler.startswith("Euler") and pipe.scheduler.config.get("timestep_spacing") == "trailing":
            name = "turbo"
        else:
            name = "standard"
    if name == "lcm" and guidance_input:
        return LCM_GUIDANCE_INPUT
    if name == "standard" and xl:
        return STANDARD_XL
    return PROFILES[name]
