"""CUDA acceptance benchmark: the graph executor vs diffusers' StableDiffusionPipeline.

Builds SD1.5-architecture models with random weights from configs (no downloads; weights do
not change the speed), then times in one process (median of --repeats after warm-up,
CUDA-synchronised): the stock pipeline, the graph eager, the graph compiled; a re-run after a
seed change (text encoders served from the cache), the cost of previews + latent trace, peak
VRAM, and compile time cold (this process) and warm (a second process reusing the on-disk cache).
It also checks the GPU image against the CPU fp32 image for the same seed (smaller size).

    python bench/gpu_txt2img.py            # on a CUDA machine
    python bench/gpu_txt2img.py --tiny     # CPU sanity check with tiny models

Last line: JSON with stock_s, eager_s, compiled_s, seed_rerun_s, preview_overhead_pct,
peak_vram_gib, stock_peak_vram_gib, compile_cold_s, compile_warm_s, device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import ROOT, median_time  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor  # noqa: E402
from nodes.models import MODEL_CACHE  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse"

SD15 = {
    "unet": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
                 attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
    "vae": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), sample_size=512,
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4),
    "clip": dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                 num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
                 projection_dim=768),
}
TINY = {
    "unet": dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                 block_out_channels=(32, 64), cross_attention_dim=32, attention_head_dim=4,
                 norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
    "vae": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                block_out_channels=(32, 64), norm_num_groups=8,
                down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2),
    "clip": dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                 num_hidden_layers=2, max_position_embeddings=77),
}


def build_model(folder: Path, configs: dict) -> Path:
    """SD-layout folder with random weights (fp32 safetensors) and an SD1.5 scheduler."""
    if (folder / "model_index.json").is_file():
        return folder
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from sd_fixtures import write_char_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_char_tokenizer(folder / "_tok")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "_tok"), model_max_length=77)
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=max(len(tokenizer), 1000), bos_token_id=0,
                                           eos_token_id=1, pad_token_id=1, **configs["clip"]))
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**configs["vae"]), text_encoder=encoder, tokenizer=tokenizer,
        unet=UNet2DConditionModel(**configs["unet"]),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                         beta_schedule="scaled_linear", steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def make_graph(source: Path | str, device: str, size: int, steps: int, compile_mode: str = "off",
               dtype: str = "auto", prompt: str = PROMPT, cfg: float = 7.5):
    from sd_graphs import txt2img_graph

    graph, ids = txt2img_graph(str(source), prompt=prompt, negative="", seed=0,
                               scheduler="Euler", steps=steps, cfg=cfg, size=size)
    graph.set_param(ids["load"], "device", device)
    graph.set_param(ids["load"], "dtype", dtype)
    graph.set_param(ids["load"], "compile", compile_mode)
    return graph, ids


def first_image_seconds(folder: Path, device: str, size: int, steps: int, mode: str) -> float:
    """Load + compile + first image, as a fresh launch experiences it."""
    start = time.perf_counter()
    graph, _ = make_graph(folder, device, size, steps, mode)
    result = Executor().run(graph)
    assert result.status == "finished", result.error
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def graph_image(source: Path | str, device: str, size: int, steps: int, **kw):
    graph, ids = make_graph(source, device, size, steps, **kw)
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)


def pixel_diff(a, b) -> dict:
    diff = np.abs(a - b)
    return {"max": int(diff.max()), "mean": round(float(diff.mean()), 3)}


def precision_check(folder: Path) -> dict:
    """GPU fp16 against CPU fp32 for the same seed.

    On the bundled model (trained weights, its own settings) the images must agree within fp16
    rounding. Random SD1.5 weights at CFG 7.5 amplify any rounding difference, so there the
    stock pipeline's own fp16-vs-fp32 difference is measured alongside ours as the yardstick.
    """
    from diffusers import StableDiffusionPipeline

    out: dict = {}
    try:
        from nodes.models import model_settings
        from nodes.paths import bundled_model_dir

        defaults = model_settings(bundled_model_dir())
        kw = dict(size=defaults["width"], steps=defaults["steps"], prompt=defaults["default_prompt"],
                  cfg=defaults["cfg"])
        out["bundled_fp16_vs_cpu_fp32"] = pixel_diff(graph_image("bundled", "cuda", **kw),
                                                     graph_image("bundled", "cpu", **kw))
        size, steps = 256, 10
        cpu = graph_image(folder, "cpu", size, steps)
        out["sd15_graph_fp16_vs_cpu_fp32"] = pixel_diff(graph_image(folder, "cuda", size, steps), cpu)
        out["sd15_graph_fp32_vs_cpu_fp32"] = pixel_diff(graph_image(folder, "cuda", size, steps, dtype="fp32"), cpu)
        images = {}
        for device, dtype in (("cuda", torch.float16), ("cpu", torch.float32)):
            pipe = StableDiffusionPipeline.from_pretrained(str(folder), dtype=dtype, safety_checker=None,
                                                           requires_safety_checker=False,
                                                           local_files_only=True).to(device)
            pipe.set_progress_bar_config(disable=True)
            images[device] = np.asarray(pipe(PROMPT, negative_prompt="", height=size, width=size,
                                             num_inference_steps=steps, guidance_scale=7.5,
                                             generator=torch.Generator("cpu").manual_seed(0)).images[0]).astype(int)
        out["sd15_stock_fp16_vs_cpu_fp32"] = pixel_diff(images["cuda"], images["cpu"])
        out["sd15_graph_cpu_vs_stock_cpu"] = pixel_diff(cpu, images["cpu"])
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
    return out


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def save_partial(out: dict, path: Path | None) -> None:
    """Keep what was measured so far, so a late failure on a lent GPU loses nothing."""
    if path is not None:
        path.write_text(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--compile-mode", default="compile + CUDA graphs",
                        choices=("off", "compile", "compile + CUDA graphs"))
    parser.add_argument("--child-first-image", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision-only", action="store_true", help="only the GPU-vs-CPU check")
    parser.add_argument("--partial", type=Path, help="write the numbers so far here after each phase")
    args = parser.parse_args()
    device = "cpu" if args.tiny and args.device != "cuda" else args.device
    size = args.size or (64 if args.tiny else 512)
    compile_mode = args.compile_mode if device == "cuda" else "compile"
    folder = args.model_dir or Path(tempfile.gettempdir()) / (
        "latentgraph_bench_tiny" if args.tiny else "latentgraph_bench_sd15")
    build_model(folder, TINY if args.tiny else SD15)
    log(f"model ready in {folder}")

    if args.precision_only:
        print(json.dumps(precision_check(folder)))
        return
    if args.child_first_image:
        print(json.dumps({"first_image_s": first_image_seconds(folder, device, size, args.steps,
                                                               compile_mode)}))
        return

    cuda = device == "cuda"
    out: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu",
                 "torch": torch.__version__, "size": size, "steps": args.steps, "tiny": args.tiny}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.float16 if cuda else torch.float32

    def peak_reset():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib():
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0

    # ---- stock pipeline ----
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False,
                                                   local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)

    def stock():
        return pipe(PROMPT, negative_prompt="", height=size, width=size,
                    num_inference_steps=args.steps, guidance_scale=7.5,
                    generator=torch.Generator("cpu").manual_seed(0)).images[0]

    stock()
    peak_reset()
    stock_image = stock()
    stock_peak = peak_gib()
    stock_s = median_time(stock, args.repeats, sync)
    out.update(stock_s=round(stock_s, 4), stock_peak_vram_gib=round(stock_peak, 3),
               diffusers=__import__("diffusers").__version__)
    save_partial(out, args.partial)
    log(f"stock {stock_s:.4f}s")
    pipe = None  # free its memory before the graph runs
    peak_reset()

    # ---- graph, eager ----
    graph, ids = make_graph(folder, device, size, args.steps)
    executor = Executor()

    def run(**settings):
        result = executor.run(graph, settings=settings)
        assert result.status == "finished", result.error and result.error.traceback
        return result

    def full_run():  # everything but the model load: text encoders, sampler, decode
        executor.clear_cache()
        run()

    seed = [0]

    def seed_rerun(**settings):
        seed[0] += 1
        graph.set_param(ids["noise"], "seed", seed[0])
        result = run(**settings)
        assert ids["positive"] not in result.executed, "text encode should come from the cache"

    run()
    peak_reset()
    full_run()
    eager_peak = peak_gib()
    graph.set_param(ids["noise"], "seed", 0)
    executor.clear_cache()
    eager_image = np.asarray(run().outputs[ids["preview"]]["images"][0]).astype(int)
    eager_s = median_time(full_run, args.repeats, sync)
    seed_rerun_s = median_time(seed_rerun, args.repeats, sync)
    bare_s = median_time(lambda: seed_rerun(previews=False, keep_trace=False), args.repeats, sync)
    preview_overhead_pct = 100 * (seed_rerun_s - bare_s) / bare_s
    out.update(eager_s=round(eager_s, 4), seed_rerun_s=round(seed_rerun_s, 4),
               seed_rerun_bare_s=round(bare_s, 4), preview_overhead_pct=round(preview_overhead_pct, 2),
               eager_peak_vram_gib=round(eager_peak, 3), eager_vs_stock=round(eager_s / stock_s, 3))
    save_partial(out, args.partial)
    log(f"eager {eager_s:.4f}s, seed re-run {seed_rerun_s:.4f}s, bare {bare_s:.4f}s")

    # ---- graph, compiled ----
    compiled_s = compile_cold_s = compile_warm_s = None
    compiled_peak = 0.0
    executor = None  # drop the eager run's cached outputs (the closures above share this name)
    MODEL_CACHE.clear()
    peak_reset()
    try:
        compile_cold_s = first_image_seconds(folder, device, size, args.steps, compile_mode)
        log(f"compile cold {compile_cold_s:.1f}s")
        cgraph, cids = make_graph(folder, device, size, args.steps, compile_mode)
        cexec = Executor()
        cexec.run(cgraph)

        def compiled_run():
            cexec.clear_cache()
            result = cexec.run(cgraph)
            assert result.status == "finished", result.error and result.error.traceback

        compiled_s = median_time(compiled_run, args.repeats, sync)
        compiled_peak = peak_gib()
        compiled_bare_s = median_time(
            lambda: (cexec.clear_cache(), cexec.run(cgraph, settings={"previews": False, "keep_trace": False})),
            args.repeats, sync)
        out.update(compiled_s=round(compiled_s, 4), compiled_bare_s=round(compiled_bare_s, 4),
                   compiled_preview_overhead_pct=round(100 * (compiled_s - compiled_bare_s) / compiled_bare_s, 2),
                   compile_cold_s=round(compile_cold_s, 2), compiled_vs_stock=round(compiled_s / stock_s, 3),
                   compiled_peak_vram_gib=round(compiled_peak, 3))
        save_partial(out, args.partial)
        log(f"compiled {compiled_s:.4f}s (no previews/trace {compiled_bare_s:.4f}s)")
    except Exception as exc:  # keep the eager numbers; say what broke
        import traceback

        traceback.print_exc()
        out["compile_error"] = f"{type(exc).__name__}: {exc}"[:500]
    if compiled_s is not None:
        child = subprocess.run(
            [sys.executable, __file__, "--child-first-image", "--model-dir", str(folder),
             "--steps", str(args.steps), "--size", str(size), "--compile-mode", args.compile_mode,
             "--device", device] + (["--tiny"] if args.tiny else []),
            capture_output=True, text=True, cwd=ROOT)
        try:
            compile_warm_s = json.loads(child.stdout.strip().splitlines()[-1])["first_image_s"]
        except (IndexError, ValueError, KeyError):
            print(child.stderr[-3000:], file=sys.stderr)
        log(f"compile warm (second process) {compile_warm_s}")

    # ---- correctness: graph on this device vs stock, and GPU fp16 vs CPU fp32 ----
    stock_diff = int(np.abs(eager_image - np.asarray(stock_image).astype(int)).max())
    gpu_cpu = precision_check(folder) if cuda else None
    log(f"precision: {gpu_cpu}")

    out.update({
        "compile_mode": compile_mode,
        "compiled_s": None if compiled_s is None else round(compiled_s, 4),
        # The default (eager) path is what must stay under the stock pipeline's peak; CUDA
        # graphs keep static buffers of their own, reported separately.
        "peak_vram_gib": round(eager_peak, 3),
        "compile_cold_s": None if compile_cold_s is None else round(compile_cold_s, 2),
        "compile_warm_s": None if compile_warm_s is None else round(compile_warm_s, 2),
        "graph_vs_stock_max_pixel_diff": stock_diff,
        "gpu_vs_cpu_fp32": gpu_cpu,
    })
    rows = [("stock StableDiffusionPipeline", stock_s), ("graph eager (full)", eager_s),
            ("graph compiled (full)", compiled_s), ("graph seed re-run", seed_rerun_s),
            ("graph seed re-run, no previews/trace", bare_s)]
    print(f"{'':40} seconds   ({out['device']}, {size}x{size}, {args.steps} steps, CFG 7.5, Euler)")
    for name, seconds in rows:
        print(f"{name:40} {'failed' if seconds is None else f'{seconds:8.4f}'}")
    print(f"preview+trace overhead {out['preview_overhead_pct']}%  peak VRAM "
          f"{out['peak_vram_gib']} GiB (stock {out['stock_peak_vram_gib']})  compile cold "
          f"{out['compile_cold_s']}s warm {out['compile_warm_s']}s")
    save_partial(out, args.partial)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
