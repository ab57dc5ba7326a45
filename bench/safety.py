"""What the image safety check costs, against the render it checks, in one run on one machine.

    python -m bench.safety [--model toy,tiny] [--frames 24] [--steps N] [--repeat 3] [--device cpu]

For each model: render one morph with the engine (as the worker does), then run the bot's safety check
(:class:`morph.safety.SafetyChecker`, the model's own checker or the one ``MORPH_SAFETY_CHECKER`` names) on
its frames, batched, on the same device; ``--repeat`` times round-robin, best of each. Prints seconds per
frame for both and the check's share of the render (the ratio). Model and checker loading are not timed.
On a GPU give a real model (``--model stable-diffusion-v1-5/stable-diffusion-v1-5``: its own checker) or
``sd15-random`` with ``--checker CompVis/stable-diffusion-safety-checker`` for the real checker's size.
"""
from __future__ import annotations

import argparse
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.safety", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toy,tiny")
    p.add_argument("--checker", help="MORPH_SAFETY_CHECKER (default: the model's own, else the default one)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int)
    p.add_argument("--device")
    p.add_argument("--threads", type=int)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    import torch

    from bench.run import machine
    from morph import Morpher, RenderRequest
    from morph.safety import DEFAULT_CHECKER, SafetyChecker

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# safety check vs render — {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for model in args.model.split(","):
        morpher = Morpher(model, device=args.device)
        checker = SafetyChecker.load(model, morpher.device, fallback=args.checker or DEFAULT_CHECKER,
                                     explicit=args.checker is not None)
        request = RenderRequest(["a big red circle on a blue background", "a big yellow star on a blue background"],
                                frames=args.frames, steps=args.steps, seed=1)
        frames = morpher.render(request).frames  # warm-up (and the frames for the checker's warm-up)
        checker.check_images(frames)
        render_s, check_s, flagged = [], [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            frames = morpher.render(request).frames
            render_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            flags = checker.check_images(frames)
            check_s.append(time.perf_counter() - t)
            flagged = sum(flags)
        n = len(frames)
        r, c = min(render_s) / n, min(check_s) / n
        print(f"{model}: {n} frames of {frames[0].size[0]} px on {morpher.device}; checker {checker.source}")
        print(f"  render {r * 1000:.1f} ms/frame, safety check {c * 1000:.2f} ms/frame: check/render = {c / r:.3f} "
              f"({flagged} of {n} frames flagged)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
