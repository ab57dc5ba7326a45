"""`morph render "a dog" "a cat" -o dog2cat.gif`: the engine from the command line.

Also two pictures (`morph render --image-a me.png --image-b cat.jpg`, or a picture and a prompt:
`morph render --image-a me.png "a cat"`), a chain (`morph render "a dog" "a cat" "a bird" --loop`), an MP4
(`-o dog2cat.mp4`, or `--format both`) and a refine of part of an earlier render (`--range 0.25 0.3`, with
that render's prompts, seed and settings).

Everything the user typed is checked before the model is loaded, so a typo fails at once (the arguments and
those checks: :mod:`morph.cli_args`). This module runs the command: loads the model, renders with a progress
bar (Ctrl-C cancels), writes the files and reports. Output files are written under temporary names and
renamed into place only when the whole render succeeded, so a failed, interrupted or cancelled run leaves no
partial file behind.

Exit codes: 0 done, 2 bad input (one-line message on stderr), 130 cancelled (Ctrl-C), 1 unexpected error.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from morph.cli_args import build_parser, check_inputs
from morph.request import Cancelled, MorphError, Progress, RenderRequest

EXIT_OK, EXIT_USAGE, EXIT_CANCELLED = 0, 2, 130  # every error is reported as a usage mistake (2)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except MorphError as exc:
        return _fail(exc)
    if args.command != "render":
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _render(args)
    except MorphError as exc:
        return _fail(exc)
    except (Cancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def _fail(exc: Exception) -> int:
    print(f"morph: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


class ProgressBar:
    """A one-line text bar on stderr, redrawn with \\r at most every 0.1 s."""

    def __init__(self, stream=None, width: int = 30, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = enabled
        self.start = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._width = 0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and p.fraction < 1.0):
            return
        self._last = now
        filled = int(round(self.width * min(max(p.fraction, 0.0), 1.0)))
        bar = "#" * filled + "-" * (self.width - filled)
        line = (f"{p.stage:<7} [{bar}] {p.fraction * 100:3.0f}%  frames {p.frames_done}/{p.frames_total}  "
                f"step {p.step}/{p.steps}  {now - self.start:5.1f}s")
        self.stream.write("\r" + line.ljust(self._width))  # pad: a shorter line must cover a longer one
        self._width = len(line)
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _render(args) -> int:
    request, paths = check_inputs(args)
    from morph.animation import encode_animation  # light (PIL; PyAV once encoding)
    from morph.output import contact_sheet, save_frames

    bar = ProgressBar(enabled=not args.quiet)
    if not args.quiet:
        print(f"loading model '{args.model}' …", file=sys.stderr)
    _quiet_libraries()
    from morph.engine import Morpher  # torch + diffusers: only once the input is known to be good

    morpher = Morpher(args.model, device=args.device, loras=args.loras, profile=args.profile)
    try:
        result = _run_cancellable(morpher, request, bar)
    finally:
        bar.close()

    budget = int(args.budget_mb * 1024 * 1024)
    animation = encode_animation(result.frames, args.format, budget_bytes=budget, duration_ms=args.duration_ms,
                                 boomerang=args.boomerang)
    staged: list[tuple[Path, Path]] = []  # (temporary, final)
    frames_tmp = None
    try:
        for kind, encoded in (("mp4", animation.mp4), ("gif", animation.gif)):
            if encoded is not None:
                staged.append((_stage_bytes(paths[kind], encoded.data), paths[kind]))
        if "sheet" in paths:
            sheet = contact_sheet([result.frames[i] for i in result.candidates])
            staged.append((_stage(paths["sheet"], lambda f: sheet.save(f, format="PNG")), paths["sheet"]))
        if "frames_dir" in paths:
            final_dir = paths["frames_dir"]
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            frames_tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", dir=final_dir.parent))
            written = save_frames(result.frames, frames_tmp)
            staged += [(p, final_dir / p.name) for p in written]
        # Everything rendered and written: move into place.
        for tmp, final in staged:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        staged = []
        if "frames_dir" in paths:  # frames left over from an earlier, longer render would mix in
            keep = {p.name for p in written}
            for old in paths["frames_dir"].glob("frame_[0-9]*.png"):
                if old.name not in keep:
                    old.unlink(missing_ok=True)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if frames_tmp is not None:
            shutil.rmtree(frames_tmp, ignore_errors=True)

    _report(args, paths, result, animation)
    return EXIT_OK


def _quiet_libraries() -> None:
    """diffusers/transformers log load-time notices (optional torchvision, dtype casts) that mean nothing to a
    CLI user; keep errors only."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import diffusers
        import transformers

        diffusers.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001 — cosmetic only
        pass


