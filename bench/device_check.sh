#!/usr/bin/env bash
# Issue 6's GPU checks as one device call: the acceptance benchmark for the chosen modes, then the
# CUDA tests. Run from the repository root on the device machine; results go to $OUT.
#
#   bash bench/device_check.sh [MODES] [SECONDS] [extra gpu_txt2img.py flags...]
#   bash bench/device_check.sh graphs,aot 570          # the default mode and the AOT mode (device run timeout_s 590)
#   PYTHON=.venv/bin/python bash bench/device_check.sh aot 300 --tiny --compile-mode off --repeats 1 --steps 4   # CPU try
#
# diffusers is not on the device image: fetch its wheels into .whl here first
# (`bash bench/device_wheels.sh`) and name .whl in the call's carry.
set -u
python=${PYTHON:-python3}  # PYTHON=.venv/bin/python for a try on this machine
modes=${1:-graphs,aot}
seconds=${2:-570}
shift $(( $# < 2 ? $# : 2 ))
out=${OUT:-/tmp/latentgraph_device}
mkdir -p "$out"
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2> /dev/null || echo "no nvidia-smi"
    "$python" -c "import sys, torch, diffusers, transformers; print(sys.version.split()[0], torch.__version__, diffusers.__version__, transformers.__version__)"
} > "$out/versions.txt" 2>&1
# The CUDA tests take about a minute (the AOT one compiles a tiny model); the benchmark the rest.
tests_s=120
bench_s=$(( seconds - tests_s > 60 ? seconds - tests_s : 60 ))
timeout "$bench_s" "$python" bench/gpu_txt2img.py --modes "$modes" --skip-precision \
    --partial "$out/partial.json" "$@" > "$out/bench.out" 2> "$out/bench.err"
echo "bench exit $?" >> "$out/versions.txt"
timeout "$tests_s" "$python" -m pytest -q -p no:warnings -p no:cacheprovider tests/test_cuda_paths.py \
    "tests/test_aot.py::test_aot_mode_on_cuda_matches_eager_and_replays_the_unet_graph" \
    > "$out/tests.out" 2>&1
echo "tests exit $?" >> "$out/versions.txt"
tail -n 12 "$out/bench.out"
tail -n 3 "$out/tests.out"
cat "$out/versions.txt"
