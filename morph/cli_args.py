"""The `morph render` command line: its arguments (:func:`build_parser`) and the checks of everything the
user typed (:func:`check_inputs`), all done before a model is loaded, so a typo fails at once with a one-line
message (a MorphError). Running the command: :mod:`morph.cli`.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from morph.animation import FORMATS
from morph.images import check as check_picture
from morph.images import read_file as read_picture
from morph.profiles import PROFILE_NAMES, PROFILES
from morph.request import (
    INTERPOLATIONS,
    MAX_FRAMES,
    MAX_PROMPTS,
    MIN_FRAMES,
    MIN_PROMPTS,
    PACINGS,
    PATHS,
    SCHEDULERS,
    MorphError,
    RenderRequest,
    parse_loras,
)

BUILTIN_MODELS = ("tiny", "tiny-sdxl", "sd15-random", "sdxl-random", "toy")  # morph.models' (which imports torch)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line (and lets main() return the exit code)."""

    def error(self, message):
        raise MorphError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="morph", description="Render evenly paced Stable Diffusion prompt morphs as GIFs or MP4s.")
    sub = parser.add_subparsers(dest="command", metavar="render", parser_class=_Parser)
    p = sub.add_parser("render", help="morph from one prompt to another (or through up to 4) and write a GIF/MP4",
                       description="Morph from the first prompt (first frame) to the last, through any between "
                                   f"them in order ({MIN_PROMPTS} to {MAX_PROMPTS} prompts).")
    p.add_argument("prompts", metavar="PROMPT", nargs="*",
                   help="the prompts, in order; with pictures: one per end (describing a picture, or '' for "
                        "none), or only those of the ends that are not pictures")
    p.add_argument("--image-a", default=None, metavar="PICTURE",
                   help="start from this picture (PNG, JPEG, WebP or GIF): its noise is found by inverting it")
    p.add_argument("--image-b", default=None, metavar="PICTURE", help="end on this picture")
    p.add_argument("-o", "--output", default=None,
                   help="file to write, .gif or .mp4 (default: morph.gif, or morph.mp4 with --format mp4); with "
                        "--format both, its name with each suffix")
    p.add_argument("--format", default=None, choices=FORMATS,
                   help="mp4 (H.264), gif, or both (default: from the output's suffix, else gif)")
    p.add_argument("--loop", action="store_true", help="go on from the last prompt back to the first")
    p.add_argument("--range", nargs=2, type=float, default=None, metavar=("FROM", "TO"),
                   help="refine: render the frames over only this part of the path (0..1 for two prompts; prompt "
                        "k is at k), e.g. between two neighbouring frames' ts of an earlier render with the same "
                        "prompts, seed and settings")
    p.add_argument("--frames", type=int, default=24, help=f"frames in the morph, {MIN_FRAMES}..{MAX_FRAMES} (24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise (0)")
    p.add_argument("--seed-b", type=int, default=None, help="second seed: the noise is slerped towards it")
    p.add_argument("--model", default=os.environ.get("MORPH_MODEL", "tiny"),
                   help="diffusers SD 1.x/2.x or SDXL repo id or local path, or 'toy' (small model trained on "
                        "coloured shapes: 'a red circle') or 'tiny', 'tiny-sdxl', 'sd15-random', 'sdxl-random' "
                        "(random weights), all offline; default $MORPH_MODEL or tiny")
    p.add_argument("--lora", action="append", default=[], metavar="PATH[:WEIGHT]",
                   help="a LoRA style (.safetensors) fused into the model, weight 1 unless given; repeatable "
                        "(default: $MORPH_LORAS)")
    p.add_argument("--profile", default=os.environ.get("MORPH_PROFILE", "auto"),
                   help=f"sampler/steps/guidance defaults: {', '.join(PROFILE_NAMES)} "
                        "(default $MORPH_PROFILE or auto: recognised from the model)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (the model's: 25, or 4 for few-step "
                                                           "models)")
    p.add_argument("--size", type=int, default=None, help="width and height in pixels, multiple of 8 "
                                                          "(default: the model's native size)")
    p.add_argument("--negative", default="", help="negative prompt, the same for every frame")
    p.add_argument("--scheduler", default=None, help=f"one of {', '.join(SCHEDULERS)} (the model's: dpm++2m, "
                                                       "euler for Turbo/Lightning, lcm for LCM)")
    p.add_argument("--interpolation", default="lerp",
                   help=f"{' or '.join(INTERPOLATIONS)} of the frames' text (lerp); applies to --path plain (the "
                        "smooth path's frames read their ends' texts; only SDXL's pooled text still follows it)")
    p.add_argument("--pacing", default="perceptual", help=f"{' or '.join(PACINGS)} (perceptual)")
    p.add_argument("--path", default="smooth", help=f"{' or '.join(PATHS)}: smooth anchors every frame's "
                                                    "attention to its two ends; plain does not (smooth)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale; 0 or 1 = none "
                                                                "(the model's: 7.5, SDXL 5, Turbo 0, LCM 1)")
    p.add_argument("--candidates", type=int, default=5,
                   help="midpoint candidates to offer (5, or fewer when there are fewer frames)")
    p.add_argument("--boomerang", action="store_true", help="play forward then backward")
    p.add_argument("--duration-ms", type=int, default=100, help="how long each frame shows (100)")
    p.add_argument("--budget-mb", type=float, default=10.0,
                   help="largest size in MiB of the GIF/MP4 (both: together) (10)")
    p.add_argument("--frames-dir", default=None, help="also write every frame as frame_000.png … into this "
                                                           "directory (older frame_NNN.png there are replaced)")
    p.add_argument("--sheet", default=None, help="also write a contact sheet PNG of the candidates")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def check_inputs(args) -> tuple[RenderRequest, dict]:
    """Everything that can be checked without loading a model. Returns the request and the output paths."""
    pictures = [getattr(args, "image_a", None), getattr(args, "image_b", None)]
    if any(pictures):
        args.prompts = _picture_prompts(args.prompts, pictures)
        for path, what in zip(pictures, ("--image-a", "--image-b"), strict=True):
            if path is not None:
                check_picture(read_picture(path, f"{what} picture '{path}'"), f"{what} picture '{path}'")
    elif not MIN_PROMPTS <= len(args.prompts) <= MAX_PROMPTS:
        raise MorphError(f"give {MIN_PROMPTS} to {MAX_PROMPTS} prompts (got {len(args.prompts)}): the morph goes "
                         "from the first to the last, in order")
    t_start, t_end = args.range if args.range else (None, None)
    request = RenderRequest(prompts=args.prompts, loop=args.loop, t_start=t_start, t_end=t_end,
                            frames=args.frames, seed=args.seed,
                            seed_b=args.seed_b, negative=args.negative, steps=args.steps, size=args.size,
                            guidance=args.guidance, scheduler=args.scheduler,
                            interpolation=args.interpolation, pacing=args.pacing, path=args.path,
                            candidates=args.candidates,
                            images=[str(Path(p).expanduser()) if p else None for p in pictures] if any(pictures)
                            else []).validate()
    _check_model(args.model)
    args.loras = parse_loras(",".join(args.lora) if args.lora else os.environ.get("MORPH_LORAS"))
    args.profile = (args.profile or "auto").strip().lower()
    if args.profile not in PROFILE_NAMES:
        raise MorphError(f"--profile must be one of {', '.join(PROFILE_NAMES)} (got '{args.profile}')")
    if args.profile != "auto":  # a named profile's step limit is known before the model loads
        PROFILES[args.profile].fill(request)
    _check_device(args.device)
    if not 0 < args.budget_mb <= 1024:
        raise MorphError(f"--budget-mb must be positive and at most 1024 (got {args.budget_mb})")
    if not 10 <= args.duration_ms <= 10_000:
        raise MorphError(f"--duration-ms must be between 10 and 10000 (got {args.duration_ms})")
    paths = _output_paths(args)
    if args.sheet:
        paths["sheet"] = _check_file(args.sheet, "sheet", ".png")
    if args.frames_dir:
        paths["frames_dir"] = _check_dir(args.frames_dir)
    if len(set(paths.values())) != len(paths):
        raise MorphError("the output, sheet and frames paths must all be different")
    return request, paths


