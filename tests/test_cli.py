"""The `morph render` CLI end to end with the tiny model, and every bad input it must refuse cleanly."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from morph import cli, cli_args

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "tiny", "--steps", "2", "--device", "cpu", "-q"]  # tiny: 64 px unless --size


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    torch.set_num_threads(1)


def gif_frames(path):
    im = Image.open(path)
    frames = list(ImageSequence.Iterator(im))
    return im.info, len(frames), im.size


def run_main(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_render_writes_gif_sheet_and_frames(tmp_path, capsys):
    gif = tmp_path / "dog2cat.gif"
    sheet = tmp_path / "sheet.png"
    frames_dir = tmp_path / "frames"
    code, out, err = run_main(["render", "a dog", "a cat", "--frames", "6", "--seed", "7", "-o", str(gif),
                               "--sheet", str(sheet), "--frames-dir", str(frames_dir), "--candidates", "3",
                               *FAST], capsys)
    assert code == 0, err
    info, n, size = gif_frames(gif)
    assert n == 6 and info["loop"] == 0 and size == (64, 64)
    assert Image.open(sheet).size == (3 * 256 + 4 * 8, 256 + 2 * 8)
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"frame_{i:03d}.png" for i in range(6)]
    assert "midpoint: frame" in out and "candidates: 1=frame" in out
    assert "max/mean" in out and "1-Gini" in out and "ts: 0.000" in out and out.count("1.000") >= 1
    assert f"wrote {gif}" in out
    # No temporary files left next to the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dog2cat.gif", "frames", "sheet.png"]
    # A shorter render into the same folder replaces the frames instead of mixing with the old ones.
    (frames_dir / "notes.txt").write_text("mine")
    code, _, err = run_main(["render", "a dog", "a cat", "--frames", "3", "-o", str(gif),
                             "--frames-dir", str(frames_dir), *FAST], capsys)
    assert code == 0, err
    assert sorted(p.name for p in frames_dir.iterdir()) == ["frame_000.png", "frame_001.png", "frame_002.png",
                                                            "notes.txt"]


def test_path_option_picks_the_smooth_or_the_plain_path(tmp_path, capsys):
    """--path smooth (the default) and --path plain: the same ends, other pictures in between."""
    import numpy as np

    frames = {}
    for path in ("default", "smooth", "plain"):
        out_dir = tmp_path / path
        extra = [] if path == "default" else ["--path", path]
        code, _, err = run_main(["render", "a dog", "a cat", "--frames", "4", "--pacing", "uniform", "-o",
                                 str(tmp_path / f"{path}.gif"), "--frames-dir", str(out_dir), *extra, *FAST], capsys)
        assert code == 0, err
        frames[path] = [np.asarray(Image.open(out_dir / f"frame_{i:03d}.png")).astype(int) for i in range(4)]
    assert all(np.array_equal(a, b) for a, b in zip(frames["default"], frames["smooth"], strict=True))
    for i in (0, 3):
        assert np.abs(frames["smooth"][i] - frames["plain"][i]).max() <= 1
    assert np.abs(frames["smooth"][1] - frames["plain"][1]).mean() > 1


def test_boomerang_and_small_budget_report_reductions(tmp_path, capsys):
    gif = tmp_path / "b.gif"
    budget_mb = 0.05
    args = ["render", "a dog", "a cat", "--frames", "4", "--boomerang", "--pacing", "uniform", "--size", "128",
            "-o", str(gif), *FAST]
    code, out, err = run_main([*args, "--budget-mb", str(budget_mb)], capsys)
    assert code == 0, err
    assert gif.stat().st_size <= int(budget_mb * 1024 * 1024)
    assert "the GIF was reduced: size 128→" in out
    info, n, size = gif_frames(gif)
    assert info["loop"] == 0 and n == 6 and size[0] < 128  # 0 1 2 3 2 1
    assert (gif.stat().st_mode & 0o777) == 0o666 & ~_umask()  # not the 0600 of a temp file


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_impossible_budget_exits_2_without_file(tmp_path, capsys):
    gif = tmp_path / "x.gif"
    code, out, err = run_main(["render", "a dog", "a cat", "--frames", "3", "--budget-mb", "0.001",
                               "--sheet", str(tmp_path / "s.png"), "-o", str(gif), *FAST], capsys)
    assert code == 2
    assert err.startswith("morph: error: the GIF cannot fit in") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_looping_chain_as_mp4_and_gif(tmp_path, capsys):
    from morph.video import decode_mp4

    code, out, err = run_main(["render", "a dog", "a cat", "a bird", "--loop", "--frames", "6", "--format", "both",
                               "--candidates", "1", "-o", str(tmp_path / "chain"), *FAST], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.gif", "chain.mp4"]
    assert len(decode_mp4((tmp_path / "chain.mp4").read_bytes())) == 6 and gif_frames(tmp_path / "chain.gif")[1] == 6
    assert "H.264 constant quality" in out and "path: a dog → a cat → a bird → a dog" in out
    assert [line.split(":")[0] for line in out.splitlines() if "candidates:" in line] == [
        "segment 1 candidates", "segment 2 candidates", "segment 3 candidates"]
    ts = [float(x) for x in next(x for x in out.splitlines() if x.startswith("ts: ")).split()[1:]]
    assert len(ts) == 6 and ts[0] == 0 and {1.0, 2.0} <= set(ts) and max(ts) < 3


def test_refine_a_range_into_an_mp4(tmp_path, capsys):
    mp4 = tmp_path / "refine.mp4"
    code, out, err = run_main(["render", "a dog", "a cat", "--range", "0.25", "0.5", "--frames", "4",
                               "--boomerang", "-o", str(mp4), *FAST], capsys)
    assert code == 0, err
    assert "frames over 0.25..0.5" in out and "ts: 0.250000 " in out and out.split("ts: ")[1].split()[-1] == "0.500000"
    from morph.video import probe_mp4

    assert probe_mp4(mp4.read_bytes())["frames"] == 6 and list(tmp_path.iterdir()) == [mp4]


def test_without_pyav_the_mp4_becomes_a_gif_with_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    code, out, err = run_main(["render", "a dog", "a cat", "--frames", "3", "-o", str(tmp_path / "m.mp4"), *FAST],
                              capsys)
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["m.gif"] and gif_frames(tmp_path / "m.gif")[1] == 3
    assert "warning: No MP4 this time, here is a GIF instead: MP4 needs PyAV" in out


def test_all_render_options_and_long_prompt_warning(tmp_path, capsys):
    gif = tmp_path / "opts.gif"
    long_prompt = "a photo of a dog " + " ".join(["red"] * 80) + " zebra"
    code, out, err = run_main(["render", long_prompt, "a cat", "--frames", "5", "--seed", "3", "--seed-b", "9",
                               "--interpolation", "slerp", "--scheduler", "ddim", "--negative", "blurry",
                               "--guidance", "5", "--candidates", "2", "--duration-ms", "60", "-o", str(gif),
                               *FAST], capsys)
    assert code == 0, err
    info, n, _ = gif_frames(gif)
    assert n == 5 and info["duration"] == 60
    assert "candidates: 1=frame" in out and "2=frame" in out and "3=frame" not in out
    warning = next(line for line in out.splitlines() if line.startswith("warning:"))
    assert "77" in warning and "zebra" in warning  # names what was dropped


def test_sdxl_with_a_lora_and_a_few_step_profile(tmp_path, capsys, make_lora):
    style = make_lora("tiny-sdxl", tmp_path / "style.safetensors")
    gif = tmp_path / "xl.gif"
    code, out, err = run_main(["render", "a dog", "a cat", "--frames", "3", "--model", "tiny-sdxl",
                               "--profile", "turbo", "--lora", f"{style}:0.7", "--device", "cpu", "-q",
                               "-o", str(gif)], capsys)
    assert code == 0, err
    _, n, size = gif_frames(gif)
    assert n == 3 and size == (96, 96)  # tiny-sdxl's own size
    assert "sampling: 4 steps euler, guidance 0" in out


def test_model_that_cannot_be_loaded_exits_2_without_file(tmp_path, capsys):
    gif = tmp_path / "x.gif"
    code, out, err = run_main(["render", "a dog", "a cat", "--model", "nobody-here/no-such-model", "-o", str(gif),
                               "--device", "cpu", "-q"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Could not load the model 'nobody-here/no-such-model'" in lines[0], err
    assert "tiny" in lines[0] and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_on_stderr(tmp_path, capsys):
    gif = tmp_path / "p.gif"
    code, out, err = run_main(["render", "a dog", "a cat", "--frames", "3", "-o", str(gif),
                               *[a for a in FAST if a != "-q"]], capsys)
    assert code == 0
    assert "\r" in err and "frames 3/3" in err and "[" in err and "#" in err
    assert "\r" not in out


def test_progress_bar_format():
    from morph.request import Progress

    stream = io.StringIO()
    bar = cli.ProgressBar(stream=stream, width=10)
    bar(Progress(frames_done=2, frames_total=4, step=3, steps=5, fraction=0.5))
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\rdenoise [#####-----]  50%  frames 2/4  step 3/5") and text.endswith("\n")


BAD = [
    (["", "a cat"], "first prompt is empty"),
    (["   ", "a cat"], "first prompt is empty"),
    (["a dog", " \t "], "second prompt is empty"),
    (["a dog", "a cat", "--frames", "1"], "frames must be between 2 and 120"),
    (["a dog", "a cat", "--frames", "121"], "frames must be between 2 and 120"),
    (["a dog", "a cat", "--frames", "many"], "invalid int value"),
    (["a dog", "a cat", "--size", "100"], "multiple of 8"),
    (["a dog", "a cat", "--model", "no-such-model"], "unknown model"),
    (["a dog", "a cat", "--model", "./missing/folder"], "does not exist"),
    (["a dog", "a cat", "--scheduler", "warp"], "unknown scheduler"),
    (["a dog", "a cat", "--scheduler", "euler_a"], "adds fresh noise"),
    (["a dog", "a cat", "--pacing", "fast"], "pacing must be one of"),
    (["a dog", "a cat", "--path", "wobbly"], "path must be one of: smooth, plain"),
    (["a dog", "a cat", "--interpolation", "cubic"], "interpolation must be one of"),
    (["a dog", "a cat", "--budget-mb", "0"], "budget-mb must be positive"),
    (["a dog", "a cat", "--budget-mb", "inf"], "budget-mb must be positive"),
    (["a dog", "a cat", "--device", "tpu"], "unknown device"),
    (["a dog", "a cat", "--profile", "fast"], "--profile must be one of"),
    (["a dog", "a cat", "--lora", "styles/none.safetensors:0.5"], "no such file"),
    (["a dog", "a cat", "--steps", "25", "--profile", "turbo", "--model", "tiny"], "distilled for 1-8 steps"),
    (["a dog"], "give 2 to 4 prompts (got 1)"),
    (["a", "b", "c", "d", "e"], "give 2 to 4 prompts (got 5)"),
    (["a dog", "a cat", "a bird", "--frames", "3"], "needs at least 4 frames"),
    (["a dog", "a cat", "--range", "0.5", "0.2"], "must run forwards"),
    (["a dog", "a cat", "--range", "0.5"], "expected 2 arguments"),
    (["a dog", "a cat", "--format", "webm"], "invalid choice"),
    (["a dog", "a cat", "a bird", "--seed-b", "3"], "a second seed only works"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_exits_2_with_one_line_and_no_file(tmp_path, capsys, args, message):
    out_path = tmp_path / "out.gif"
    t0 = time.monotonic()
    code, out, err = run_main(["render", *args, "-o", str(out_path)], capsys)
    assert code == 2
    assert message in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("morph: error: ")
    assert "Traceback" not in err
    assert not out_path.exists() and list(tmp_path.iterdir()) == []
    assert time.monotonic() - t0 < 2.0, "bad input must be refused before loading a model"


def test_unwritable_outputs_are_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    cases = [
        (["-o", str(tmp_path / "nope" / "x.gif")], "does not exist"),
        (["-o", str(tmp_path)], "must end in .gif"),
        (["-o", str(tmp_path / "dir.gif")], "is a directory"),
        (["-o", str(tmp_path / "x.png")], "must end in .gif"),
        (["-o", str(tmp_path / "x.gif"), "--format", "mp4"], "must end in .mp4"),
        (["-o", str(tmp_path / "x.gif"), "--sheet", str(tmp_path / "s.jpg")], "must end in .png"),
        (["-o", str(tmp_path / "x.gif"), "--frames-dir", str(tmp_path / "file.txt")], "not a directory"),
    ]
    (tmp_path / "dir.gif").mkdir()
    (tmp_path / "file.txt").write_text("x")
    if os.geteuid() != 0:  # root can write anywhere
        locked.chmod(0o500)
        cases.append((["-o", str(locked / "x.gif")], "permission denied"))
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        for extra, message in cases:
            code, _, err = run_main(["render", "a dog", "a cat", *extra, *FAST], capsys)
            assert code == 2, extra
            assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(locked.iterdir()) == []


def test_builtin_model_names_match_the_engine():
    from morph import models

    assert set(cli_args.BUILTIN_MODELS) == set(models.BUILTIN_MODELS)


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


@pytest.mark.slow
def test_python_dash_m_morph_subprocess(tmp_path):
    gif = tmp_path / "sub.gif"
    proc = subprocess.run([sys.executable, "-m", "morph", "render", "a dog", "a cat", "--frames", "3",
                           "-o", str(gif), *FAST], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    _, n, _ = gif_frames(gif)
    assert n == 3
    bad = subprocess.run([sys.executable, "-m", "morph", "render", "a dog", "a cat", "--frames", "500",
                          "-o", str(tmp_path / "bad.gif")], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("morph: error: frames must be between")
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad.gif").exists()


@pytest.mark.slow
def test_ctrl_c_cancels_with_130_and_no_file(tmp_path):
    gif = tmp_path / "cancel.gif"
    args = [sys.executable, "-m", "morph", "render", "a dog", "a cat", "--frames", "120", "--steps", "150",
            "--model", "tiny", "--size", "64", "--device", "cpu", "-o", str(gif)]
    # Started as from a terminal, where Ctrl-C is live: a test run started in the background (no job control)
    # ignores SIGINT, and a child that inherits that ignores the Ctrl-C this test sends.
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Wait until the render is under way (the progress bar shows a denoising step), then press Ctrl-C.
    seen = ""
    deadline = time.monotonic() + 90
    while "denoise" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)
    assert "denoise" in seen, seen
    proc.send_signal(signal.SIGINT)
    pressed = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert time.monotonic() - pressed < 10, "the render must stop within a step or so"
    assert "cancelled" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bench_smoke(capsys):
    """`python -m bench` runs engine and per-frame baseline in one go and prints the comparison table."""
    from bench.run import main as bench_main

    assert bench_main(["--frames", "6", "--steps", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    # both built-in test models, one after the other, each against its own baseline
    assert "model tiny (standard profile)" in out and "model tiny-sdxl (standard profile)" in out
    assert out.count("same pictures?") == 2
    for row in ("| per-frame pipeline calls (the article's way) | 2 | 6 |", "| engine, uniform pacing | 8 | 2 |",
                "| engine, perceptual pacing |", "| uniform |", "| perceptual |", "ratio baseline/engine"):
        assert row in out, row
    # UNet calls (one step): perceptual pacing takes at most one batch more than uniform (4 + 2 frames).
    perceptual = next(x for x in out.splitlines() if x.startswith("| engine, perceptual pacing |"))
    assert int(perceptual.split("|")[3]) <= 3
    # The baseline renders the same pictures as the engine (same noise, embeddings, scheduler).
    line = next(x for x in out.splitlines() if x.startswith("same pictures?"))
    assert "frame 0 = 0," in line or "frame 0 = 1," in line
