"""Engine vs "the article's way", measured in one run on one machine.

The baseline is what a prompt-morph tutorial does: for every frame, interpolate the two prompts' text
embeddings and call the pipeline (``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``) once with
``prompt_embeds`` / ``negative_prompt_embeds`` (SDXL: and the pooled ones) and the same starting latents. It
uses the very same loaded modules, scheduler type, steps, guidance, size, seed noise and frame t's as the
engine, so the only difference is how the work is organised (one image per UNet call vs frames batched). The
engine is run with uniform pacing (exactly the baseline's t's) and with perceptual pacing (same number of
frames and UNet work, placed by distance).

Several models (``--model tiny,tiny-sdxl``, the CPU default) are measured one after the other in the same
run, each against its own baseline. Steps, scheduler and guidance default to each model's profile
(``--profile turbo`` measures the 4-step no-guidance way on any model).

After one warm-up, the methods run round-robin ``--repeat`` times and each one's best time is reported
(other users of a shared machine only ever make a run slower). Model loading is not timed.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
import warnings

from bench.results import load_average, machine

PRESETS = {
    # The H100 anchors in design.md: SD 1.5 architecture at random weights, fp16, 512², CFG 7.5, PNDM 50 steps.
    "h100": dict(model="sd15-random", size=512, guidance=7.5, scheduler="pndm", steps=50, frames=50),
    # The product's default render: 24 frames, DPM-Solver++ 2M, 25 steps.
    "default24": dict(model="sd15-random", size=512, guidance=7.5, scheduler="dpm++2m", steps=25, frames=24),
    # SDXL at its native 1024² and its default profile (25 DPM-Solver++ steps, guidance 5), 24 frames.
    "sdxl24": dict(model="sdxl-random", frames=24),
    # The few-step way on both architectures: 4 Euler steps, trailing spacing, no guidance, 24 frames.
    "fast4": dict(model="sd15-random,sdxl-random", profile="turbo", frames=24),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="GPU settings: h100 (the design anchors), default24, "
                                                             "sdxl24 or fast4; explicit options below override it")
    p.add_argument("--model", help="comma-separated: tiny,tiny-sdxl (CPU default), sd15-random / sdxl-random "
                                   "(real FLOPs, random weights) or repo ids")
    p.add_argument("--profile", help="auto (default), standard, turbo, lightning or lcm (morph.profiles)")
    p.add_argument("--frames", type=int)
    p.add_argument("--steps", type=int, help="default: the model's profile")
    p.add_argument("--scheduler", help="default: the model's profile")
    p.add_argument("--size", type=int, help="pixels (default: the model's native size)")
    p.add_argument("--guidance", type=float, help="default: the model's profile")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--batch", type=int, help="engine frames per UNet batch (default: the engine's choice)")
    p.add_argument("--compile", action="store_true",
                   help="engine with torch.compile'd UNet (compiled before timing; the baseline stays eager)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per method; the best is reported (1)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--prompt-a", default="a photo of a dog")
    p.add_argument("--prompt-b", default="a photo of a cat")
    p.add_argument("--skip-baseline", action="store_true", help="time only the engine")
    p.add_argument("--scaling", action="store_true",
                   help="also time one UNet call at several batch sizes (why batching does or does not pay here)")
    return p


def settings(args) -> dict:
    """Preset, then explicit options; None = the model's own (its profile's steps, scheduler, guidance; its size)."""
    s = dict(model="tiny,tiny-sdxl", profile="auto", frames=24, steps=None, scheduler=None, size=None, guidance=None)
    if args.preset:
        s.update(PRESETS[args.preset])
    for key in s:
        value = getattr(args, key)
        if value is not None:
            s[key] = value
    return s


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.load_before = load_average()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = settings(args)
    models = [m.strip() for m in cfg["model"].split(",") if m.strip()]
    for i, model in enumerate(models):
        if i:
            print()
        code = run_model(args, {**cfg, "model": model})
        if code:
            return code
    return 0


def run_model(args, cfg: dict) -> int:
    """Benchmark one model (cfg["model"]) and print its report."""
    from morph import MorphError, RenderRequest
    from morph.engine import Morpher
    from morph.pacing import uniform_ts

    try:
        morpher = Morpher(cfg["model"], device=args.device, batch_size=args.batch, compile=args.compile,
                          profile=cfg["profile"])
        if morpher.compile_error:
            print(f"bench: error: --compile failed, the UNet would run eagerly: {morpher.compile_error}",
                  file=sys.stderr)
            return 2
        size = cfg["size"] or morpher.native_size
        base = morpher.profile.fill(RenderRequest(
            [args.prompt_a, args.prompt_b], frames=cfg["frames"], seed=args.seed, steps=cfg["steps"], size=size,
            guidance=cfg["guidance"], scheduler=cfg["scheduler"], pacing="uniform",
            # the plain path: the per-frame baseline renders each frame from its prompt mix alone, and the
            # engine must draw the same pictures (bench.quality times the smooth path against it)
            path="plain", candidates=min(5, cfg["frames"])).validate())
    except MorphError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    bench = Bench(morpher, base)
    bench.warm_up(baseline=not args.skip_baseline)
    methods = {"uniform": (lambda: bench.engine("uniform"), morpher.unet),
               "perceptual": (lambda: bench.engine("perceptual"), morpher.unet)}
    if not args.skip_baseline:
        methods["baseline"] = (lambda: bench.baseline(uniform_ts(base.frames)), morpher.pipe.unet)
    if args.compile:  # what compiling alone buys: the same engine with the eager UNet, in the same run
        eager = Morpher(cfg["model"], device=args.device, batch_size=args.batch, profile=cfg["profile"])
        methods["uniform_eager"] = (lambda: bench.engine("uniform", eager), eager.unet)
    timed = bench.interleaved(methods, max(1, args.repeat))
    uniform, perceptual, baseline = timed["uniform"], timed["perceptual"], timed.get("baseline")
    print(report(morpher, base, cfg, args, uniform, perceptual, baseline, timed.get("uniform_eager")))
    if args.scaling:
        print()
        print(unet_scaling(morpher, base))
    return 0


class Bench:
    def __init__(self, morpher, request):
        import torch

        self.torch = torch
        self.m = morpher
        self.req = request
        self.pipe = self._baseline_pipeline()

    def _sync(self):
        if self.m.device.type == "cuda":
            self.torch.cuda.synchronize()

    def _count_unet_calls(self, fn, unet) -> tuple[dict, int]:
        """Run ``fn`` and count its forward calls of ``unet`` (a batch of frames is one call per step). The
        hook goes on the module the method calls: the compiled wrapper for a compiled engine (a hook inside
        the compiled module would force a recompile)."""
        calls = [0]
        handle = unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        try:
            return fn(), calls[0]
        finally:
            handle.remove()

    def interleaved(self, methods: dict, repeat: int) -> dict:
        """Run the methods round-robin ``repeat`` times (so a busy moment on a shared machine hits them all
        alike) and keep each one's best time. ``methods``: {name: (function, the UNet module it calls)};
        returns {name: {"seconds": best, "unet_calls": n, ...its last output}}."""
        best: dict = {}
        for _ in range(repeat):
            for name, (fn, unet) in methods.items():
                self._sync()
                t0 = time.perf_counter()
                out, calls = self._count_unet_calls(fn, unet)
                self._sync()
                dt = time.perf_counter() - t0
                if name not in best or dt < best[name]["seconds"]:
                    best[name] = {**out, "seconds": dt, "unet_calls": calls}
        return best

    def warm_up(self, baseline: bool) -> None:
        """One small run of each code path (kernel selection, allocator, lazy imports) before timing."""
        small = dataclasses.replace(self.req, frames=2, steps=2, candidates=1)
        self.m.render(small)
        if baseline:
            self._baseline_frames([0.0], steps=2)

    def engine(self, pacing: str, morpher=None) -> dict:
        return {"result": (morpher or self.m).render(dataclasses.replace(self.req, pacing=pacing))}

    def _baseline_pipeline(self):
        """A second pipeline object of the same class over the same modules, with its own scheduler of the
        requested type (and the profile's timestep spacing), so the engine's pipeline is left untouched."""
        from morph.models import make_scheduler

        components = dict(self.m.pipe.components)
        components["scheduler"] = make_scheduler(self.m.pipe, self.req.scheduler, self.m.profile.timestep_spacing)
        pipe = type(self.m.pipe)(**components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _baseline_frames(self, ts, steps=None) -> list:
        """The article's way: one pipeline call per frame with interpolated prompt embeddings."""
        from morph.render import step_generators

        torch = self.torch
        req = self.req
        with torch.inference_mode():
            emb_a, _ = self.m.encode(req.prompts[0])
            emb_b, _ = self.m.encode(req.prompts[1])
            uncond, _ = self.m.encode(req.negative)
            noise = self.m.noise(req.seed, req.size)
            images = []
            for t in ts:
                text = emb_a.mix(emb_b, t)
                kw = dict(prompt_embeds=text.tokens, negative_prompt_embeds=uncond.tokens)
                if self.m.xl:
                    kw.update(pooled_prompt_embeds=text.pooled, negative_pooled_prompt_embeds=uncond.pooled)
                if req.scheduler == "lcm":  # the per-step noise the engine gives every frame
                    kw["generator"] = step_generators(req.seed, 1)[0]
                out = self.pipe(**kw, latents=noise.clone(), num_inference_steps=steps or req.steps,
                                guidance_scale=req.guidance, height=req.size, width=req.size, output_type="pil")
                images.append(out.images[0])
        return images

    def baseline(self, ts) -> dict:
        return {"images": self._baseline_frames(ts)}


def unet_scaling(morpher, req) -> str:
    """Time one UNet forward per batch size (samples, i.e. CFG halves count): ms per call and per sample.
    Sizes: 1..16 and the engine's batch with CFG (on CUDA also 32 and 64)."""
    import torch

    batches = {1, 2, 4, 8, 16, 2 * morpher.frames_per_batch(req.size)}
    if morpher.device.type == "cuda":
        batches |= {32, 64}
    unet = morpher.unet  # the compiled wrapper under --compile
    text, _ = morpher.encode(req.prompts[0])
    side = req.size // morpher.pipe.vae_scale_factor
    lines = ["UNet forward at one timestep (samples = frames x 2 with CFG):", "",
             "| samples per call | ms per call | ms per sample |", "|---|---|---|"]
    with torch.inference_mode():
        for b in sorted(batches):
            x = torch.randn(b, morpher.pipe.unet.config.in_channels, side, side, device=morpher.device,
                            dtype=morpher.dtype)
            kwargs = morpher.unet_kwargs(text.expand(b), req.size, req.guidance)
            for _ in range(2):  # warm-up for this shape
                unet(x, 500, **kwargs)
            if morpher.device.type == "cuda":
                torch.cuda.synchronize()
            reps, t0 = 5, time.perf_counter()
            for _ in range(reps):
                unet(x, 500, **kwargs)
            if morpher.device.type == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) / reps * 1000
            lines.append(f"| {b} | {ms:.1f} | {ms / b:.2f} |")
    return "\n".join(lines)


