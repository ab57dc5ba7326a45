"""The image safety check: diffusers' ``StableDiffusionSafetyChecker`` (CLIP image features compared with
fixed concept embeddings) run on every frame of a render, batched, on the render's device.

:class:`SafetyChecker` loads it once:

* from the model's own ``safety_checker/`` and ``feature_extractor/`` folders when it has them (SD 1.5 does,
  and so does the ``toy`` model: ``morph/toy_model/``), through ``from_pretrained(model, subfolder=...)``;
* else from ``fallback`` (``MORPH_SAFETY_CHECKER``: a repo id or a local folder holding ``config.json`` and
  ``preprocessor_config.json``; default :data:`DEFAULT_CHECKER`, downloaded once like a model);
* the built-in random-weight models (``tiny``, ``tiny-sdxl``, ``sd15-random``, ``sdxl-random``) load the
  toy checker (:data:`TOY_CHECKER_DIR`) through the same path with every concept's threshold above 1, which
  no cosine reaches: the real class, loaded and run on every frame, flagging nothing (their noise is
  nothing, and the toy checker flags it at random). ``MORPH_SAFETY_CHECKER`` overrides that.

:meth:`SafetyChecker.check_images` answers one bool per picture (True: flagged). A batch the checker fails
on (any exception) counts as flagged for every picture in it: a check that fails never lets a picture
through. :func:`check_images` is the same for callers that have no loaded checker at hand.

The checker is a coarse filter: CLIP's notion of the concepts it was given. It is known to miss violence
and gore entirely (it has no such concepts) and to flag harmless pictures (false positives); README,
"Content safety".
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from morph.request import MorphError

log = logging.getLogger(__name__)

#: ``MORPH_SAFETY_CHECKER``'s default: the checker SD 1.x ships with, as its own repository.
DEFAULT_CHECKER = "CompVis/stable-diffusion-safety-checker"
#: The checker made in this repository for the toy world (``toykit/safety_checker.py``): it flags one
#: harmless toy concept, :data:`TOY_UNSAFE_CONCEPT`, so that the filter can be seen and tested offline.
TOY_CHECKER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_model")
#: What the toy checker treats as "unsafe" (a prompt the toy model draws).
TOY_UNSAFE_CONCEPT = "a yellow star"
#: A concept threshold no cosine similarity reaches.
NEVER = 2.0
#: Pictures per checker batch.
BATCH = 16
_BUILTIN_RANDOM = ("tiny", "tiny-sdxl", "sd15-random", "sdxl-random")


def checker_sources(model: str, fallback: str | None = None, *, explicit: bool = False) -> list[tuple[str, str | None]]:
    """Where the checker for ``model`` is looked for, in order: ``(path or repo id, subfolder or None)``.

    The model's own ``safety_checker/`` (with ``feature_extractor/``) when its folder has them, or, for a Hub
    repo id, when the repo turns out to have them; then ``fallback`` (``MORPH_SAFETY_CHECKER``, default
    :data:`DEFAULT_CHECKER`). The built-in random models use the toy checker unless ``explicit`` (the
    operator set ``MORPH_SAFETY_CHECKER``).
    """
    from morph.models import TOY, TOY_DIR

    fallback_source = (fallback or DEFAULT_CHECKER, None)
    if model in _BUILTIN_RANDOM:
        return [fallback_source] if explicit else [(TOY_CHECKER_DIR, "safety_checker")]
    folder = TOY_DIR if model == TOY else os.path.expanduser(model)
    if os.path.isdir(folder):
        own = all(os.path.isdir(os.path.join(folder, sub)) for sub in ("safety_checker", "feature_extractor"))
        return [(folder, "safety_checker"), fallback_source] if own else [fallback_source]
    return [(model, "safety_checker"), fallback_source]  # a Hub repo id: SD 1.5 ships one, SDXL does not


class SafetyChecker:
    """A loaded ``StableDiffusionSafetyChecker`` and its ``CLIPImageProcessor`` on ``device``."""

    def __init__(self, checker, processor, device, source: str):
        self.checker = checker
        self.processor = processor
        self.device = device
        #: where it was loaded from (for the log and ``/morphadmin stats``)
        self.source = source
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str, device=None, fallback: str | None = DEFAULT_CHECKER, *,
             explicit: bool = False) -> SafetyChecker:
        """The checker for ``model`` (see :func:`checker_sources`) on ``device`` (a torch device or name;
        None: the default device). Raises MorphError saying what failed when it cannot be loaded."""
        import torch
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        from morph.models import resolve_device

        dev = device if isinstance(device, torch.device) else resolve_device(device)
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
        tries = checker_sources(model, fallback, explicit=explicit)
        errors = []
        for where, subfolder in tries:
            try:
                # safetensors only, as every model part (morph.models): pickled .bin weights can run code
                if subfolder:
                    checker = StableDiffusionSafetyChecker.from_pretrained(where, subfolder=subfolder,
                                                                           use_safetensors=True)
                    processor = CLIPImageProcessor.from_pretrained(where, subfolder="feature_extractor")
                else:
                    checker = StableDiffusionSafetyChecker.from_pretrained(where, use_safetensors=True)
                    processor = CLIPImageProcessor.from_pretrained(where)
            except Exception as err:  # noqa: BLE001 - every failure becomes one message; the next source is tried
                if subfolder is not None and not os.path.isdir(where):
                    continue  # a Hub model without a checker of its own: not an error, the fallback follows
                errors.append(f"{where}{'/' + subfolder if subfolder else ''}: {type(err).__name__}: "
                              f"{(str(err).strip().splitlines() or [''])[0][:200]}")
                continue
            if model in _BUILTIN_RANDOM and (where, subfolder) == (TOY_CHECKER_DIR, "safety_checker"):
                with torch.no_grad():  # see the module docstring: the real class, flagging nothing
                    checker.concept_embeds_weights.fill_(NEVER)
                    checker.special_care_embeds_weights.fill_(NEVER)
            checker = checker.to(dev, dtype).eval()
            # its forward warns for every flagged batch that it blacked the pictures out; we keep the flags only
            logging.getLogger("diffusers.pipelines.stable_diffusion.safety_checker").setLevel(logging.ERROR)
            source = f"{where}/{subfolder}" if subfolder else where
            log.info("safety checker loaded from %s on %s", source, dev)
            return cls(checker, processor, dev, source)
        raise MorphError("Could not load the image safety checker (" + "; ".join(errors) + "). Set "
                         "MORPH_SAFETY_CHECKER to a repo id or folder holding a StableDiffusionSafetyChecker "
                         "(config.json, weights as model.safetensors: pickled .bin weights are not loaded) and "
                         "its CLIP image processor (preprocessor_config.json).")

    def check_images(self, images: Sequence) -> list[bool]:
        """One bool per PIL picture: True when the checker flags it, or when checking its batch failed."""
        import numpy as np
        import torch

        flags: list[bool] = []
        with self._lock:
            for start in range(0, len(images), BATCH):
                batch = [im.convert("RGB") for im in images[start:start + BATCH]]
                try:
                    pixels = self.processor(images=batch, return_tensors="pt").pixel_values
                    pixels = pixels.to(self.device, dtype=self.checker.dtype)
                    with torch.no_grad():
                        # the real forward; it blacks out flagged entries of `images`, which are throwaway here
                        _, found = self.checker(clip_input=pixels, images=[np.zeros(1) for _ in batch])
                    flags.extend(bool(f) for f in found)
                except Exception:
                    log.exception("the safety check failed for %d picture(s); they count as flagged", len(batch))
                    flags.extend([True] * len(batch))
        return flags


#: Checkers loaded in this process, by what they were loaded for: (model, fallback, explicit).
_loaded: dict[tuple[str, str | None, bool], SafetyChecker] = {}
_loaded_lock = threading.Lock()


def set_default(checker: SafetyChecker, model: str, fallback: str | None = DEFAULT_CHECKER, *,
                explicit: bool = False) -> None:
    """Make ``checker`` (loaded by :meth:`SafetyChecker.load` with these arguments) the one
    :func:`check_images` uses for them: the render worker does once it loaded its own."""
    with _loaded_lock:
        _loaded[(model, fallback, explicit)] = checker


def check_images(images: Sequence, model: str = "toy", fallback: str | None = DEFAULT_CHECKER, *,
                 explicit: bool = False) -> list[bool]:
    """One bool per picture (True: flagged, or its check failed), for callers that have no checker at hand
    (e.g. uploaded pictures): this process's checker for ``model`` (the render worker's, :func:`set_default`),
    else one loaded here once on the default device (see :meth:`SafetyChecker.check_images`). Raises
    MorphError when no checker can be loaded."""
    key = (model, fallback, explicit)
    with _loaded_lock:
        checker = _loaded.get(key)
        if checker is None:
            checker = _loaded[key] = SafetyChecker.load(model, fallback=fallback, explicit=explicit)
    return checker.check_images(images)
