"""CUDA acceptance benchmark: the graph executor vs diffusers' StableDiffusionPipeline.

Builds SD1.5-architecture models with random weights from configs (no downloads; weights do
not change the speed), then times in one process (median of --repeats after warm-up,
CUDA-synchronised): the stock pipeline, then the graph in each mode — "eager" (compile off),
"graphs" (the default: eager kernels replayed from CUDA graphs) and "compiled" — with a re-run
after a seed change (text encoders served from the cache), the cost of previews + latent trace
and steady-state peak VRAM; compile time cold (this process) and warm (a second process reusing
the on-disk cache, split into imports, device init, load and first run). It also checks the GPU
image against the CPU fp32 image for the same seed (smaller size) and localises the bundled
model's low-precision divergence component by component.

    python bench/gpu_txt2img.py            # on a CUDA machine
    python bench/gpu_txt2img.py --modes graphs,compiled,regional,aot --skip-precision
                                           # + the regional and AOT compile modes, each with its
                                           #   own cold and warm start
    python bench/gpu_txt2img.py --tiny     # CPU sanity check with tiny models

Last line: JSON with stock_s, eager_s (the default uncompiled path; eager_mode says which),
compiled_s, seed_rerun_s, preview_overhead_pct, peak_vram_gib, stock_peak_vram_gib,
compile_cold_s, compile_warm_s, device, and one entry per mode.
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
from common import ROOT, DeviceMemory, median_time  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor  # noqa: E402
from nodes.accelerators import AOT, REGIONAL  # noqa: E402
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
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from nodes.tiny_models import write_char_tokenizer

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
    from nodes.recipes import txt2img_graph

    graph, ids = txt2img_graph(str(source), prompt=prompt, negative="", seed=0,
                               scheduler="Euler", steps=steps, cfg=cfg, size=size)
    graph.set_param(ids["load"], "device", device)
    graph.set_param(ids["load"], "dtype", dtype)
    graph.set_param(ids["load"], "compile", compile_mode)
    return graph, ids


def first_image_seconds(folder: Path, device: str, size: int, steps: int, mode: str) -> dict:
    """Load + compile + first image, as a fresh launch experiences it, and where it goes:
    the model load, then the first run (tracing, compiling or loading compiled code, capturing
    CUDA graphs) and a second run for comparison."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    start = time.perf_counter()
    from diffusers import StableDiffusionPipeline  # noqa: F401  (what the load imports first)

    imported = time.perf_counter()
    torch.zeros(1, device=device)
    sync()
    device_ready = time.perf_counter()
    MODEL_CACHE.get(str(folder), device, "auto", "", mode)
    sync()
    loaded = time.perf_counter()
    graph, _ = make_graph(folder, device, size, steps, mode)
    executor = Executor()
    result = executor.run(graph)
    assert result.status == "finished", result.error
    sync()
    first = time.perf_counter()
    executor.clear_cache()
    executor.run(graph)
    sync()
    out = {"first_image_s": first - start, "import_s": round(imported - start, 2),
           "device_init_s": round(device_ready - imported, 2), "load_s": round(loaded - device_ready, 2),
           "first_run_s": round(first - loaded, 2), "second_run_s": round(time.perf_counter() - first, 3)}
    if "compile" in mode:  # where the compile time goes, and whether the disk caches hit
        from torch._dynamo.utils import compile_times, counters

        out["compile_times"] = str(compile_times(repr="str", aggregate=True))[-3000:]
        out["cache_counters"] = {f"{group}.{name}": value for group in ("inductor", "aot_autograd")
                                 for name, value in counters[group].items() if "cache" in name}
    if mode == AOT.id:
        out["aot_packages"] = aot_status(MODEL_CACHE.get(str(folder), device, "auto", "", mode))
    return out