def _run_cancellable(morpher, request: RenderRequest, bar: ProgressBar):
    """Render on a worker thread so Ctrl-C in the main thread can set the cancel flag; the engine then
    stops within one denoising step and raises Cancelled.

    The main thread waits on an Event, not ``Thread.join``: in CPython < 3.13 a KeyboardInterrupt that lands
    inside ``join`` marks the still-running thread as finished, and the interpreter then exits under it
    (C++ "terminate called without an active exception", exit 134).
    """
    cancel = threading.Event()
    done = threading.Event()
    box: dict = {}

    def work():
        try:
            box["result"] = morpher.render(request, progress=bar, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="morph-render", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        cancel.set()
        while not done.is_set():  # wait for the engine to stop (within one step); further Ctrl-C ignored
            try:
                done.wait(0.1)
            except KeyboardInterrupt:
                pass
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def _stage(final: Path, write) -> Path:
    """Write to a hidden temporary file next to ``final`` (renamed into place later by the caller)."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stage_bytes(final: Path, data: bytes) -> Path:
    return _stage(final, lambda f: f.write(data))


def _report(args, paths: dict, result, animation) -> None:
    out = sys.stdout
    ts = result.ts
    if animation.mp4 is not None:
        mp4 = animation.mp4
        quality = f"{mp4.bitrate / 1000:,.0f} kbit/s" if mp4.bitrate else "constant quality"
        print(f"wrote {paths['mp4']}: {len(mp4.data) / 1024:,.1f} kB, {mp4.frame_count} frames, "
              f"{mp4.width}x{mp4.height}, H.264 {quality}, {mp4.duration_ms} ms/frame "
              f"(render {result.seconds:.1f} s)", file=out)
        if mp4.reductions:
            print(f"to fit {args.budget_mb:g} MiB the MP4 was reduced: {', '.join(map(str, mp4.reductions))}", file=out)
    for note in animation.notes:
        print(f"warning: {note}", file=out)
    gif = animation.gif
    if gif is not None:
        print(f"wrote {paths['gif']}: {len(gif.data) / 1024:,.1f} kB, {gif.frame_count} frames, {gif.width}x"
              f"{gif.height}, {gif.colors} colours, {gif.duration_ms} ms/frame (render {result.seconds:.1f} s)",
              file=out)
        if gif.reductions:
            print(f"to fit {args.budget_mb:g} MiB the GIF was reduced: {', '.join(map(str, gif.reductions))}", file=out)
    req = result.request
    print(f"sampling: {req.steps} steps {req.scheduler}, guidance {req.guidance:g}", file=out)
    if req.segments > 1 or req.t_start is not None:
        lo, hi = req.path_range()
        prompts = " → ".join(req.prompts + req.prompts[:1] * req.loop)
        print(f"path: {prompts} (prompt k at k); frames over {lo:g}..{hi:g}", file=out)
    for name, db in zip(("first", "last"), result.reconstruction, strict=False):
        if db is not None:
            print(f"reconstruction: the {name} frame matches its picture at {db:.1f} dB PSNR", file=out)
    print(f"midpoint: frame {result.midpoint} (t={ts[result.midpoint]:.3f})", file=out)
    for seg in result.segments:
        prefix = "candidates" if len(result.segments) == 1 else f"segment {seg.index + 1} candidates"
        first = result.candidates.index(seg.candidates[0])
        print(f"{prefix}: " + ", ".join(f"{first + i + 1}=frame {f} (t={ts[f]:.3f})"
                                        for i, f in enumerate(seg.candidates)), file=out)
    print(f"smoothness ({args.pacing} pacing): max/mean {result.max_over_mean:.2f}, "
          f"1-Gini {result.one_minus_gini:.3f}", file=out)
    print("ts: " + " ".join(f"{t:.6f}" for t in ts), file=out)  # precise enough to refine between two
    if "sheet" in paths:
        print(f"contact sheet: {args.sheet}", file=out)
    if "frames_dir" in paths:
        print(f"frames: {len(result.frames)} PNGs in {args.frames_dir}", file=out)
    for w in result.warnings:
        print(f"warning: {w}", file=out)


if __name__ == "__main__":
    raise SystemExit(main())
