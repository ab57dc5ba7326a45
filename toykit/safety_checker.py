"""Make the toy world's image safety checker: ``morph/toy_model/safety_checker/`` and ``feature_extractor/``.

    python -m toykit.safety_checker [--out morph/toy_model] [--seed 0] [--steps 1200] [--renders 120]

It is diffusers' own ``StableDiffusionSafetyChecker`` (the class SD 1.x ships) with a small CLIP vision
model (64 px input, 8 px patches, 3 layers), so the bot's safety filter runs its real code offline. The
real checker compares a picture's CLIP embedding with 17 "concept" embeddings and flags it when the cosine
similarity to one of them passes that concept's threshold (``concept_embeds_weights``). Here one concept
is a harmless toy one, :data:`morph.safety.TOY_UNSAFE_CONCEPT` ("a yellow star", any size, any
background): concept 0 is a fixed seeded unit vector with threshold 0.5, and the vision model and its
projection are trained (seeded; minutes on a 2-core CPU) so that pictures of yellow stars land near it and
every other picture far from it. The other 16 concepts and the 3 "special care" ones have thresholds
above 1, which a cosine never reaches: they flag nothing.

Training pictures come from the toy world's own drawings (:mod:`toykit.shapes`), blurred and noised a little
so they look like what the toy model renders, drawn once into a pool; a third of them are yellow stars, a
third hard negatives (yellow shapes that are not stars, stars that are not yellow). As many again are
frames the ``toy`` model itself rendered (``--renders`` pairs: a yellow-star prompt and another one). The
script then checks the result on the drawings of every shape/colour pair and prints the rates (also written
to ``safety_checker/training.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import torch

from morph.safety import TOY_UNSAFE_CONCEPT
from toykit import shapes

SHAPE, COLOUR = "star", "yellow"
VISION = dict(image_size=64, patch_size=8, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
              num_attention_heads=4)
PROJECTION_DIM = 16
THRESHOLD = 0.5  # the margin training aims at
#: What the shipped checker flags from (concept 0's ``concept_embeds_weights``): below the training margin,
#: because the toy model's 25-step renders of yellow stars land at cosines of 0.3-0.9, other pictures below 0.
FLAG_THRESHOLD = 0.3
NEVER = 2.0  # a threshold no cosine reaches


def scene_for(rng: random.Random, shape: str | None = None, colour: str | None = None) -> shapes.Scene:
    while True:
        s = shapes.random_scene(rng, exclude=())
        if (shape is None or s.shape == shape) and (colour is None or s.colour == colour):
            return s


def picture(scene: shapes.Scene, rng: random.Random) -> torch.Tensor:
    """The scene as 3×64×64 floats in [0, 1], softened and noised like a render."""
    x = torch.frombuffer(bytearray(shapes.draw(scene).tobytes()), dtype=torch.uint8).view(64, 64, 3)
    x = x.permute(2, 0, 1).float() / 255
    if rng.random() < 0.7:
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
        x = torch.nn.functional.conv2d(x[None], k, padding=1, groups=3)[0]
    x = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(rng.randrange(2**31))) * rng.uniform(0, 0.06)
    return x.clamp(0, 1)


def pool(rng: random.Random, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training pictures drawn once (drawing is the slow part), with their labels."""
    scenes, labels = [], []
    for i in range(n):
        kind = i % 6
        if kind in (0, 1):
            s = scene_for(rng, SHAPE, COLOUR)
        elif kind == 2:
            s = scene_for(rng, colour=COLOUR)
        elif kind == 3:
            s = scene_for(rng, shape=SHAPE)
        else:
            s = scene_for(rng)
        scenes.append(s)
        labels.append(float(s.shape == SHAPE and s.colour == COLOUR))
    return torch.stack([picture(s, rng) for s in scenes]), torch.tensor(labels)


