#!/usr/bin/env bash
# The GPU measurements owed to bench/RESULTS.md, as one call of the device tool (/work/.library/device):
# bench/probe.py on sd15-random (512², fp16): UNet attention backends, VAE decode slices, the default 24-frame
# morph with the eager engine vs the engine's compiled UNet (MORPH_COMPILE=1), then the design anchors'
# setting. It watches its own budget (BUDGET_S, default 460 s) and always ends with its tables. Arguments go
# to the probe: `--skip-kernels` (compiled engine and anchors only) ran in 228 s on an H100, `--levers`
# (static shapes, CUDA graphs, compiled VAE, profile) in 475 s; the kernel steps have not yet run in the same
# call as the compile. `--smooth` runs only the smooth path vs the plain one (ends' keys/values cached vs in every
# batch, uniform and perceptual, peak memory; not yet run on a GPU). Use timeout_s=600.
#
# Prepare once, on the machine without a GPU (the device image has torch and transformers, not diffusers):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
# Run: device run, carry [".whl"], command "bash bench/gpu-check.sh [--levers]"; the tables come back as
# $OUT/probe.md (and, with --levers, the profile as probe's profile.txt beside it).
set -uo pipefail
out=${OUT:-bench-out}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -m bench.probe --budget-s "${BUDGET_S:-460}" --out "$out/probe.md" "$@" 2>&1 | tee "$out/probe-log.txt"