def aot_status(loaded) -> dict:
    """How many AOT packages the UNet and VAE decoder built and loaded, or why they fell back."""
    runners = {"unet": loaded.unet.aot, "vae_decoder": loaded.vae.vae.decoder.runner}
    return {name: runner.disabled_reason or f"built {runner.built}, loaded {runner.loaded}"
            for name, runner in runners.items()}


def graph_image(source: Path | str, device: str, size: int, steps: int, **kw):
    graph, ids = make_graph(source, device, size, steps, **kw)
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)


def pixel_diff(a, b) -> dict:
    diff = np.abs(a - b)
    return {"max": int(diff.max()), "mean": round(float(diff.mean()), 3)}


def precision_check(folder: Path) -> dict:
    """SD1.5 random weights on the GPU (fp16 and fp32) against the CPU fp32 image, same seed.

    Random weights at CFG 7.5 amplify any rounding difference, so the stock pipeline's own
    fp16-vs-fp32 difference is measured alongside ours as the yardstick. The bundled model's
    images per dtype are in ``bundled_divergence``.
    """
    from diffusers import StableDiffusionPipeline

    out: dict = {}
    try:
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


def bundled_divergence() -> dict:
    """Where the bundled model's low-precision GPU image leaves the CPU fp32 one: each component
    on the same inputs (relative error ||gpu - cpu|| / ||cpu||), then whole images per dtype,
    fp16 also with cuBLAS' reduced-precision fp16 reductions switched off."""
    from nodes.models import model_settings
    from nodes.paths import bundled_model_dir
    from nodes.prompts import encode_prompt as encode_text

    out: dict = {}
    try:
        defaults = model_settings(bundled_model_dir())
        reference = MODEL_CACHE.get("bundled", "cpu", "fp32")
        embeds = encode_text(reference.clip, defaults["default_prompt"]).embeds
        scale = reference.vae.scale_factor
        latent = torch.randn(2, 4, defaults["height"] // scale, defaults["width"] // scale,
                             generator=torch.Generator().manual_seed(0))
        timesteps = (999.0, 500.0, 50.0)

        def components(loaded) -> dict:
            device, dtype = loaded.unet.device, loaded.unet.dtype
            with torch.inference_mode():
                text = encode_text(loaded.clip, defaults["default_prompt"]).embeds.float().cpu()
                unet = [loaded.unet.predict(latent.to(device, dtype), torch.tensor(t, device=device),
                                            embeds.repeat(2, 1, 1).to(device, dtype)).float().cpu()
                        for t in timesteps]
                vae = loaded.vae.vae
                image = vae.decode(latent[:1].to(device, dtype) / vae.config.scaling_factor,
                                   return_dict=False)[0].float().cpu()
            return {"text": text, "unet": unet, "vae": image}

        def rel(a, b) -> float:
            return round(float((a - b).norm() / b.norm()), 6)

        ref = components(reference)
        size, steps, cfg = defaults["width"], defaults["steps"], defaults["cfg"]
        cpu_image = graph_image("bundled", "cpu", size, steps, prompt=defaults["default_prompt"],
                                cfg=cfg, dtype="fp32")
        for dtype in ("fp32", "fp16", "bf16"):
            got = components(MODEL_CACHE.get("bundled", "cuda", dtype))
            row = {"text_rel": rel(got["text"], ref["text"]), "vae_rel": rel(got["vae"], ref["vae"])}
            for t, a, b in zip(timesteps, got["unet"], ref["unet"]):
                row[f"unet_t{int(t)}_rel"] = rel(a, b)
            row["image_vs_cpu_fp32"] = pixel_diff(
                graph_image("bundled", "cuda", size, steps, prompt=defaults["default_prompt"],
                            cfg=cfg, dtype=dtype), cpu_image)
            out[dtype] = row
        matmul = torch.backends.cuda.matmul
        saved = matmul.allow_fp16_reduced_precision_reduction
        matmul.allow_fp16_reduced_precision_reduction = False
        try:
            out["fp16_full_precision_reduction_image_vs_cpu_fp32"] = pixel_diff(
                graph_image("bundled", "cuda", size, steps, prompt=defaults["default_prompt"],
                            cfg=cfg, dtype="fp16"), cpu_image)
        finally:
            matmul.allow_fp16_reduced_precision_reduction = saved
    except Exception as exc:
        import traceback

        traceback.print_exc()
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
    return out


