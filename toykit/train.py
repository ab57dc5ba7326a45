"""Train the ``toy`` model: a small Stable Diffusion that draws the coloured shapes of :mod:`toykit.shapes`.

The committed model was made by two runs (one thread each; their time is in bench/RESULTS.md)::

    python -m toykit train --checkpoints /tmp/toy-ck      # VAE 1200 steps, then UNet 2000 steps
    python -m toykit train --init-from morph/toy_model --seed 1 --unet-steps 2500 --unet-lr 6e-4

and is checked by::

    python -m toykit eval [--model PATH] [--trained 32]   # the judge's score on held-out shape/colour pairs

A smoke run: ``python -m toykit train --out /tmp/t --vae-steps 20 --unet-steps 20 --scenes 500``.

The result is an ordinary diffusers Stable Diffusion 1.x pipeline folder (``save_pretrained``, safetensors in
float16 to halve the size): CLIP text encoder + its tokenizer, ``AutoencoderKL``, ``UNet2DConditionModel``,
SD 1.x's scheduler config. ``load_pipeline("toy")`` loads it from ``morph/toy_model/`` with
``from_pretrained``, as any local model.

Sizes, chosen so a default 24-frame, 25-step morph renders in seconds on 2 CPU cores and a training run fits
in well under an hour there: 64×64 pictures, 16×16×4 latents (VAE of 32/64/64 channels, scale factor 4, no
attention); a UNet of 32/64/128 channels with self- and cross-attention at 8×8 and 4×4 (4.1M parameters);
a 2-layer CLIP text encoder of width 64 with the generated BPE tokenizer
(:func:`morph.builtin.build_tokenizer`) plus whole-word tokens for the shapes' words.

Training, seeded end to end (same seed, same machine type: same weights):

1. draw ``--scenes`` random scenes (:func:`toykit.shapes.random_scene`, never a :data:`~toykit.shapes.HELD_OUT`
   shape/colour pair);
2. train the VAE to reconstruct random 32-pixel crops of them (MSE + a small KL term; fully convolutional,
   so crops teach it whole pictures at a quarter of the cost), then encode every picture once (the
   posterior mean) and set ``scaling_factor`` to 1/std of those latents, as SD does;
3. train the UNet and the text encoder together on the latents: SD 1.x's noise schedule and epsilon
   target, min-SNR-5 loss weighting (faster convergence), a fresh prompt per picture each time it is seen
   (:func:`toykit.shapes.describe` leaves words out at random, so "a circle" means any colour), 10% empty
   prompts (for classifier-free guidance), AdamW with warm-up and cosine decay, and an exponential moving
   average of the weights, which is what gets saved.

``--init-from`` continues from a saved folder (its VAE and scale as they are; new scenes with a new
``--seed``). ``--text-encoder frozen`` keeps the text encoder at its random initial weights instead of
training it (the comparison is in bench/RESULTS.md). The run's settings, time and losses are written to
``training.json`` in the folder (a continued run keeps the earlier run's under ``continues``).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import random
import resource
import shutil
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from morph.builtin import SD_SCHEDULER, build_tokenizer, generated_tokenizer_dir
from morph.models import TOY_DIR
from morph.request import CLIP_MAX_TOKENS
from toykit import shapes

TEXT_CONFIG: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, max_position_embeddings=CLIP_MAX_TOKENS)
# No attention in the VAE: fully convolutional, so it trains on crops (4x cheaper) and works on whole pictures.
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                  block_out_channels=(32, 64, 64), norm_num_groups=8, sample_size=shapes.IMAGE_SIZE,
                  down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                  mid_block_add_attention=False)
# Attention (self + cross) at 8x8 and 4x4 latents: text reaches the layout, at 2/3 of the cost of 16x16.
UNET_CONFIG = dict(sample_size=shapes.IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
                   block_out_channels=(32, 64, 128), cross_attention_dim=TEXT_CONFIG["hidden_size"],
                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                   attention_head_dim=4, norm_num_groups=8)
#: Side of the random crops the VAE trains on.
VAE_CROP = 32
#: Fraction of training prompts left empty: the unconditional half of classifier-free guidance.
EMPTY_PROMPT = 0.1
MIN_SNR_GAMMA = 5.0
KL_WEIGHT = 1e-7


def build(seed: int):
    """Fresh (tokenizer, text encoder, VAE, UNet) with weights drawn from ``seed``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer(shapes.WORDS)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **TEXT_CONFIG))
    vae = AutoencoderKL(**VAE_CONFIG)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    return tokenizer, text_encoder, vae, unet


