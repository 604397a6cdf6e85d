"""Graph executor vs StableDiffusionPipeline on the same model, 20 steps (CPU by default).

    python bench/txt2img.py [--model bundled|PATH] [--device cpu|cuda] [--repeats 5]
                            [--compile aot_cuda_graphs]

``--compile`` sets the graph's Load model.compile (the pipeline always runs the plain model).
Last line: JSON with graph_s, pipeline_s, ratio, max_pixel_diff, preview_cost_pct, trace_cost_pct,
graph_first_s (the graph's first run: load, and compile or load compiled code).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import median_time  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor  # noqa: E402
from nodes.accelerators import COMPILE_MODES  # noqa: E402
from nodes.models import MODEL_CACHE, resolve_source  # noqa: E402
from nodes.schedulers import build_scheduler, scheduler_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--scheduler", default="Euler")
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--compile", default="off", choices=COMPILE_MODES)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from nodes.recipes import txt2img_graph

    source = str(resolve_source(args.model))
    graph, ids = txt2img_graph(source, prompt="a red circle and a blue square on a white background",
                               seed=42, scheduler=args.scheduler, steps=args.steps, cfg=args.cfg,
                               size=args.size)
    graph.set_param(ids["load"], "device", args.device)
    graph.set_param(ids["load"], "compile", args.compile)
    executor = Executor()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def graph_run(previews=True, trace=True):
        # Change the seed each time so the sampler really runs (Load model / Text encode cached).
        graph.set_param(ids["noise"], "seed", graph.nodes[ids["noise"]].params["seed"] + 1)
        result = executor.run(graph, settings={"previews": previews, "keep_trace": trace})
        assert result.status == "finished", result.error
        return result

    start = time.perf_counter()
    graph_run()  # warm-up: loads the model (and compiles it, or loads compiled code)
    first_s = time.perf_counter() - start
    loaded = MODEL_CACHE.get(source, args.device)
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=loaded.vae.vae, text_encoder=loaded.clip.text_encoder,
                                   tokenizer=loaded.clip.tokenizer, unet=loaded.unet.unet,
                                   scheduler=build_scheduler(scheduler_spec(args.scheduler, args.steps),
                                                             loaded.unet.scheduler_config),
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt = graph.nodes[ids["positive"]].params["text"]

    def pipe_run(seed=42):
        return pipe(prompt, negative_prompt="", height=args.size, width=args.size,
                    num_inference_steps=args.steps, guidance_scale=args.cfg,
                    generator=torch.Generator("cpu").manual_seed(seed)).images[0]

    pipe_run()
    # Interleave measurements so machine noise hits both equally.
    pipeline_s = median_time(pipe_run, args.repeats, sync)
    graph_s = median_time(graph_run, args.repeats, sync)
    bare_s = median_time(lambda: graph_run(previews=False, trace=False), args.repeats, sync)
    no_preview_s = median_time(lambda: graph_run(previews=False, trace=True), args.repeats, sync)

    graph.set_param(ids["noise"], "seed", 42)
    executor.clear_cache()
    result = executor.run(graph)
    ours = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    theirs = np.asarray(pipe_run(42)).astype(int)
    out = {
        "model": args.model, "device": args.device, "steps": args.steps, "size": args.size,
        "scheduler": args.scheduler, "threads": torch.get_num_threads(), "compile": args.compile,
        "graph_first_s": round(first_s, 2),
        "graph_s": round(graph_s, 4), "pipeline_s": round(pipeline_s, 4),
        "ratio": round(graph_s / pipeline_s, 3),
        "graph_bare_s": round(bare_s, 4),
        "preview_cost_pct": round(100 * (graph_s - no_preview_s) / bare_s, 2),
        "trace_cost_pct": round(100 * (no_preview_s - bare_s) / bare_s, 2),
        "max_pixel_diff": int(np.abs(ours - theirs).max()),
    }
    print(f"graph {graph_s:.3f}s  pipeline {pipeline_s:.3f}s  ratio {out['ratio']}  "
          f"previews +{out['preview_cost_pct']}%  trace +{out['trace_cost_pct']}%  "
          f"max pixel diff {out['max_pixel_diff']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
