"""SDXL on the GPU (issue 32, SDXL half): the stock StableDiffusionXLPipeline against the graph.

Random fp16 weights in the real SDXL base architecture (our bundled configs; weights do not change
speed), 1024x1024, 30 Euler steps, CFG 5, no negative prompt (zeros, as the pipeline's default).
The stock pipeline runs as users run it (SDPA, its VAE upcast to fp32 for the decode); the graph in
its default mode (the UNet and both text encoders replayed from CUDA graphs). For each: median
seconds per image over --repeats after a warm-up, peak VRAM, and for the graph a seed re-run (text
encoders served from the cache). Max pixel difference at the same seed.

    python bench/gpu_sdxl.py                        # on the CUDA machine
    python bench/gpu_sdxl.py --tiny --steps 3       # CPU sanity check (tiny random SDXL)

Prints JSON last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DeviceMemory, median_time  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random SDXL on the CPU")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", type=Path)
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    size = args.size or (32 if args.tiny else 1024)
    folder = args.model_dir or Path(tempfile.gettempdir()) / ("latentgraph_sdxl_tiny" if args.tiny
                                                               else "latentgraph_sdxl_base")
    start = time.perf_counter()
    if args.tiny:
        from nodes.tiny_models import make_tiny_sdxl

        if not (folder / "model_index.json").is_file():
            make_tiny_sdxl(folder)
    else:
        from sdxl_single_file import random_sdxl_folder

        random_sdxl_folder(folder)
    out: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                 "size": size, "steps": args.steps, "cfg": 5.0, "tiny": args.tiny,
                 "build_s": round(time.perf_counter() - start, 1)}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.float16 if cuda else torch.float32

    memory = DeviceMemory(cuda)
    peak_reset, peak_gib = memory.reset, memory.peak_gib

    # ----- stock pipeline --------------------------------------------------------------
    import diffusers
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    out["diffusers"] = diffusers.__version__
    pipe = StableDiffusionXLPipeline.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True,
                                                     add_watermarker=False).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)

    def stock(seed: int = 0):
        return pipe(PROMPT, negative_prompt=None, height=size, width=size, num_inference_steps=args.steps,
                    guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images[0]

    stock()  # warm-up
    peak_reset()
    out["stock_s"] = round(median_time(stock, args.repeats, sync), 4)
    out["stock_peak_vram_gib"] = round(peak_gib(), 3)
    stock_image = (stock(0) * 255).round().astype(int)
    pipe = None  # frees its VRAM before the graph loads its own copy
    peak_reset()

    # ----- the graph, default mode -----------------------------------------------------
    from gpu_txt2img import make_graph

    graph, ids = make_graph(folder, device, size, args.steps, "cuda_graphs", prompt=PROMPT, cfg=5.0)
    executor = Executor()
    started = time.perf_counter()
    first = executor.run(graph)
    sync()
    assert first.status == "finished", first.error and first.error.traceback
    out["graph_first_run_s"] = round(time.perf_counter() - started, 2)  # load + CUDA graph captures

    def full():
        executor.clear_cache()
        result = executor.run(graph)
        assert result.status == "finished", result.error
        return result

    seeds = iter(range(1, 10_000))

    def seed_rerun():
        graph.set_param(ids["noise"], "seed", next(seeds))
        assert executor.run(graph).status == "finished"

    peak_reset()
    out["graph_s"] = round(median_time(full, args.repeats, sync), 4)
    out["graph_seed_rerun_s"] = round(median_time(seed_rerun, args.repeats, sync), 4)
    out["graph_peak_vram_gib"] = round(peak_gib(), 3)
    out["graph_vs_stock"] = round(out["graph_s"] / out["stock_s"], 3)
    graph.set_param(ids["noise"], "seed", 0)
    ours = np.asarray(full().outputs[ids["preview"]]["images"][0]).astype(int)
    out["max_pixel_diff_vs_stock"] = int(np.abs(ours - stock_image).max())
    from nodes.models import MODEL_CACHE

    loaded = MODEL_CACHE.get(str(folder), device, "auto", "", "cuda_graphs")
    graphs = {"unet": loaded.unet.graphed, **{f"text_encoder_{i + 1}": e.graphed for i, e in
                                                enumerate(loaded.clip.encoders)}}
    out["cuda_graphs"] = {k: (g.disabled_reason or f"{g.captures} captured") if g else "off" for k, g in graphs.items()}
    out["targets"] = {"graph_vs_stock_le_0.8": out["graph_vs_stock"] <= 0.8,
                      "vram_le_stock": out["graph_peak_vram_gib"] <= out["stock_peak_vram_gib"]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