def draw_scenes(count: int, seed: int) -> tuple[list[shapes.Scene], torch.Tensor]:
    """``count`` random scenes and their pictures (count×3×64×64 uint8)."""
    rng = random.Random(seed)
    scenes = [shapes.random_scene(rng) for _ in range(count)]
    pictures = torch.empty(count, 3, shapes.IMAGE_SIZE, shapes.IMAGE_SIZE, dtype=torch.uint8)
    for i, scene in enumerate(scenes):
        pictures[i] = torch.frombuffer(bytearray(shapes.draw(scene).tobytes()), dtype=torch.uint8).view(
            shapes.IMAGE_SIZE, shapes.IMAGE_SIZE, 3).permute(2, 0, 1)
    return scenes, pictures


def _to_unit(pictures: torch.Tensor) -> torch.Tensor:
    return pictures.float() / 127.5 - 1.0


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


class _Log:
    """Prints progress lines and keeps (step, mean loss) points for training.json."""

    def __init__(self, stage: str, steps: int, every: int = 50):
        self.stage, self.steps, self.every = stage, steps, every
        self.started = time.perf_counter()
        self.window: list[float] = []
        self.points: list[tuple[int, float]] = []

    def add(self, step: int, loss: float) -> None:
        self.window.append(loss)
        if (step + 1) % self.every == 0 or step + 1 == self.steps:
            mean = sum(self.window) / len(self.window)
            self.points.append((step + 1, round(mean, 6)))
            elapsed = time.perf_counter() - self.started
            print(f"{self.stage} step {step + 1}/{self.steps} loss {mean:.5f} "
                  f"{elapsed:.0f} s ({elapsed / (step + 1):.2f} s/step)", flush=True)
            self.window = []

    def summary(self) -> dict:
        return {"steps": self.steps, "seconds": round(time.perf_counter() - self.started, 1),
                "final_loss": self.points[-1][1] if self.points else None, "loss_curve": self.points}


