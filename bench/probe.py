"""Which speed-ups pay on this device: UNet and VAE variants timed against the eager engine in one run.

``python -m bench.probe`` loads one model (default ``sd15-random`` on CUDA, fp16) and, in one process:

1. times one UNet forward at the default render's batch (24 frames x 2 with CFG) for each PyTorch attention
   backend (the default choice, flash, cuDNN, memory-efficient), median of synchronised timings;
2. times the VAE decode of 24 frames (the engine's slices, other slice sizes, channels_last);
3. renders the default morph (24 frames, DPM-Solver++ 25 steps, 512², CFG 7.5) with the eager engine (the
   baseline of every ratio printed), then compiles the UNet as ``Morpher(compile=True)`` does and renders it
   again, uniform and perceptual, counting graphs compiled during the timed renders (should be 0);
4. if the budget allows, the design anchors' setting (50 frames, PNDM 50 steps), eager vs compiled.

``--levers`` runs step 5 instead of steps 1, 2 and 4: what is left beyond the engine's compile, each variant
timed against the eager engine of the same run and its frames compared with the eager frames: a static-shape
compile (and where its UNet time goes, from the profiler), CUDA graphs on it (``mode="reduce-overhead"``),
CUDA graphs on the engine's own compile (``Morpher(compile="reduce-overhead")``), a compiled VAE decode on the
fastest variant, and the anchors' setting with the engine's compile + CUDA graphs (static graphs would compile
again for its batch sizes). It also measures the card's fp16 matrix-product rate and
the UNet's rate, from a FLOP count of one forward.

``--smooth`` runs step 6 only: the smooth path (:mod:`morph.anchoring`) against the plain one on the default
morph, with the ends' keys/values cached and with the ends in every batch, uniform and perceptual, with the
peak GPU memory of each (the other steps render the plain path).

Each step checks the time budget (``--budget-s``) first, so one device call of fixed length always ends with
the tables; results go to stdout and, as markdown, to ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import statistics
import sys
import time
import warnings

START = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - START


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="sd15-random")
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--budget-s", type=float, default=480, help="skip steps that would end after this (480)")
    p.add_argument("--skip-kernels", action="store_true", help="skip steps 1-2 (attention backends, VAE)")
    p.add_argument("--levers", action="store_true", help="step 5 instead of steps 1, 2 and 4 (see above)")
    p.add_argument("--smooth", action="store_true",
                   help="only step 6: the smooth path vs the plain one (ends cached vs in every batch)")
    p.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "probe.md"))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    import torch
    import torch._dynamo

    from morph import RenderRequest
    from morph.engine import Morpher
    from morph.render import TextEmbedding

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")

    m = Morpher(args.model, device=args.device)
    cuda = m.device.type == "cuda"
    say(f"# probe: {m.device_info()['device']}, torch {torch.__version__}, model {args.model}, "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    req = RenderRequest(["a photo of a dog", "a photo of a cat"], frames=args.frames, seed=7, steps=args.steps,
                        size=args.size, guidance=7.5, scheduler="dpm++2m", pacing="uniform", path="plain",
                        candidates=5).validate()
    side = args.size // m.pipe.vae_scale_factor
    samples = 2 * args.frames
    gen = torch.Generator("cpu").manual_seed(0)
    with torch.inference_mode():  # inference tensors, like a render's: a compiled UNet reuses the same graphs
        x = torch.randn(samples, m.pipe.unet.config.in_channels, side, side, generator=gen).to(m.device, m.dtype)
        emb = torch.randn(samples, 77, m.pipe.unet.config.cross_attention_dim, generator=gen).to(m.device, m.dtype)
        # the UNet's text (and, for SDXL, added) conditions, as a render's guided batch passes them
        kw = m.unet_kwargs(TextEmbedding(emb, m.zero_text(samples).pooled), args.size, 7.5)
        t = torch.tensor(500, device=m.device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed_ms(fn, reps=8, warm=2) -> float:
        """Median wall time of ``fn`` in ms (synchronised around each call)."""
        with torch.inference_mode():
            for _ in range(warm):
                fn()
            times = []
            for _ in range(reps):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    def graphs() -> int:
        return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])

    def render_s(morpher, r=req, reps=2, ctx=contextlib.nullcontext, result=None):
        """Best of ``reps`` renders of ``r`` by ``morpher``; graphs compiled during them. With ``result`` (a
        list), the last render's RenderResult is appended to it."""
        before = graphs()
        best = float("inf")
        with ctx():
            for _ in range(reps):
                sync()
                t0 = time.perf_counter()
                out = morpher.render(r)
                sync()
                best = min(best, time.perf_counter() - t0)
        if result is not None:
            result.append(out)
        return best, graphs() - before

    if args.smooth:
        smooth_path(args, m, req, say, render_s)
        return 0
    eager = m.pipe.unet
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"default": None, "flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    unet_ms: dict[str, float] = {}
    if args.skip_kernels or args.levers:
        unet_ms["default"] = timed_ms(lambda: eager(x, t, return_dict=False, **kw))
    else:
        say(f"\n## 1. UNet forward, {samples} samples ({args.frames} frames x 2), {args.size}px, t={elapsed():.0f}s\n")
        say("| attention backend | ms | vs default |")
        say("|---|---|---|")
        for name, backend in backends.items():
            ctx = sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()
            try:
                with ctx:
                    unet_ms[name] = timed_ms(lambda: eager(x, t, return_dict=False, **kw))
            except Exception as err:  # noqa: BLE001 — a backend that does not run here is a result too
                say(f"| {name} | failed: {type(err).__name__}: {str(err).splitlines()[0][:120]} | |")
                continue
            say(f"| {name} | {unet_ms[name]:.1f} | {unet_ms['default'] / unet_ms[name]:.2f}x |")

        say(f"\n## 2. VAE decode of {args.frames} frames, t={elapsed():.0f}s\n")
        vae = m.pipe.vae
        lat = torch.randn(args.frames, 4, side, side, generator=gen).to(m.device, m.dtype)
        shipped = m.decode_slice(args.size)

        def decode(step):
            for i in range(0, lat.shape[0], step):
                vae.decode(lat[i:i + step] / vae.config.scaling_factor, return_dict=False)

        say("| variant | ms | vs engine's slices |")
        say("|---|---|---|")
        base_vae = timed_ms(lambda: decode(shipped), reps=4)
        say(f"| slices of {shipped} (engine) | {base_vae:.1f} | 1.00x |")
        for step in sorted({1, 4, 8, args.frames} - {shipped}):
            ms = timed_ms(functools.partial(decode, step), reps=4)
            say(f"| slices of {step} | {ms:.1f} | {base_vae / ms:.2f}x |")
        vae.to(memory_format=torch.channels_last)
        ms = timed_ms(lambda: decode(shipped), reps=4)
        vae.to(memory_format=torch.contiguous_format)
        say(f"| slices of {shipped}, channels_last | {ms:.1f} | {base_vae / ms:.2f}x |")
        with torch.inference_mode():
            decoded = vae.decode(lat[:shipped] / vae.config.scaling_factor, return_dict=False)[0]
        ms = timed_ms(lambda: m.pipe.image_processor.postprocess(decoded, output_type="pil"), reps=4)
        say(f"| to PIL, {shipped} images (CPU side) | {ms:.1f} | |")

    say(f"\n## 3. Whole render: {args.frames} frames, {req.steps} steps {req.scheduler}, {args.size}px, "
        f"best of 2, t={elapsed():.0f}s\n")
    say("| engine UNet | compile s | UNet ms at " + str(samples) + " | render s | s/frame | vs eager | "
        "graphs compiled while rendering |")
    say("|---|---|---|---|---|---|---|")
    eager_frames: list = []
    eager_s, _ = render_s(m, result=eager_frames)
    say(f"| eager (as shipped) | | {unet_ms['default']:.1f} | {eager_s:.2f} | {eager_s / args.frames:.3f} | "
        f"1.00x | |")
    fastest = min(unet_ms, key=lambda name: unet_ms[name])
    backend = backends[fastest]  # None: PyTorch's own choice ("default")
    if backend is not None and unet_ms[fastest] < 0.97 * unet_ms["default"]:
        s, _ = render_s(m, ctx=lambda: sdpa_kernel(backend))
        say(f"| eager, {fastest} attention | | {unet_ms[fastest]:.1f} | {s:.2f} | {s / args.frames:.3f} | "
            f"{eager_s / s:.2f}x | |")

    if args.levers:
        levers(args, m, req, x, kw, t, eager_s, eager_frames[0], unet_ms["default"], say, timed_ms, render_s)
        say(f"\nprobe done in {elapsed():.0f} s")
        return 0

    compiled = None
    if elapsed() > args.budget_s - 220:  # SD 1.5 on an H100: 160 s to compile, 30 s of renders
        say("| engine's torch.compile (MORPH_COMPILE=1) | skipped: time budget | | | | | |")
    else:
        c0 = time.perf_counter()
        fast = Morpher(args.model, device=args.device, compile=True)  # same cached pipeline, compiled UNet
        compile_s = time.perf_counter() - c0
        if fast.compile_error:
            say(f"| engine's torch.compile (MORPH_COMPILE=1) | failed: {fast.compile_error} | | | | | |")
        else:
            ms = timed_ms(lambda: fast.unet(x, t, return_dict=False, **kw))
            s, new = render_s(fast)
            say(f"| engine's torch.compile (MORPH_COMPILE=1) | {compile_s:.0f} | {ms:.1f} | {s:.2f} | "
                f"{s / args.frames:.3f} | {eager_s / s:.2f}x | {new} |")
            compiled = fast
            p_eager, _ = render_s(m, dataclasses.replace(req, pacing="perceptual"))
            p_comp, new = render_s(fast, dataclasses.replace(req, pacing="perceptual"))
            say(f"| eager, perceptual pacing | | | {p_eager:.2f} | {p_eager / args.frames:.3f} | "
                f"{eager_s / p_eager:.2f}x | |")
            say(f"| engine's torch.compile, perceptual pacing | | | {p_comp:.2f} | {p_comp / args.frames:.3f} | "
                f"{eager_s / p_comp:.2f}x | {new} |")

    if compiled is not None and elapsed() < args.budget_s - 60:
        anchors = dataclasses.replace(req, frames=50, steps=50, scheduler="pndm")
        say(f"\n## 4. Design anchors' setting: 50 frames, PNDM 50 steps, {args.size}px, one render each, "
            f"t={elapsed():.0f}s\n")
        say("| engine UNet | render s | s/frame | vs eager | graphs compiled while rendering |")
        say("|---|---|---|---|---|")
        s_e, _ = render_s(m, anchors, reps=1)
        say(f"| eager | {s_e:.2f} | {s_e / 50:.3f} | 1.00x | |")
        s_c, new = render_s(compiled, anchors, reps=1)
        say(f"| engine's torch.compile | {s_c:.2f} | {s_c / 50:.3f} | {s_e / s_c:.2f}x | {new} |")
    say(f"\nprobe done in {elapsed():.0f} s")
    return 0