def _picture_prompts(prompts: list[str], pictures: list[str | None]) -> list[str]:
    """The two ends' prompts of a picture morph: one per end as given, or only the prompt ends' (a picture
    end then has none)."""
    prompt_ends = sum(p is None for p in pictures)
    if len(prompts) == 2:
        return list(prompts)
    if len(prompts) == prompt_ends:
        given = iter(prompts)
        return ["" if picture else next(given) for picture in pictures]
    want = "no prompt or two" if prompt_ends == 0 else "the other end's prompt, or two"
    raise MorphError(f"with {'two pictures' if prompt_ends == 0 else 'one picture'} give {want} (one per end, "
                     f"'' for a picture without a description); got {len(prompts)}")


def _output_paths(args) -> dict:
    """{"mp4": path, "gif": path} as ``--format`` and ``-o`` ask (sets ``args.format``). An MP4 also gets its
    GIF path checked: the GIF is written there instead when MP4 cannot be encoded here."""
    raw = args.output or ("morph.mp4" if args.format == "mp4" else "morph.gif")
    suffix = Path(raw).suffix.lower()
    if args.format is None:
        if suffix not in (".gif", ".mp4"):
            raise MorphError(f"the output file must end in .gif or .mp4, or give --format (got '{raw}')")
        args.format = suffix[1:]
    if args.format == "both":
        stem = raw[:-len(suffix)] if suffix in (".gif", ".mp4") else raw
        return {"mp4": _check_file(stem + ".mp4", "output", ".mp4"),
                "gif": _check_file(stem + ".gif", "output", ".gif")}
    path = _check_file(raw, "output", "." + args.format)
    if args.format == "gif":
        return {"gif": path}
    return {"mp4": path, "gif": _check_file(raw[:-len(suffix)] + ".gif", "output", ".gif")}