def train_vae(vae, pictures: torch.Tensor, steps: int, batch: int, lr: float, seed: int) -> dict:
    """Teach the VAE to reconstruct random :data:`VAE_CROP`-pixel crops of the pictures; returns the run summary."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, min(100, steps // 10 + 1)))
    log = _Log("vae", steps)
    vae.train()
    for step in range(steps):
        x = _to_unit(_crops(pictures[torch.randint(0, len(pictures), (batch,), generator=g)], VAE_CROP, g))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        loss = F.mse_loss(recon, x) + KL_WEIGHT * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log.add(step, loss.item())
    vae.eval()
    return log.summary()


def _crops(pictures: torch.Tensor, side: int, g: torch.Generator) -> torch.Tensor:
    """One random ``side``-pixel square crop of each picture (corners on a multiple of 4: the VAE's stride)."""
    top = torch.randint(0, (pictures.shape[-1] - side) // 4 + 1, (len(pictures), 2), generator=g) * 4
    return torch.stack([p[:, y:y + side, x:x + side] for p, (y, x) in zip(pictures, top.tolist(), strict=True)])


@torch.no_grad()
def encode_all(vae, pictures: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The posterior mean of every picture (unscaled latents)."""
    return torch.cat([vae.encode(_to_unit(pictures[i:i + batch])).latent_dist.mean
                      for i in range(0, len(pictures), batch)])


class _Prompts:
    """Token ids per prompt, cached (the prompts come from a small vocabulary, so they repeat)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, torch.Tensor] = {}

    def ids(self, prompts: list[str]) -> torch.Tensor:
        for p in prompts:
            if p not in self.cache:
                self.cache[p] = self.tokenizer(p, padding="max_length", max_length=CLIP_MAX_TOKENS,
                                               truncation=True, return_tensors="pt").input_ids[0]
        return torch.stack([self.cache[p] for p in prompts])


def train_unet(unet, text_encoder, tokenizer, scenes, latents: torch.Tensor, steps: int, batch: int, lr: float,
               seed: int, train_text_encoder: bool = True, ema_decay: float = 0.998, save=None,
               save_every: int = 0, stop_at: int | None = None) -> dict:
    """Train the UNet (and the text encoder unless frozen) to predict the noise; returns the run summary.

    Leaves the EMA weights in ``unet``/``text_encoder``. ``save(step)`` is called every ``save_every`` steps
    with the EMA weights swapped in, so a stopped run still leaves a usable model. ``stop_at`` ends the run
    early with the learning-rate schedule of the full ``steps`` (to compare variants at equal cost).
    """
    from diffusers import DDPMScheduler

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    noise_schedule = DDPMScheduler(**{k: v for k, v in SD_SCHEDULER.items()
                                      if k in ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps")})
    alpha_bar = noise_schedule.alphas_cumprod.float()
    snr = alpha_bar / (1 - alpha_bar)
    weight = snr.clamp(max=MIN_SNR_GAMMA) / snr  # min-SNR-gamma for an epsilon target
    prompts = _Prompts(tokenizer)
    trained = [unet] + ([text_encoder] if train_text_encoder else [])
    text_encoder.requires_grad_(train_text_encoder)
    params = [p for m in trained for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, min(200, steps // 10 + 1)))
    ema = [copy.deepcopy(m).requires_grad_(False) for m in trained]
    run = min(steps, stop_at or steps)
    log = _Log("unet", run)
    for m in trained:
        m.train()
    for step in range(run):
        idx = torch.randint(0, len(latents), (batch,), generator=g)
        texts = ["" if rng.random() < EMPTY_PROMPT else shapes.describe(scenes[i], rng) for i in idx.tolist()]
        with torch.set_grad_enabled(train_text_encoder):
            emb = text_encoder(prompts.ids(texts))[0]
        z0 = latents[idx]
        t = torch.randint(0, len(alpha_bar), (batch,), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        ab = alpha_bar[t].view(-1, 1, 1, 1)
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * noise
        pred = unet(zt, t, encoder_hidden_states=emb).sample
        loss = (weight[t] * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for model, avg in zip(trained, ema, strict=True):
                for p, q in zip(model.parameters(), avg.parameters(), strict=True):
                    q.lerp_(p, 1 - decay)
        log.add(step, loss.item())
        if save is not None and save_every and (step + 1) % save_every == 0 and step + 1 < run:
            with _swapped(trained, ema):
                save(step + 1)
    for model, avg in zip(trained, ema, strict=True):
        model.load_state_dict(avg.state_dict())
        model.eval()
    return {**log.summary(), "schedule_steps": steps, "batch": batch, "lr": lr, "ema_decay": ema_decay}


@contextlib.contextmanager
def _swapped(models, averages):
    """Temporarily load the EMA weights into the models (in eval mode); the training weights come back after."""
    saved = [copy.deepcopy(m.state_dict()) for m in models]
    for m, a in zip(models, averages, strict=True):
        m.load_state_dict(a.state_dict())
        m.eval()
    try:
        yield
    finally:
        for m, state in zip(models, saved, strict=True):
            m.load_state_dict(state)
            m.train()


def save_pipeline(out: str, tokenizer, text_encoder, vae, unet, info: dict) -> None:
    """Write a diffusers StableDiffusionPipeline folder (safetensors) plus ``training.json``."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    scheduler = PNDMScheduler.from_config({**SD_SCHEDULER, "clip_sample": False})
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    # float16 files: half the size; from_pretrained turns them back into float32 where asked (the CPU)
    copy.deepcopy(pipe).to(torch.float16).save_pretrained(out, safe_serialization=True)
    # transformers 5 writes tokenizer.json only; older ones read CLIP's vocab.json + merges.txt
    source = generated_tokenizer_dir(shapes.WORDS)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(source, name), os.path.join(out, "tokenizer", name))
    with open(os.path.join(out, "training.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def train(args) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    info = {"seed": args.seed, "scenes": args.scenes, "text_encoder": args.text_encoder,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads", "held_out": [list(p) for p in shapes.HELD_OUT],
            "completed": False}
    tokenizer, text_encoder, vae, unet = build(args.seed)
    print(f"parameters: unet {_count(unet):,}, vae {_count(vae):,}, text encoder {_count(text_encoder):,}",
          flush=True)
    scenes, pictures = draw_scenes(args.scenes, args.seed)
    print(f"drew {len(scenes)} scenes in {time.perf_counter() - started:.0f} s", flush=True)
    start_from = args.init_from or args.vae_from
    if start_from:  # an earlier run's VAE (and with --init-from its UNet and text encoder), scale included
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        vae = AutoencoderKL.from_pretrained(start_from, subfolder="vae", dtype=torch.float32,
                                            use_safetensors=True)
        info["vae"] = {"from": start_from}
        if args.init_from:
            unet = UNet2DConditionModel.from_pretrained(start_from, subfolder="unet", dtype=torch.float32,
                                                        use_safetensors=True)
            text_encoder = CLIPTextModel.from_pretrained(start_from, subfolder="text_encoder",
                                                         dtype=torch.float32, use_safetensors=True)
            with open(os.path.join(start_from, "training.json"), encoding="utf-8") as f:
                info["continues"] = json.load(f)
    else:
        info["vae"] = train_vae(vae, pictures, args.vae_steps, args.vae_batch, args.vae_lr, args.seed)
    vae.requires_grad_(False).eval()
    latents = encode_all(vae, pictures)
    if not start_from:
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    scale = float(vae.config.scaling_factor)
    latents = latents * scale
    with torch.no_grad():
        check = _to_unit(pictures[:256])
        error = float((vae.decode(latents[:256] / scale).sample - check).abs().mean() * 127.5)
    info["vae"].update(scaling_factor=round(scale, 5), reconstruction_mean_abs_error_0_255=round(error, 3))
    print(f"vae: scaling factor {scale:.4f}, reconstruction error {error:.2f}/255 per channel", flush=True)

    def save(step):
        out = os.path.join(args.checkpoints, f"step-{step}") if args.checkpoints else args.out
        save_pipeline(out, tokenizer, text_encoder, vae, unet, {**info, "unet": {"saved_at_step": step}})

    if args.checkpoints:  # step-0: the trained VAE with an untrained UNet, for --vae-from
        save(0)

    info["unet"] = train_unet(unet, text_encoder, tokenizer, scenes, latents, args.unet_steps, args.unet_batch,
                              args.unet_lr, args.seed, train_text_encoder=args.text_encoder == "trained",
                              save=save, save_every=args.save_every, stop_at=args.stop_at)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    info.update(completed=True, total_seconds=round(time.perf_counter() - started, 1),
                cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1))
    save_pipeline(args.out, tokenizer, text_encoder, vae, unet, info)
    print(f"saved to {args.out} after {info['total_seconds']:.0f} s", flush=True)
    return info


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m toykit", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the toy model (see the module docstring)")
    t.add_argument("--out", default=TOY_DIR, help="pipeline folder to write (default: the committed model's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--scenes", type=int, default=16000, help="pictures drawn for training")
    t.add_argument("--vae-steps", type=int, default=1200)
    t.add_argument("--vae-batch", type=int, default=32)
    t.add_argument("--vae-lr", type=float, default=1e-3)
    t.add_argument("--vae-from", help="reuse the VAE of this pipeline folder instead of training one")
    t.add_argument("--init-from", help="continue from this pipeline folder: its VAE as is, its UNet and text "
                                       "encoder trained further (a new warm-up and decay over --unet-steps)")
    t.add_argument("--unet-steps", type=int, default=2000)
    t.add_argument("--unet-batch", type=int, default=64)
    t.add_argument("--unet-lr", type=float, default=1e-3)
    t.add_argument("--text-encoder", choices=("trained", "frozen"), default="trained")
    t.add_argument("--save-every", type=int, default=500, help="save the EMA weights every N UNet steps")
    t.add_argument("--checkpoints", help="folder for those saves (step-N/); default: --out itself")
    t.add_argument("--stop-at", type=int, help="stop after N UNet steps, keeping the --unet-steps schedule")
    t.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared machine, more threads mostly wait for each other)")
    e = sub.add_parser("eval", help="score a model with the judge on held-out shape/colour pairs")
    e.add_argument("--model", default=TOY_DIR)
    e.add_argument("--seeds", type=int, default=8, help="renders per held-out pair")
    e.add_argument("--trained", type=int, default=0, help="also score this many random trained-kind prompts")
    args = p.parse_args(argv)
    if args.command == "train":
        train(args)
    else:
        from toykit import judge

        report = {"held_out": judge.score_model(args.model, judge.held_out_prompts(range(args.seeds)))}
        if args.trained:
            report["trained"] = judge.score_model(args.model, judge.trained_prompts(args.trained))
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
