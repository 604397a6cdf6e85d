#!/usr/bin/env bash
# Issue 32's GPU checks as one device call, in phases with their own time limits:
#   1. SD 1.5 in each of MODES against StableDiffusionPipeline (bench/gpu_txt2img.py);
#   2. SDXL against the stock SDXL pipelines, the base + refiner split included, and tiny SDXL and
#      SD 1.5 in fp32 on the GPU against the CPU (bench/gpu_sdxl.py);
#   3. the add-ons on SDXL: a LoRA switched or re-weighted, one ControlNet's cost per step
#      (bench/gpu_addons.py);
#   4. the CUDA tests.
# Run from the repository root on the device machine; results go to $OUT. Each bench writes its
# JSON after every phase of its own, so a time limit loses only the phase it cut. A summary of
# all three, with the issue's targets, is printed last.
#
#   bash bench/device_check.sh [MODES] [SECONDS] [extra flags...]
#   bash bench/device_check.sh graphs,aot 570     # default + AOT for both families (device call timeout_s 590)
#   PYTHON=.venv/bin/python bash bench/device_check.sh graphs 900 --tiny --compile-mode off --repeats 1 --steps 4
#                                                 # CPU try (tiny models; OMP_NUM_THREADS=1 on a shared machine)
#
# MODES (eager, graphs, compiled, regional, aot) go to gpu_txt2img.py and gpu_sdxl.py (SDXL_MODES
# overrides the latter's). The extra flags go to gpu_txt2img.py; of them --tiny, --repeats and
# --steps also go to gpu_sdxl.py and gpu_addons.py, --compile-mode to gpu_sdxl.py (note: --steps
# then sets SDXL's too, whose default is 30). SDXL_FLAGS and ADDON_FLAGS add flags of their own
# (e.g. SDXL_FLAGS=--no-split, ADDON_FLAGS="--skip controlnet").
# Time: SD 1.5 gets SD15_PCT (40) % of SECONDS, SDXL SDXL_PCT (30) % plus what SD 1.5 left
# unused, the add-ons what is left less TESTS_S (75) for the tests, which get the rest; a phase
# with under 20 s left is skipped. PHASES (sd15,sdxl,addons,tests) picks the phases to run; the
# time of those left out goes to the others. Exit status 124 in versions.txt: that phase hit its limit.
# At 570 s: 228 / 171 / 96 / 75 s. SD 1.5 graphs,aot took about 230 s on an H100 (2026-12-06,
# AOT cold 121 s); SDXL's random folders, stock, default and split need roughly 150 s by estimate,
# so its AOT (or compiled) mode, timed last, will most likely be cut: its numbers need a run of
# their own (e.g. `PHASES=sdxl SDXL_MODES=aot SDXL_FLAGS="--no-split --skip-precision"`).
# Out: versions.txt (card, driver, versions, each phase's exit status and seconds), bench.out,
# bench.err and partial.json (SD 1.5), sdxl.{out,err,json}, addons.{out,err,json}, tests.out.
#
# diffusers is not on the device image (peft, for the LoRA, is): fetch its wheels into .whl here
# first (`bash bench/device_wheels.sh`) and name .whl in the call's carry.
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

# The flags the SDXL and add-on benches share with gpu_txt2img.py.
sdxl_flags=() addon_flags=()
args=("$@")
for (( i = 0; i < ${#args[@]}; i++ )); do
    case "${args[i]}" in
        --tiny|--repeats=*|--steps=*) sdxl_flags+=("${args[i]}"); addon_flags+=("${args[i]}") ;;
        --repeats|--steps) sdxl_flags+=("${args[i]}" "${args[i + 1]:-}"); addon_flags+=("${args[i]}" "${args[i + 1]:-}")
                           i=$(( i + 1 )) ;;
        --compile-mode=*) sdxl_flags+=("${args[i]}") ;;
        --compile-mode) sdxl_flags+=("${args[i]}" "${args[i + 1]:-}"); i=$(( i + 1 )) ;;
    esac
done
# shellcheck disable=SC2206  # word splitting wanted: these hold flags
sdxl_flags+=(${SDXL_FLAGS:-}) addon_flags+=(${ADDON_FLAGS:-})

tests_s=${TESTS_S:-75}
sd15_s=$(( seconds * ${SD15_PCT:-40} / 100 ))
sdxl_share=$(( seconds * ${SDXL_PCT:-30} / 100 ))
addons_share=$(( seconds - sd15_s - sdxl_share - tests_s ))
declare -A share=([sd15]=$sd15_s [sdxl]=$sdxl_share [addons]=$(( addons_share > 0 ? addons_share : 0 ))
                  [tests]=$tests_s)