def smooth_path(args, m, req, say, render_s) -> None:
    """Step 6: the default morph on the plain path (uniform: the baseline of every ratio) and on the smooth
    path, with the ends' attention inputs cached (morph.anchoring.cache_bytes: 2.3 GB for SD 1.5 at 512², fp16,
    CFG) and with the ends riding along in every batch, uniform and perceptual; peak GPU memory of each."""
    import torch

    from morph.anchoring import cache_bytes

    cuda = m.device.type == "cuda"
    side = args.size // m.pipe.vae_scale_factor
    say(f"\n## 6. smooth path vs plain, {args.frames} frames, {args.steps} steps, {args.size}px, "
        f"t={elapsed():.0f}s\n")
    say(f"ends' attention inputs, cached: {cache_bytes(m.pipe.unet, side, args.steps, 2, 2) / 2**20:.0f} MiB; "
        f"frames per batch {m.frames_per_batch(args.size)}\n")
    say("| path | pacing | ends' keys/values | s (best of 2) | vs plain uniform | peak GiB |")
    say("|---|---|---|---|---|---|")
    base = None
    saved = m.anchor_mode
    try:
        for path, pacing, mode in (("plain", "uniform", "auto"), ("smooth", "uniform", "cache"),
                                   ("smooth", "uniform", "batch"), ("plain", "perceptual", "auto"),
                                   ("smooth", "perceptual", "cache"), ("smooth", "perceptual", "batch")):
            if elapsed() > args.budget_s:
                say(f"| {path} | {pacing} | {mode} | skipped: budget | | |")
                continue
            m.anchor_mode = mode
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            seconds, _ = render_s(m, dataclasses.replace(req, path=path, pacing=pacing))
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            base = base or seconds
            say(f"| {path} | {pacing} | {mode if path == 'smooth' else '–'} | {seconds:.2f} | "
                f"{seconds / base:.2f}x | {peak:.1f} |")
    finally:  # whatever happens, the Morpher's own way back (later steps render with it)
        m.anchor_mode = saved