def profile_syncs(run, label: str) -> dict:
    """One run under torch.profiler: how often the host waited on the GPU or copied pageable
    memory, and the ops that cost the host most (table on stderr)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    events = prof.key_averages()
    log(f"profile {label}:\n" + events.table(sort_by="self_cpu_time_total", row_limit=20))
    watched = ("Synchronize", "aten::item", "aten::_local_scalar_dense", "cudaMemcpy", "cudaHostAlloc",
               "cudaGraphLaunch", "cudaLaunchKernel")
    return {e.key: [e.count, round(e.self_cpu_time_total / 1000, 2)] for e in events
            if any(w in e.key for w in watched)}


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
    parser.add_argument("--compile-mode", default="compile_cuda_graphs",
                        choices=("off", "compile", "compile_cuda_graphs", REGIONAL.id, AOT.id),
                        help="the compiled mode to time; off skips it")
    parser.add_argument("--child-first-image", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision-only", action="store_true", help="only the GPU-vs-CPU check")
    parser.add_argument("--partial", type=Path, help="write the numbers so far here after each phase")
    parser.add_argument("--modes", default="eager,graphs,compiled",
                        help="which graph modes to time (comma-separated: eager, graphs, compiled, "
                             "regional, aot = the regional / AOT compile modes beside --compile-mode)")
    parser.add_argument("--skip-precision", action="store_true", help="no GPU-vs-CPU image checks")
    parser.add_argument("--profile", action="store_true",
                        help="profile one seed re-run per mode: host waits and the costliest ops")
    args = parser.parse_args()
    args.modes = set(args.modes.split(","))
    device = "cpu" if args.tiny and args.device != "cuda" else args.device
    size = args.size or (64 if args.tiny else 512)
    # On the CPU there are no CUDA graphs: "compile" stands in (regional and AOT compile run as
    # they are, their UNet graph falling back to running uncaptured); "off" skips the compiled part.
    compile_mode = args.compile_mode if device == "cuda" or args.compile_mode in ("off", REGIONAL.id, AOT.id) \
        else "compile"
    folder = args.model_dir or Path(tempfile.gettempdir()) / (
        "latentgraph_bench_tiny" if args.tiny else "latentgraph_bench_sd15")
    build_model(folder, TINY if args.tiny else SD15)
    log(f"model ready in {folder}")

    if args.precision_only:
        print(json.dumps({"sd15": precision_check(folder), "bundled": bundled_divergence()}))
        return
    if args.child_first_image:
        print(json.dumps(first_image_seconds(folder, device, size, args.steps, compile_mode)))
        return

    cuda = device == "cuda"
    out: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu",
                 "torch": torch.__version__, "size": size, "steps": args.steps, "tiny": args.tiny}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.float16 if cuda else torch.float32

    memory = DeviceMemory(cuda)
    peak_reset, peak_gib = memory.reset, memory.peak_gib

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

    # ---- the graph in each mode: eager, CUDA graphs (no compile), compiled ----
    def measure_mode(mode: str, label: str, fresh: bool = True) -> dict:
        """Full runs (text encode, sampler, decode), seed re-runs with and without previews and
        trace, peak VRAM, and the image against the stock pipeline's. ``fresh``: drop loaded
        models first (a compiled model loaded just before is reused instead)."""
        if fresh:
            MODEL_CACHE.clear()
        graph, ids = make_graph(folder, device, size, args.steps, mode)
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

        start = time.perf_counter()
        run()
        sync()
        first_s = time.perf_counter() - start
        peak_reset()  # the steady state: loading (QKV fusing, say) has its own transient peak
        full_run()
        graph.set_param(ids["noise"], "seed", 0)
        executor.clear_cache()
        image = np.asarray(run().outputs[ids["preview"]]["images"][0]).astype(int)
        peak = peak_gib()
        full_s = median_time(full_run, args.repeats, sync)
        rerun_s = median_time(seed_rerun, args.repeats, sync)
        bare_s = median_time(lambda: seed_rerun(previews=False, keep_trace=False), args.repeats, sync)
        result = {"s": round(full_s, 4), "vs_stock": round(full_s / stock_s, 3),
                  "seed_rerun_s": round(rerun_s, 4), "seed_rerun_bare_s": round(bare_s, 4),
                  "preview_overhead_pct": round(100 * (rerun_s - bare_s) / bare_s, 2),
                  "peak_vram_gib": round(peak, 3), "first_run_s": round(first_s, 2),
                  "max_pixel_diff_vs_stock": int(np.abs(image - stock_array).max())}
        if cuda and args.profile:
            result["profile"] = profile_syncs(seed_rerun, label)
        loaded = MODEL_CACHE.get(str(folder), device, "auto", "", mode)
        parts = {"unet": loaded.unet.graphed}
        parts.update({f"clip{i or ''}": e.graphed for i, e in enumerate(loaded.clip.encoders, 0)})
        for part, graphed in parts.items():
            if graphed is not None:
                result[f"{part}_graphs"] = graphed.disabled_reason or f"{graphed.captures} captured"
        if mode == AOT.id:
            result["aot_packages"] = aot_status(loaded)
        log(f"{label}: {result}")
        return result

    stock_array = np.asarray(stock_image).astype(int)
    modes = {label: mode for label, mode in (("eager", "off"), ("graphs", "cuda_graphs"))
             if label in args.modes}
    for label, mode in modes.items():
        try:
            out[label] = measure_mode(mode, label)
        except Exception as exc:  # keep what was measured; say what broke
            import traceback

            traceback.print_exc()
            out[label] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        save_partial(out, args.partial)
    # The headline "eager" is the default path without torch.compile: the eager kernels,
    # replayed from CUDA graphs where the device has them ("graphs"); "eager" alone is the
    # compile-off, graphs-off mode, reported beside it.
    default = out.get("graphs") if "s" in out.get("graphs", {}) else out.get("eager", {})
    out.update(eager_s=default.get("s"), eager_mode="cuda_graphs" if default is out.get("graphs") else "off",
               seed_rerun_s=default.get("seed_rerun_s"),
               preview_overhead_pct=default.get("preview_overhead_pct"),
               eager_vs_stock=default.get("vs_stock"),
               eager_no_graphs_s=out.get("eager", {}).get("s"))

    # ---- graph, compiled: the --compile-mode (label "compiled"), and "regional" if asked ----
    def measure_compiled(label: str, mode: str) -> None:
        """Cold compile (this process), steady-state timings, then the warm start in a second
        process reusing the on-disk caches; into ``out[label]`` and, for "compiled", the
        top-level keys. A failure is recorded and the rest of the benchmark goes on."""
        MODEL_CACHE.clear()
        peak_reset()
        entry: dict = {"mode": mode}
        out[label] = entry
        try:
            cold = first_image_seconds(folder, device, size, args.steps, mode)["first_image_s"]
            log(f"{label}: compile cold {cold:.1f}s")
            entry.update(measure_mode(mode, label, fresh=False), compile_cold_s=round(cold, 2))
            save_partial(out, args.partial)
        except Exception as exc:  # keep the other numbers; say what broke
            import traceback

            traceback.print_exc()
            entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
            return
        child = subprocess.run(
            [sys.executable, __file__, "--child-first-image", "--model-dir", str(folder),
             "--steps", str(args.steps), "--size", str(size), "--compile-mode", mode,
             "--device", device] + (["--tiny"] if args.tiny else []),
            capture_output=True, text=True, cwd=ROOT)
        try:
            warm = json.loads(child.stdout.strip().splitlines()[-1])
            entry.update(compile_warm_s=round(warm["first_image_s"], 2), compile_warm_breakdown=warm)
        except (IndexError, ValueError, KeyError):
            print(child.stderr[-3000:], file=sys.stderr)
        log(f"{label}: compile warm (second process) {entry.get('compile_warm_s')}")
        save_partial(out, args.partial)

    if compile_mode != "off" and "compiled" in args.modes:
        measure_compiled("compiled", compile_mode)
    else:
        out["compile_error"] = "skipped (--compile-mode off or not in --modes)"
    if "regional" in args.modes and compile_mode != REGIONAL.id:
        measure_compiled("regional", REGIONAL.id)
    if "aot" in args.modes and compile_mode != AOT.id:
        measure_compiled("aot", AOT.id)
    compiled = out.get("compiled", {})
    if "error" in compiled:
        out["compile_error"] = compiled["error"]
    compiled_s = compiled.get("s")
    if compiled_s is not None:
        out.update(compiled_s=compiled_s, compiled_vs_stock=compiled["vs_stock"],
                   compiled_preview_overhead_pct=compiled["preview_overhead_pct"])
    compile_cold_s, compile_warm_s = compiled.get("compile_cold_s"), compiled.get("compile_warm_s")

    # ---- correctness: graph on this device vs stock, and GPU fp16 vs CPU fp32 ----
    gpu_cpu = precision_check(folder) if cuda and not args.skip_precision else None
    log(f"precision: {gpu_cpu}")
    if cuda and not args.skip_precision:
        out["bundled_divergence"] = bundled_divergence()
        log(f"bundled divergence: {out['bundled_divergence']}")

    out.update({
        "compile_mode": compile_mode,
        # The default path is what must stay under the stock pipeline's peak (each mode's own
        # peak is in its entry).
        "peak_vram_gib": default.get("peak_vram_gib"),
        "compile_cold_s": compile_cold_s,
        "compile_warm_s": compile_warm_s,
        "graph_vs_stock_max_pixel_diff": default.get("max_pixel_diff_vs_stock"),
        "gpu_vs_cpu_fp32": gpu_cpu,
    })
    print(f"{'':44} seconds  vs stock  VRAM GiB  previews+trace  "
          f"({out['device']}, {size}x{size}, {args.steps} steps, CFG 7.5, Euler)")
    print(f"{'stock StableDiffusionPipeline':44} {stock_s:7.4f}  {1:8.3f}  {stock_peak:8.3f}")
    for label in ("eager", "graphs", "compiled", "regional", "aot"):
        row = out.get(label) or {}
        if not row and label != "compiled":  # modes not asked for
            continue
        if "s" not in row:
            print(f"{'graph ' + label:44} failed: {row.get('error', out.get('compile_error'))}")
            continue
        print(f"{'graph ' + label + ' (full)':44} {row['s']:7.4f}  {row['vs_stock']:8.3f}  "
              f"{row['peak_vram_gib']:8.3f}  {row['preview_overhead_pct']:6.2f} %")
        print(f"{'graph ' + label + ' seed re-run (bare)':44} {row['seed_rerun_s']:7.4f} "
              f"({row['seed_rerun_bare_s']:.4f})  pixel diff vs stock {row['max_pixel_diff_vs_stock']}")
    for label in ("compiled", "regional", "aot"):
        row = out.get(label) or {}
        if "compile_cold_s" in row:
            print(f"{label} ({row['mode']}): compile cold {row['compile_cold_s']}s warm "
                  f"{row.get('compile_warm_s')}s ({row.get('compile_warm_breakdown')})")
    save_partial(out, args.partial)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