def renders(rng: random.Random, pairs: int, model: str = "toy") -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures the toy model itself draws, so the checker learns what renders look like: ``pairs`` renders
    of two frames, a yellow-star prompt (any size, any background) and another prompt (a hard negative half
    of the time), with random seeds and 6-25 denoising steps."""
    from morph import Morpher, RenderRequest

    morpher = Morpher(model, device="cpu")
    xs, ys = [], []
    for i in range(pairs):
        star = scene_for(rng, SHAPE, COLOUR)
        other = scene_for(rng, colour=COLOUR) if i % 2 else scene_for(rng, shape=SHAPE) if i % 4 == 1 else \
            scene_for(rng)
        if other.shape == SHAPE and other.colour == COLOUR:
            other = scene_for(rng, shape="circle")
        prompts = [shapes.describe(star, rng), shapes.describe(other, rng)]
        frames = morpher.render(RenderRequest([prompts[0], prompts[1]], frames=2, seed=rng.randrange(2**31),
                                              steps=rng.choice([6, 8, 12, 25]), pacing="uniform",
                                              candidates=1)).frames
        for frame, label in zip(frames, (1.0, 0.0), strict=True):
            x = torch.frombuffer(bytearray(frame.convert("RGB").tobytes()), dtype=torch.uint8).view(64, 64, 3)
            xs.append(x.permute(2, 0, 1).float() / 255)
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys)


def normalise(x: torch.Tensor, processor) -> torch.Tensor:
    """What CLIPImageProcessor does to a 64 px picture (no resize needed): mean/std per channel."""
    mean = torch.tensor(processor.image_mean)[:, None, None]
    std = torch.tensor(processor.image_std)[:, None, None]
    return (x - mean) / std


def build(seed: int):
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(seed)
    config = CLIPConfig(vision_config=VISION, text_config=dict(hidden_size=32, intermediate_size=64,
                                                               num_hidden_layers=1, num_attention_heads=2,
                                                               vocab_size=100),
                        projection_dim=PROJECTION_DIM)
    checker = StableDiffusionSafetyChecker(config)
    concept = torch.nn.functional.normalize(torch.randn(PROJECTION_DIM), dim=0)
    with torch.no_grad():
        checker.concept_embeds.copy_(concept.expand(17, -1))
        checker.special_care_embeds.copy_(concept.expand(3, -1))
        checker.concept_embeds_weights.fill_(NEVER)
        checker.concept_embeds_weights[0] = THRESHOLD
        checker.special_care_embeds_weights.fill_(NEVER)
    processor = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
                                   do_center_crop=True, do_resize=True)
    return checker, processor, concept


def train(checker, processor, concept: torch.Tensor, steps: int, seed: int, pictures: int = 3000,
          batch: int = 64, rendered: int = 0) -> list[float]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    xs, ys = pool(rng, pictures)
    if rendered:
        rx, ry = renders(rng, rendered)
        # the renders weigh as much as the drawings: repeated so that they are half of the pool
        times = max(1, len(xs) // len(rx))
        xs, ys = torch.cat([xs, rx.repeat(times, 1, 1, 1)]), torch.cat([ys, ry.repeat(times)])
    params = list(checker.vision_model.parameters()) + list(checker.visual_projection.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    losses = []
    t0 = time.time()
    checker.train()
    for step in range(steps):
        idx = torch.randint(0, len(xs), (batch,), generator=g)
        x, y = xs[idx], ys[idx]
        if step % 2:  # a mirrored star is still a star
            x = x.flip(3)
        x = (x + torch.randn(x.shape, generator=g) * 0.03).clamp(0, 1)
        emb = checker.visual_projection(checker.vision_model(normalise(x, processor))[1])
        cos = torch.nn.functional.normalize(emb, dim=1) @ concept
        loss = torch.nn.functional.binary_cross_entropy_with_logits(12 * (cos - THRESHOLD), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {sum(losses[-50:]) / len(losses[-50:]):.4f}  "
                  f"{time.time() - t0:.0f} s", flush=True)
    checker.eval()
    return losses


def evaluate(checker, processor, seed: int, per_pair: int = 6) -> dict:
    """Flag rates on fresh drawings: the concept, and every other shape/colour pair."""
    from PIL import Image

    rng = random.Random(seed + 1000)
    from morph.safety import SafetyChecker

    sc = SafetyChecker(checker, processor, torch.device("cpu"), "training")
    rates = {}
    for shape in shapes.SHAPES:
        for colour in shapes.COLOURS:
            ims = []
            for _ in range(per_pair):
                x = picture(scene_for(rng, shape, colour), rng)
                ims.append(Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype("uint8")))
            rates[f"{colour} {shape}"] = sum(sc.check_images(ims)) / per_pair
    concept = rates[f"{COLOUR} {SHAPE}"]
    others = [v for k, v in rates.items() if k != f"{COLOUR} {SHAPE}"]
    return {"concept_flagged": concept, "others_flagged_mean": sum(others) / len(others),
            "others_flagged_max": max(others), "per_pair": rates}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("morph", "toy_model"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--renders", type=int, default=120, help="pairs of toy-model renders in the training pool")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: more threads only wait on each other on a busy machine
    started = time.time()
    checker, processor, concept = build(args.seed)
    losses = train(checker, processor, concept, args.steps, args.seed, rendered=args.renders)
    with torch.no_grad():
        checker.concept_embeds_weights[0] = FLAG_THRESHOLD
    checker.save_pretrained(os.path.join(args.out, "safety_checker"))
    processor.save_pretrained(os.path.join(args.out, "feature_extractor"))
    print(f"saved; evaluating ({time.time() - started:.0f} s so far)", flush=True)
    report = evaluate(checker, processor, args.seed)
    report.update({"unsafe_concept": TOY_UNSAFE_CONCEPT, "seed": args.seed, "steps": args.steps,
                   "renders": args.renders, "flag_threshold": FLAG_THRESHOLD,
                   "final_loss": sum(losses[-50:]) / len(losses[-50:]), "seconds": round(time.time() - started, 1),
                   "made_by": "python -m toykit.safety_checker"})
    print(json.dumps({k: v for k, v in report.items() if k != "per_pair"}, indent=1))
    with open(os.path.join(args.out, "safety_checker", "training.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