def levers(args, m, req, x, kw, t, eager_s, eager_result, eager_ms, say, timed_ms, render_s) -> None:
    """Step 5 (``--levers``): see the module docstring. Every step checks the budget with its own estimate."""
    import torch
    import torch._dynamo
    from torch.utils.flop_counter import FlopCounterMode

    from bench.run import _max_pixel_diff
    from morph.engine import Morpher

    torch._dynamo.config.cache_size_limit = 64  # several compiled wrappers of the same UNet in one process
    samples = x.shape[0]
    unet = m.pipe.unet
    budget = args.budget_s

    def fits(name: str, seconds: float) -> bool:
        if elapsed() + seconds <= budget:
            return True
        say(f"| {name} | skipped: time budget | | | | | |")
        return False

    def max_diff(result) -> int:
        return max(_max_pixel_diff(a, b) for a, b in zip(result.frames, eager_result.frames, strict=True))

    def skips() -> int:
        return int(torch._dynamo.utils.counters["inductor"].get("cudagraph_skips", 0))

    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            unet(x[:1], t, return_dict=False, **m.unet_kwargs(m.zero_text(1), args.size, 7.5))
    flop = counter.get_total_flops() * samples  # per forward at the render's batch
    big = torch.randn(8192, 8192, device=m.device, dtype=m.dtype)
    mm_ms = timed_ms(functools.partial(torch.matmul, big, big), reps=20)
    del big  # 8192² numbers: not kept for the rest of the probe

    def rate(ms: float) -> str:
        return f"{flop / ms / 1e9:.3g}"

    say(f"\n## 5. Levers beyond the engine's compile, t={elapsed():.0f}s\n")
    dtype = str(m.dtype).removeprefix("torch.")
    say(f"{dtype} matrix product 8192x8192x8192: {mm_ms:.2f} ms = {2 * 8192 ** 3 / mm_ms / 1e9:.3g} TFLOP/s. "
        f"UNet forward: {flop / samples / 1e12:.3g} TFLOP per sample (FlopCounterMode), "
        f"{flop / 1e12:.3g} TFLOP at {samples} samples.\n")
    say(f"| variant | compile s | UNet ms at {samples} | UNet TFLOP/s | render s | vs eager | "
        f"max pixel diff vs eager / graphs compiled while rendering / CUDA-graph skips |")
    say("|---|---|---|---|---|---|---|")
    say(f"| eager engine (as shipped) | | {eager_ms:.1f} | {rate(eager_ms)} | {eager_s:.2f} | 1.00x | |")
    best = {"s": eager_s, "morpher": m, "name": "eager"}

    def measure(name: str, morpher, compile_s: float, perceptual: bool = False) -> None:
        before = skips()
        ms = timed_ms(lambda: morpher.unet(x, t, return_dict=False, **kw))
        result: list = []
        s, new = render_s(morpher, result=result)
        say(f"| {name} | {compile_s:.0f} | {ms:.1f} | {rate(ms)} | {s:.2f} | {eager_s / s:.2f}x | "
            f"{max_diff(result[0])} / {new} / {skips() - before} |")
        if perceptual:
            s_p, new = render_s(morpher, dataclasses.replace(req, pacing="perceptual"))
            say(f"| {name}, perceptual pacing | | | | {s_p:.2f} | {eager_s / s_p:.2f}x | - / {new} / |")
        if s < best["s"]:
            best.update(s=s, morpher=morpher, name=name)

    def static(mode):
        """A Morpher (same cached pipeline) whose UNet is compiled for this batch shape only."""
        c0 = time.perf_counter()
        v = Morpher(args.model, device=args.device)
        v.unet = torch.compile(unet, dynamic=False, mode=mode)
        with torch.inference_mode():
            for _ in range(3):  # compile, then (CUDA graphs) warm up and record
                v.unet(x, t, return_dict=False, **kw)
        if m.device.type == "cuda":
            torch.cuda.synchronize()
        return v, time.perf_counter() - c0

    if fits("static shapes (batch fixed), default mode", 100):
        v, c = static(None)
        measure("static shapes (batch fixed), default mode", v, c)
        prof = os.path.join(os.path.dirname(os.path.abspath(args.out)), "profile.txt")
        activities = [torch.profiler.ProfilerActivity.CPU]
        if m.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.inference_mode(), torch.profiler.profile(activities=activities) as p:
            for _ in range(3):
                v.unet(x, t, return_dict=False, **kw)
        sort = "self_cuda_time_total" if m.device.type == "cuda" else "self_cpu_time_total"
        with open(prof, "w") as f:
            f.write(p.key_averages().table(sort_by=sort, row_limit=60, max_name_column_width=90))
        say(f"| (profile of 3 forwards of it: {os.path.basename(prof)}) | | | | | | |")
    if fits("static shapes + CUDA graphs (reduce-overhead)", 100):
        v, c = static("reduce-overhead")
        measure("static shapes + CUDA graphs (reduce-overhead)", v, c)
    graphed = None  # the engine's own compile with CUDA graphs: any batch size without compiling again
    if fits("engine compile + CUDA graphs (compile='reduce-overhead')", 230):
        c0 = time.perf_counter()
        v = Morpher(args.model, device=args.device, compile="reduce-overhead")
        if v.compile_error:
            say(f"| engine compile + CUDA graphs | failed: {v.compile_error} | | | | | |")
        else:
            graphed = v
            measure("engine compile + CUDA graphs (compile='reduce-overhead')", v, time.perf_counter() - c0,
                    perceptual=True)
    vae = m.pipe.vae
    if best["morpher"] is not m and fits(f"{best['name']} + compiled VAE decode", 90):
        c0 = time.perf_counter()
        plain = vae.decode
        vae.decode = torch.compile(plain)  # instance attribute over the method; removed below
        try:
            with torch.inference_mode():
                for n in sorted({m.decode_slice(args.size), args.frames % m.decode_slice(args.size) or 1}):
                    z = torch.randn(n, 4, *x.shape[2:], device=m.device, dtype=m.dtype)
                    torch._dynamo.maybe_mark_dynamic(z, 0)
                    vae.decode(z, return_dict=False)
            measure(f"{best['name']} + compiled VAE decode", best["morpher"], time.perf_counter() - c0)
        finally:
            del vae.decode
    if graphed is not None and fits("anchors' setting", 60):  # other batch sizes: static graphs would recompile
        anchors = dataclasses.replace(req, frames=50, steps=50, scheduler="pndm")
        s_e, _ = render_s(m, anchors, reps=1)
        s_g, new = render_s(graphed, anchors, reps=1)
        say(f"\nAnchors' setting (50 frames, PNDM 50 steps, one render each): eager {s_e:.2f} s "
            f"({s_e / 50:.3f} s/frame), engine compile + CUDA graphs {s_g:.2f} s ({s_g / 50:.3f} s/frame, "
            f"{s_e / s_g:.2f}x, {new} graphs compiled while rendering).")


if __name__ == "__main__":
    sys.exit(main())