def _check_model(name: str) -> None:
    name = (name or "").strip()
    if not name:
        raise MorphError("--model is empty: give a diffusers repo id, a local path, or 'tiny'")
    if name in BUILTIN_MODELS or Path(name).expanduser().is_dir():
        return
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and not _REPO_ID.match(name)
    if looks_like_path:
        raise MorphError(f"model folder '{name}' does not exist (give a diffusers model folder, a repo id such "
                         "as stable-diffusion-v1-5/stable-diffusion-v1-5, or 'tiny')")
    if not _REPO_ID.match(name) or "/" not in name:
        raise MorphError(f"unknown model '{name}': give a diffusers repo id like "
                         "stable-diffusion-v1-5/stable-diffusion-v1-5, a local folder, or one of "
                         f"{', '.join(BUILTIN_MODELS)}")


def _check_device(device: str | None) -> None:
    if device is None:
        return
    if device not in ("cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", device):
        raise MorphError(f"unknown device '{device}': use cpu, cuda or mps")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise MorphError("--device cuda was asked for but no CUDA GPU is available here; use --device cpu")
    if device == "mps":
        import torch

        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise MorphError("--device mps was asked for but MPS is not available here; use --device cpu")


def _check_file(raw: str, what: str, suffix: str) -> Path:
    path = Path(raw).expanduser()
    if not raw.strip():
        raise MorphError(f"the {what} path is empty")
    if path.suffix.lower() != suffix:
        raise MorphError(f"the {what} file must end in {suffix} (got '{raw}')")
    if path.is_dir():
        raise MorphError(f"the {what} path '{raw}' is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MorphError(f"cannot write the {what} '{raw}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MorphError(f"cannot write the {what} '{raw}': permission denied")
    return path.resolve()


def _check_dir(raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise MorphError(f"--frames-dir '{raw}' exists and is not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MorphError(f"cannot write frames into '{raw}': permission denied")
    return path.resolve()
