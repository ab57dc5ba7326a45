"""Picture morphs on the ``toy`` model: their cost against a prompt morph of the same frames, and how well
the ends reproduce the pictures.

``python -m bench.images [--threads 1] [--frames 12]`` draws :data:`PICTURES` (toy scenes, with the shapes
world's own code) and, for each pair, renders in the same run, round-robin:

* the baseline, a prompt morph of the two scenes' descriptions with the model's defaults (DPM-Solver++ 25
  steps, guidance 7.5), perceptual pacing, the same frames, on the smooth path (the default, as picture
  morphs are: every frame anchored to its two ends' keys/values);
* the picture morph of the two pictures (inversion of each, then DDIM 25 steps, no guidance, smooth path);
* for reference a prompt morph with the picture morph's sampler and guidance (DDIM, guidance 1), which is
  what a picture morph costs without its two inversions (smooth path too).

It reports the best wall time of each, their ratio, the UNet samples each evaluated (counted, so the cost
bound "two inversions plus a prompt morph" is checked exactly, machine or no machine), and the ends'
reconstruction PSNR against the pictures at the model's size: by the picture morph itself, by the same
picture morph on the plain path (the smooth path's ends must be the same pictures), with guidance 7.5 (the
pictures described, to show why picture morphs render without guidance), and the VAE's own ceiling
(encode + decode, no diffusion).
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.results import load_average, load_text, machine
from toykit import shapes

#: (scene, description) pairs: the first picture of each pair morphs into the second.
PICTURES = (
    ((shapes.Scene("circle", "red", "blue", 36, 32, 32), "a red circle on a blue background"),
     (shapes.Scene("star", "yellow", "green", 40, 30, 34), "a yellow star on a green background")),
    ((shapes.Scene("square", "white", "black", 30, 34, 30), "a white square on a black background"),
     (shapes.Scene("heart", "pink", "white", 44, 32, 32), "a pink heart on a white background")),
    ((shapes.Scene("triangle", "orange", "purple", 40, 30, 32), "an orange triangle on a purple background"),
     (shapes.Scene("ring", "green", "yellow", 34, 32, 34), "a green ring on a yellow background")),
)


class CountingUNet:
    """Counts the samples the pipeline's UNet evaluates (the batch of every call), whoever calls it: the plain
    path, the inversion and the smooth path (which calls the pipeline's UNet itself) alike. A forward
    pre-hook, so the attention processors the smooth path installs are left alone."""

    def __init__(self, unet):
        self.samples = 0
        self.handle = unet.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        self.samples += int(sample.shape[0])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from morph import images, inversion
    from morph.engine import Morpher
    from morph.request import RenderRequest

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    morpher = Morpher("toy", device="cpu")
    counter = CountingUNet(morpher.pipe.unet)
    folder = Path(tempfile.mkdtemp(prefix="bench-images-"))
    rows = []
    for n, ((scene_a, text_a), (scene_b, text_b)) in enumerate(PICTURES):
        paths: list[str | None] = []
        for i, scene in enumerate((scene_a, scene_b)):
            path = folder / f"{n}-{i}.png"
            shapes.draw(scene).save(path)
            paths.append(str(path))
        runs = {  # the smooth path (the default) throughout
            "prompt morph (defaults)": RenderRequest(prompts=[text_a, text_b], frames=args.frames),
            "picture morph": RenderRequest(images=paths, frames=args.frames),
            "prompt morph (ddim, guidance 1)": RenderRequest(prompts=[text_a, text_b], frames=args.frames,
                                                             scheduler="ddim", guidance=1.0),
        }
        best: dict[str, float] = {}
        samples: dict[str, int] = {}
        results = {}
        morpher.render(RenderRequest(prompts=[text_a, text_b], frames=2))  # warm-up
        for _ in range(args.repeat):
            for name, req in runs.items():
                counter.samples = 0
                started = time.perf_counter()
                results[name] = morpher.render(req)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
                samples[name] = counter.samples
        assert all(r.request is not None and r.request.path == "smooth" for r in results.values())
        plain = morpher.render(RenderRequest(images=paths, frames=2, path="plain"))
        guided = morpher.render(RenderRequest(images=paths, prompts=[text_a, text_b], frames=2, guidance=7.5))
        with torch.inference_mode():
            ceiling = []
            for p in paths:
                picture = images.load(str(p), morpher.native_size)
                latent = inversion.picture_latent(morpher.pipe, picture, morpher.device, morpher.dtype)
                decoded = morpher.pipe.vae.decode(latent / morpher.pipe.vae.config.scaling_factor).sample
                ceiling.append(inversion.psnr(morpher.pipe.image_processor.postprocess(decoded, "pil")[0], picture))
        rows.append({"pair": f"{text_a} → {text_b}", "best": best, "samples": samples,
                     "psnr": results["picture morph"].reconstruction, "plain": plain.reconstruction,
                     "guided": guided.reconstruction,
                     "ceiling": ceiling, "steps": _steps(results["picture morph"])})
    print(report(rows, args))
    when = datetime.datetime.now(datetime.timezone.utc)
    print(f"\n{when:%Y-%m-%d %H:%M} UTC, {machine()}, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), load average before/after: {load_text(load_before)}/{load_text(load_average())}")
    return 0


def report(rows: list[dict], args) -> str:
    names = list(rows[0]["best"])
    lines = [f"{args.frames} frames, 64×64, perceptual pacing, smooth path, best of {args.repeat}; seconds per "
             "render (UNet samples evaluated)", "",
             "| pair | " + " | ".join(names) + " | picture ÷ prompt morph | picture ÷ same-sampler prompt morph "
             "| PSNR ends (dB) | plain path | with guidance 7.5 | VAE ceiling |", "|---" * (len(names) + 7) + "|"]
    for r in rows:
        times = " | ".join(f"{r['best'][n]:.2f} s ({r['samples'][n]})" for n in names)
        ratio = r["best"]["picture morph"] / r["best"][names[0]]
        same = r["best"]["picture morph"] / r["best"][names[2]]
        lines.append(f"| {r['pair']} | {times} | {ratio:.2f}× | {same:.2f}× | {_db(r['psnr'])} | {_db(r['plain'])} | "
                     f"{_db(r['guided'])} | {_db(r['ceiling'])} |")
        bound = r["samples"]["prompt morph (ddim, guidance 1)"] + 2 * r["steps"]
        assert r["samples"]["picture morph"] <= bound, "more than two inversions + a prompt morph"
    ratios = [r["best"]["picture morph"] / r["best"][names[0]] for r in rows]
    same_ratios = [r["best"]["picture morph"] / r["best"][names[2]] for r in rows]
    worst = min(min(r["psnr"]) for r in rows)
    lines += ["", f"picture morph ÷ prompt morph (defaults), mean of pairs: {statistics.mean(ratios):.2f}×; "
              f"÷ the same-sampler prompt morph: {statistics.mean(same_ratios):.2f}×; "
              f"UNet samples of a picture morph = the same-sampler prompt morph's + 2 × {rows[0]['steps']} "
              f"(two inversions) in every pair; worst end reconstruction {worst:.1f} dB (goal ≥ 24 dB)"]
    return "\n".join(lines)


def _steps(result) -> int:
    assert result.request is not None  # a render's result carries its (filled-in) request
    return int(result.request.steps)


def _db(values) -> str:
    return " / ".join("—" if v is None else f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