phases=",${PHASES:-sd15,sdxl,addons,tests},"

# run NAME COMMAND...: COMMAND with what is left of SECONDS, less the shares of the phases after
# it (and 5 s for the summary); nothing when PHASES leaves NAME out.
run() {
    local name=$1 started=$SECONDS reserve=5 later=0 phase
    shift
    [[ $phases == *",$name,"* ]] || return 0
    for phase in sd15 sdxl addons tests; do
        if (( later )) && [[ $phases == *",$phase,"* ]]; then
            reserve=$(( reserve + share[$phase] ))
        fi
        [[ $phase == "$name" ]] && later=1
    done
    local limit=$(( seconds - SECONDS - reserve ))
    if (( limit < 20 )); then
        echo "$name skipped: ${limit}s left" >> "$out/versions.txt"
        return 0
    fi
    timeout -k 10 "$limit" "$@"
    echo "$name exit $? ($(( SECONDS - started ))s of ${limit}s)" >> "$out/versions.txt"
}
run sd15 "$python" bench/gpu_txt2img.py --modes "$modes" \
    --skip-precision --partial "$out/partial.json" "$@" > "$out/bench.out" 2> "$out/bench.err"
run sdxl "$python" bench/gpu_sdxl.py --modes "${SDXL_MODES:-$modes}" \
    --partial "$out/sdxl.json" "${sdxl_flags[@]}" > "$out/sdxl.out" 2> "$out/sdxl.err"
run addons "$python" bench/gpu_addons.py --partial "$out/addons.json" "${addon_flags[@]}" \
    > "$out/addons.out" 2> "$out/addons.err"
run tests "$python" -m pytest -q -p no:warnings -p no:cacheprovider tests/test_cuda_paths.py \
    "tests/test_aot.py::test_aot_mode_on_cuda_matches_eager_and_replays_the_unet_graph" \
    > "$out/tests.out" 2>&1

# The summary: each bench's numbers so far (a bench cut by its limit left its partial JSON).
"$python" - "$out" << 'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None


def row(name, entry, keys):
    if not isinstance(entry, dict):
        return
    shown = {k: entry[k] for k in keys if entry.get(k) is not None}
    problem = entry.get("skipped") or entry.get("error")
    print(f"  {name:14} " + (", ".join(f"{k} {v}" for k, v in shown.items()) or "-")
          + (f"  [{str(problem)[-200:]}]" if problem else ""))


MODE_KEYS = ("s", "vs_stock", "seed_rerun_s", "peak_vram_gib", "max_pixel_diff_vs_stock", "compile_warm_s")
sd15 = load("partial.json")
print("SD 1.5 (targets: compiled or AOT <= 0.15 s with previews and trace, warm start <= 20 s, default <= 0.45x stock):")
if sd15 is None:
    print("  no results")
else:
    print(f"  {sd15.get('device')}, {sd15.get('size')}px, {sd15.get('steps')} steps; stock {sd15.get('stock_s')} s, "
          f"{sd15.get('stock_peak_vram_gib')} GiB")
    for label in ("eager", "graphs", "compiled", "regional", "aot"):
        row(label, sd15.get(label), MODE_KEYS)
sdxl = load("sdxl.json")
print("SDXL (targets: default <= 0.8x stock, compiled <= 0.5x stock, peak VRAM <= stock):")
if sdxl is None:
    print("  no results")
else:
    print(f"  {sdxl.get('device')}, {sdxl.get('size')}px, {sdxl.get('steps')} steps, CFG {sdxl.get('cfg')}")
    for label in ("stock", "eager", "graphs", "compiled", "regional", "aot", "stock_split", "graph_split"):
        if label in sdxl.get("modes", ()) and label not in sdxl:
            print(f"  {label:14} not reached (see versions.txt: 124 = the phase's time limit)")
        row(label, sdxl.get(label), MODE_KEYS + ("first_run_s", "vae_dtype", "vae_force_upcast"))
    print(f"  targets: {json.dumps(sdxl.get('targets'))}")
    print(f"  tiny fp32 GPU vs CPU (<= 1 level): {json.dumps(sdxl.get('tiny_fp32_gpu_vs_cpu'))}")
addons = load("addons.json")
print("Add-ons on SDXL:")
if addons is None:
    print("  no results")
else:
    row("lora", addons.get("lora"), ("seed_only_s", "strength_extra_ms", "switch_file_extra_ms",
                                     "add_or_remove_extra_ms"))
    row("controlnet", addons.get("controlnet"), ("without_s", "with_s", "per_step_ms", "per_step_pct",
                                                 "unet_cuda_graph"))
EOF
tail -n 3 "$out/tests.out" 2> /dev/null
cat "$out/versions.txt"
