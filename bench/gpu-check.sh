#!/usr/bin/env bash
# The GPU check still owed to bench/RESULTS.md, as one call of the device tool (/work/.library/device):
# the product's default morph (sd15-random, 512², fp16, DPM-Solver++ 25 steps, 24 frames) per-frame vs
# engine vs engine with the compiled UNet, in one run. Expect about 5 minutes on an H100 (two compiles of
# a minute or two each, then 2 repeats); use timeout_s=600.
#
# Prepare once, on the machine without a GPU (the device image has torch and transformers, not diffusers):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
# Run: device run, carry [".whl"], command "bash bench/gpu-check.sh"; the log comes back as $OUT/*.txt.
set -uo pipefail
out=${OUT:-bench-out}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -m bench --preset default24 --device cuda --compile --repeat 2 2>&1 | tee "$out/default24-compile.txt"
