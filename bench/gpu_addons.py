"""Add-ons on the GPU (issue 32): a LoRA switched or re-weighted on SDXL, and one ControlNet's cost
per step, in one run.

The SDXL base with random fp16 weights (the folder bench/gpu_sdxl.py builds; tiny random models with
--tiny), 1024x1024, 30 Euler steps, CFG 5, the graph in --mode (default: the default CUDA graphs).
Every timed image also takes a new seed, so nothing comes from the output cache; medians over
--repeats after a warm-up, CUDA-synchronised.

- lora: a random rank-4 LoRA (nodes/tiny_loras.py: UNet attention, proj_in and resnet conv1, both
  text encoders) through Load LoRA; seconds to the next image after a seed-only change (the
  baseline: the LoRA stays merged), a new model strength, a switch to another LoRA file, and adding
  or removing it (bypass), each with its extra ms over the baseline;
- controlnet: one random ControlNet of the base's UNet shape through Apply ControlNet (strength 1,
  a size x size hint): seed re-runs with and without it; (with - without) / steps is its cost per
  step; peak VRAM of both, and whether the UNet stayed in its CUDA graph.

    python bench/gpu_addons.py                               # on the CUDA machine
    python bench/gpu_addons.py --tiny --steps 4 --repeats 1  # CPU sanity check

Prints a summary, then JSON last (also written to --partial after each phase): lora {lora_build_s,
first_run_s, seed_only_s, strength_s, switch_file_s, add_or_remove_s, *_extra_ms}, controlnet
{controlnet_build_s, first_run_s, without_s, with_s, per_step_ms, per_step_pct, *_peak_vram_gib,
mean_pixel_change, unet_cuda_graph}, each with phase_s, or {error} / {skipped}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import DeviceMemory, median_time  # noqa: E402
from gpu_sdxl import CFG, PROMPT, TINY_PROMPT, built_once, error_text, image_of, sdxl_folder  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor  # noqa: E402
from nodes.accelerators import ACCELERATORS, CUDA_GRAPHS  # noqa: E402
from nodes.models import MODEL_CACHE  # noqa: E402


def second_lora(first: Path, out: Path, seed: int) -> Path:
    """Another LoRA of the same layers: each tensor redrawn at its own scale (building a second one
    with make_random_lora would read the whole SDXL pipeline again)."""
    from safetensors.torch import load_file, save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, value in load_file(str(first)).items():
        if value.is_floating_point() and value.ndim >= 2:
            fresh = torch.randn(value.shape, generator=generator) * value.float().std()
            value = fresh.to(value.dtype)
        tensors[key] = value.contiguous()
    save_file(tensors, str(out))
    return out


def random_controlnet(folder: Path, base: Path) -> Path:
    """A ControlNet of the base UNet's shape with random fp16 weights, its zero convolutions
    included (a fresh one would add nothing; the cost is the same either way)."""
    import inspect

    from diffusers import ControlNetModel, UNet2DConditionModel
    from sdxl_single_file import random_fp16

    config = dict(UNet2DConditionModel.load_config(str(base / "unet")))
    accepted = set(inspect.signature(ControlNetModel.__init__).parameters)
    config = {k: v for k, v in config.items() if k in accepted}
    scale = 2 ** (len(json.loads((base / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    if scale != 8:  # a small test model: the hint encoder halves once per VAE downscale (as make_tiny_controlnet)
        config["conditioning_embedding_out_channels"] = tuple(16 * 2**i for i in range(scale.bit_length()))
    net = random_fp16(lambda: ControlNetModel.from_config(config), 20)
    net.save_pretrained(str(folder), safe_serialization=True)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random SDXL, LoRA and ControlNet on the CPU")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, help="an SDXL base folder (default: random weights in /tmp)")
    parser.add_argument("--mode", default=CUDA_GRAPHS.id, choices=tuple(ACCELERATORS), help="the graph's compile mode")
    parser.add_argument("--skip", default="", help="phases to leave out, comma-separated: lora, controlnet")
    parser.add_argument("--partial", type=Path, help="write the numbers so far here after each phase")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    size = args.size or (32 if args.tiny else 1024)
    prompt = TINY_PROMPT if args.tiny else PROMPT
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    memory = DeviceMemory(cuda)
    out: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                 "size": size, "steps": args.steps, "cfg": CFG, "tiny": args.tiny, "mode": args.mode}

    def save() -> None:
        if args.partial is not None:
            args.partial.write_text(json.dumps(out, indent=1))

    def phase(name: str, fn) -> None:
        """Run one phase; a failure is recorded under its name and the next phase goes on."""
        started = time.perf_counter()
        out[name] = {}
        try:
            fn(out[name])
        except Exception as exc:
            import traceback

            traceback.print_exc()
            out[name]["error"] = error_text(exc)
        out[name]["phase_s"] = round(time.perf_counter() - started, 1)
        print(f"[{name}: {out[name]['phase_s']}s]", file=sys.stderr, flush=True)
        save()

    start = time.perf_counter()
    folder = sdxl_folder(args.tiny, model_dir=args.model_dir)
    out["build_s"] = round(time.perf_counter() - start, 1)
    from gpu_txt2img import make_graph

    work = Path(tempfile.mkdtemp(prefix="latentgraph_addons_"))

    def new_graph():
        return make_graph(folder, device, size, args.steps, args.mode, prompt=prompt, cfg=CFG)

    def runner(graph):
        executor = Executor()

        def run():
            result = executor.run(graph)
            assert result.status == "finished", result.error and result.error.traceback
            return result
        return run

    seeds = iter(range(1, 10**6))

    def timed(graph, ids, run, change=lambda: None) -> float:
        """Median seconds to the next image after ``change()`` and a new seed."""
        def step() -> None:
            change()
            graph.set_param(ids["noise"], "seed", next(seeds))
            run()
        return median_time(step, args.repeats, sync)

    # ----- LoRA --------------------------------------------------------------------------------
    def lora_phase(row: dict) -> None:
        from nodes.recipes import add_lora
        from nodes.tiny_loras import make_random_lora

        started = time.perf_counter()
        first = make_random_lora(folder, work / "lora_a.safetensors", 0, sdxl=True)
        files = [first, second_lora(first, work / "lora_b.safetensors", 1)]
        row.update(lora_build_s=round(time.perf_counter() - started, 1),
                   lora_file_mib=round(first.stat().st_size / 2**20, 2))
        graph, ids = new_graph()
        lora = add_lora(graph, ids, str(files[0]))["lora"]
        run = runner(graph)
        started = time.perf_counter()
        run()  # loads the model (captures its graphs) and reads the first LoRA
        sync()
        row["first_run_s"] = round(time.perf_counter() - started, 2)
        run()
        strengths = iter([0.5, 1.0] * 10**5)
        switches = iter(files[::-1] * 10**5)
        changes = {
            "seed_only_s": lambda: None,
            "strength_s": lambda: graph.set_param(lora, "strength_model", next(strengths)),
            "switch_file_s": lambda: graph.set_param(lora, "file", str(next(switches))),
            "add_or_remove_s": lambda: graph.set_flag(lora, "bypass", not graph.nodes[lora].flags["bypass"]),
        }
        for key, change in changes.items():
            row[key] = round(timed(graph, ids, run, change), 4)
        base = row["seed_only_s"]
        for key in ("strength_s", "switch_file_s", "add_or_remove_s"):
            row[f"{key[:-2]}_extra_ms"] = round((row[key] - base) * 1000, 1)

    # ----- ControlNet --------------------------------------------------------------------------
    def controlnet_phase(row: dict) -> None:
        from PIL import Image

        from nodes.recipes import add_controlnet

        started = time.perf_counter()
        if args.tiny and args.model_dir is None:
            from nodes.tiny_models import make_tiny_controlnet

            net = built_once(Path(tempfile.gettempdir()) / "latentgraph_controlnet_sdxl_tiny",
                             lambda f: make_tiny_controlnet(f, folder))
        else:
            net = built_once(Path(tempfile.gettempdir()) / f"latentgraph_controlnet_{folder.name}",
                             lambda f: random_controlnet(f, folder))
        hint = work / "hint.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(hint)
        row["controlnet_build_s"] = round(time.perf_counter() - started, 1)
        plain, plain_ids = new_graph()
        controlled, ids = new_graph()
        add_controlnet(controlled, ids, str(net), str(hint), strength=1.0)
        run_plain, run_controlled = runner(plain), runner(controlled)
        run_plain()
        started = time.perf_counter()
        run_controlled()  # reads the ControlNet
        sync()
        row["first_run_s"] = round(time.perf_counter() - started, 2)
        run_plain()
        memory.reset()
        row["without_s"] = round(timed(plain, plain_ids, run_plain), 4)
        row["without_peak_vram_gib"] = round(memory.peak_gib(), 3)
        memory.reset()
        row["with_s"] = round(timed(controlled, ids, run_controlled), 4)
        row["with_peak_vram_gib"] = round(memory.peak_gib(), 3)
        row["per_step_ms"] = round((row["with_s"] - row["without_s"]) / args.steps * 1000, 2)
        row["per_step_pct"] = round(100 * (row["with_s"] - row["without_s"]) / row["without_s"], 1)
        for graph, graph_ids in ((plain, plain_ids), (controlled, ids)):
            graph.set_param(graph_ids["noise"], "seed", 0)
        mean_change = np.abs(image_of(runner(controlled)(), ids["preview"])
                             - image_of(runner(plain)(), plain_ids["preview"])).mean()
        row["mean_pixel_change"] = round(float(mean_change), 2)  # > 0: the ControlNet steers
        graphed = MODEL_CACHE.get(str(folder), device, "auto", "", args.mode).unet.graphed
        row["unet_cuda_graph"] = (graphed.disabled_reason or f"{graphed.captures} captured") if graphed else "off"

    try:
        for name, fn in (("lora", lora_phase), ("controlnet", controlnet_phase)):
            if name in skip:
                out[name] = {"skipped": "--skip"}
                continue
            phase(name, fn)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    lora, control = out.get("lora", {}), out.get("controlnet", {})
    if "seed_only_s" in lora:
        print(f"LoRA on SDXL ({out['device']}, {size}x{size}, {args.steps} steps): next image {lora['seed_only_s']}s "
              f"seed only; extra ms: strength {lora.get('strength_extra_ms')}, switch file "
              f"{lora.get('switch_file_extra_ms')}, add/remove {lora.get('add_or_remove_extra_ms')}")
    else:
        print(f"LoRA: {lora.get('skipped') or 'failed: ' + str(lora.get('error'))}")
    if "per_step_ms" in control:
        print(f"ControlNet: {control['without_s']}s -> {control['with_s']}s per image, {control['per_step_ms']} ms "
              f"per step (+{control['per_step_pct']} %), VRAM {control['without_peak_vram_gib']} -> "
              f"{control['with_peak_vram_gib']} GiB, UNet graph {control['unet_cuda_graph']}")
    else:
        print(f"ControlNet: {control.get('skipped') or 'failed: ' + str(control.get('error'))}")
    save()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