def _max_pixel_diff(a, b) -> int:
    import numpy as np

    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


def report(morpher, req, cfg, args, uniform, perceptual, baseline, uniform_eager=None) -> str:
    import torch

    n = req.frames
    info = morpher.device_info()
    dev = info["device"]
    threads = torch.get_num_threads()
    batch = morpher.frames_per_batch(req.size)
    lines = [
        f"morph benchmark — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine()}; device: {dev}; torch {torch.__version__} ({threads} threads), "
        f"dtype {str(morpher.dtype).replace('torch.', '')}",
        f"settings: model {cfg['model']} ({morpher.profile.name} profile), {n} frames, {req.steps} steps "
        f"{req.scheduler}, {req.size}x{req.size}, CFG {req.guidance}, seed {req.seed}, engine batch {batch} frames"
        f"{' (x2 with CFG)' if morpher.guided(req.guidance) else ''}, "
        f"engine UNet {'torch.compile' if morpher.unet is not morpher.pipe.unet else 'eager'}, best of {args.repeat}",
    ]
    load = args.load_before
    if load is not None and load >= (os.cpu_count() or 1) * 0.75:
        lines.append(f"note: load average {load:.1f} on {os.cpu_count()} CPUs before this run: other programs share "
                     "the CPUs, timings are noisy (--threads 1 and --repeat 3 help)")
    lines += [
        "",
        "| method | UNet batch | UNet calls | total s | s/frame | speed-up vs per-frame calls |",
        "|---|---|---|---|---|---|",
    ]
    cfg_mult = 2 if morpher.guided(req.guidance) else 1
    largest = min(batch, n) * cfg_mult  # samples in the largest UNet call of this morph
    rows: list[tuple[str, int | str, dict]] = []
    if baseline:
        rows.append(("per-frame pipeline calls (the article's way)", cfg_mult, baseline))
    if uniform_eager:
        rows.append(("engine, uniform pacing, eager UNet", largest, uniform_eager))
    rows.append(("engine, uniform pacing", largest, uniform))
    rows.append(("engine, perceptual pacing", f"≤{largest}", perceptual))
    for name, b, timed in rows:
        sec = timed["seconds"]
        ratio = f"{baseline['seconds'] / sec:.2f}x" if baseline else "n/a"
        lines.append(f"| {name} | {b} | {timed['unet_calls']} | {sec:.2f} | {sec / n:.3f} | {ratio} |")
    lines.append("")
    lines.append("| pacing | max/mean adjacent distance | 1 - Gini | UNet frame evaluations |")
    lines.append("|---|---|---|---|")
    for name, r in (("uniform", uniform["result"]), ("perceptual", perceptual["result"])):
        lines.append(f"| {name} | {r.max_over_mean:.3f} | {r.one_minus_gini:.3f} | {r.unet_evals} |")
    if baseline:
        u = uniform["result"]
        first = _max_pixel_diff(u.frames[0], baseline["images"][0])
        mid = n // 2
        middle = _max_pixel_diff(u.frames[mid], baseline["images"][mid])
        lines.append("")
        lines.append(f"same pictures? max |pixel difference| engine vs baseline: frame 0 = {first}, "
                     f"frame {mid} = {middle} (of 255; batching changes float rounding only)")
        ratio = baseline["seconds"] / uniform["seconds"]
        lines.append(f"ratio baseline/engine (uniform): {ratio:.2f}x; "
                     f"(perceptual): {baseline['seconds'] / perceptual['seconds']:.2f}x")
    if uniform_eager:
        lines.append(f"torch.compile alone (uniform pacing, eager/compiled UNet): "
                     f"{uniform_eager['seconds'] / uniform['seconds']:.2f}x")
    return "\n".join(lines)
