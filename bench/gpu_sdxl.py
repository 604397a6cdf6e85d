"""SDXL on the GPU (issue 32, SDXL half): the stock pipelines against the graph, mode by mode.

Random fp16 weights in the real SDXL base and refiner architectures (our bundled configs; weights do
not change speed), 1024x1024, 30 Euler steps, CFG 5. The stock StableDiffusionXLPipeline runs as
users run it (SDPA, its VAE upcast to fp32 for the decode); the graph keeps that VAE in fp32 too
(the fp16-safe path, ``vae_dtype`` below). Measured, in this order (each phase's numbers are written
to --partial as soon as it ends, so a time limit loses only the phase it cut):

1. tiny models in fp32 on the GPU against the CPU (SDXL and SD 1.5, compile off and CUDA graphs):
   max pixel difference, which must be <= 1 level (skipped without CUDA);
2. stock pipeline: median seconds per image over --repeats after a warm-up, peak VRAM;
3. stock base + refiner split (--refiner-steps of --steps on the refiner: 25 + 5) through the
   pipelines' ``denoising_end``/``denoising_start``;
4. the graph in each of --modes (eager = compile off, graphs = the default CUDA graphs, compiled =
   --compile-mode, regional, aot): first run (load + capture or compile), seconds per image, seed
   re-run (text encoders from the cache), peak VRAM, max pixel difference against the stock image;
   the default mode's split graph (base then refiner, as sdxl_base_refiner.json) after the default.

    python bench/gpu_sdxl.py                                  # CUDA: default + AOT (--modes graphs,aot)
    python bench/gpu_sdxl.py --modes graphs,compiled,aot      # + compile with torch's CUDA graphs
    python bench/gpu_sdxl.py --tiny --steps 4 --repeats 1     # CPU sanity check (tiny SDXL + refiner)

On the CPU there are no CUDA graphs ("graphs" runs eagerly) and "compiled" runs as plain "compile";
--compile-mode off skips it, saying so. Prints a table, then JSON last: device, versions, settings;
tiny_fp32_gpu_vs_cpu ({sdxl, sd15: {off, cuda_graphs: {max, mean}, within_1_level}, tf32} or
{skipped}); stock and stock_split ({s, peak_vram_gib, ...}); one entry per mode label and
graph_split ({s, seed_rerun_s, vs_stock, peak_vram_gib, first_run_s, max_pixel_diff_vs_stock,
cuda_graphs, vae_dtype, aot_packages}, or {skipped} / {error}); targets (graphs_vs_stock_le_0.8,
best_compiled, compiled_vs_stock_le_0.5, peak_vram_le_stock per mode); max_pixel_diff_vs_stock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import DeviceMemory, median_time  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor, Graph  # noqa: E402
from nodes.accelerators import AOT, CUDA_GRAPHS, OFF, REGIONAL  # noqa: E402
from nodes.models import MODEL_CACHE  # noqa: E402
from nodes.recipes import base_refiner_graph  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse"
TINY_PROMPT = "an astronaut"  # the tiny models' character tokenizer holds 22 characters
SPLIT_NEGATIVE = "blurry"  # the refiner encodes an empty negative, the base zeros it: a real one for both
CFG = 5.0
MODE_LABELS = ("eager", "graphs", "compiled", "regional", "aot")
COMPILED_LABELS = ("compiled", "regional", "aot")


# ----- models ---------------------------------------------------------------------------------
def built_once(folder: Path, build) -> Path:
    """``build(folder)`` unless a finished build is there: one cut short by a time limit is redone."""
    done = folder / ".latentgraph_built"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        build(folder)
        done.touch()
    return folder


def sdxl_folder(tiny: bool, refiner: bool = False, model_dir: Path | None = None) -> Path:
    """The base (or refiner) folder the SDXL benches share: tiny random models for a CPU try, the
    real architecture with random fp16 weights otherwise; ``model_dir`` is used as it is."""
    if model_dir is not None:
        return model_dir
    name = f"latentgraph_sdxl_{'refiner' if refiner else 'base'}{'_tiny' if tiny else ''}"
    folder = Path(tempfile.gettempdir()) / name
    if tiny:
        from nodes.tiny_models import make_tiny_sdxl

        return built_once(folder, lambda f: make_tiny_sdxl(f, refiner=refiner))
    from sdxl_single_file import random_family_folder, random_sdxl_folder

    if refiner:
        return built_once(folder, lambda f: random_family_folder(f, "sdxl_refiner", 1))
    return built_once(folder, random_sdxl_folder)


# ----- graphs ---------------------------------------------------------------------------------
def load_params(graph: Graph, node: str, device: str, mode: str, dtype: str = "auto") -> None:
    graph.set_param(node, "device", device)
    graph.set_param(node, "dtype", dtype)
    graph.set_param(node, "compile", mode)


def split_graph(base: Path, refiner: Path, prompt: str, size: int, steps: int, split: int, device: str,
                mode: str) -> tuple[Graph, dict[str, str]]:
    """Base for ``split`` steps, then the refiner (nodes.recipes.base_refiner_graph), both loads on
    ``device`` in ``mode``."""
    g, n = base_refiner_graph(str(base), str(refiner), prompt=prompt, negative=SPLIT_NEGATIVE, seed=0,
                              steps=steps, split=split, cfg=CFG, size=size)
    for model in ("base", "refiner"):
        load_params(g, n[model], device, mode)
    n["positive"] = n["base+"]
    return g, n


def split_fraction(scheduler_config: dict, steps: int, split: int) -> float:
    """The ``denoising_end``/``denoising_start`` at which the pipelines hand over after exactly
    ``split`` steps: their cutoff timestep halfway between the last base and first refiner step."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.tolist()
    total = scheduler.config.num_train_timesteps
    fraction = 1 - (timesteps[split - 1] + timesteps[split]) / 2 / total
    cutoff = int(round(total - fraction * total))  # diffusers' own rounding
    assert sum(t >= cutoff for t in timesteps) == split, (timesteps, fraction)
    return fraction


def image_of(result, preview: str) -> np.ndarray:
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[preview]["images"][0]).astype(int)


def error_text(exc: Exception) -> str:
    """The exception for the JSON: its start and, for a node's traceback, the end that says what broke."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 600 else f"{text[:150]} ... {text[-450:]}"


def pixel_diff(a, b) -> dict:
    diff = np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int))
    return {"max": int(diff.max()), "mean": round(float(diff.mean()), 3)}


# ----- correctness: fp32 on the GPU against the CPU -------------------------------------------
def tiny_gpu_vs_cpu(cuda: bool, gpu: str = "cuda") -> dict:
    """Tiny SDXL and SD 1.5 in fp32, graph on the GPU (compile off, CUDA graphs) against the
    graph on the CPU, same seed: within 1/255. The TF32 switches are recorded (TF32 convolutions
    would be the first suspect of a miss)."""
    if not cuda:
        return {"skipped": "no CUDA device: fp32 GPU against CPU needs one"}
    from gpu_txt2img import make_graph

    from nodes.tiny_models import make_tiny_sd, make_tiny_sdxl

    out: dict = {"tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}}
    with tempfile.TemporaryDirectory() as work:
        for family, make in (("sdxl", make_tiny_sdxl), ("sd15", make_tiny_sd)):
            try:
                folder = make(Path(work) / family)

                def image(device: str, mode: str, folder: Path = folder) -> np.ndarray:
                    graph, ids = make_graph(folder, device, 32, 8, mode, dtype="fp32", prompt=TINY_PROMPT, cfg=CFG)
                    return image_of(Executor().run(graph), ids["preview"])

                cpu = image("cpu", OFF.id)
                row = {mode: pixel_diff(image(gpu, mode), cpu) for mode in (OFF.id, CUDA_GRAPHS.id)}
                row["within_1_level"] = all(d["max"] <= 1 for d in row.values())
                if not row["within_1_level"] and gpu.startswith("cuda"):  # is it TF32 convolutions?
                    saved, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
                    try:
                        row["off_without_tf32_conv"] = pixel_diff(image(gpu, OFF.id), cpu)
                    finally:
                        torch.backends.cudnn.allow_tf32 = saved
                out[family] = row
            except Exception as exc:
                out[family] = {"error": error_text(exc)}
    MODEL_CACHE.clear()
    return out


# ----- the benchmark --------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random SDXL (and refiner) on the CPU")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--refiner-steps", type=int, help="of --steps, on the refiner (default steps/6: 5 of 30)")
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, help="an SDXL base folder (default: random weights in /tmp)")
    parser.add_argument("--refiner-dir", type=Path, help="an SDXL refiner folder (default: random weights in /tmp)")
    parser.add_argument("--modes", default="graphs,aot",
                        help="graph modes, comma-separated: eager (compile off), graphs or default (CUDA graphs), "
                             "compiled (--compile-mode), regional, aot")
    parser.add_argument("--compile-mode", default="compile_cuda_graphs",
                        choices=("off", "compile", "compile_cuda_graphs", REGIONAL.id, AOT.id),
                        help="the mode timed as 'compiled'; off skips it")
    parser.add_argument("--no-split", action="store_true", help="skip the base + refiner split")
    parser.add_argument("--skip-precision", action="store_true", help="skip the tiny fp32 GPU-vs-CPU check")
    parser.add_argument("--partial", type=Path, help="write the numbers so far here after each phase")
    args = parser.parse_args()
    labels = {"graphs" if m == "default" else m for m in args.modes.split(",") if m}
    unknown = labels - set(MODE_LABELS)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; expected {', '.join(MODE_LABELS)} or default")
    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    size = args.size or (32 if args.tiny else 1024)
    prompt = TINY_PROMPT if args.tiny else PROMPT
    refiner_steps = args.refiner_steps or max(1, round(args.steps / 6))
    split = min(max(args.steps - refiner_steps, 1), args.steps - 1)
    # As gpu_txt2img.py: on the CPU "compile" stands in for the CUDA-graph compile modes.
    compile_mode = args.compile_mode if cuda or args.compile_mode in ("off", REGIONAL.id, AOT.id) else "compile"
    modes = {"eager": OFF.id, "graphs": CUDA_GRAPHS.id, "compiled": compile_mode, "regional": REGIONAL.id,
             "aot": AOT.id}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.float16 if cuda else torch.float32
    memory = DeviceMemory(cuda)
    peak_reset, peak_gib = memory.reset, memory.peak_gib
    out: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                 "size": size, "steps": args.steps, "cfg": CFG, "tiny": args.tiny, "modes": sorted(labels),
                 "compile_mode": compile_mode}

    def save() -> None:
        if args.partial is not None:
            args.partial.write_text(json.dumps(out, indent=1))

    def phase(name: str, fn) -> None:
        """Run one phase; a failure is recorded under its name and the next phase goes on."""
        started = time.perf_counter()
        try:
            fn()
        except Exception as exc:
            import traceback

            traceback.print_exc()
            out[name] = {**(out.get(name) or {}), "error": error_text(exc)}
            MODEL_CACHE.clear()
        print(f"[{name}: {time.perf_counter() - started:.1f}s]", file=sys.stderr, flush=True)
        save()

    if not args.skip_precision:
        phase("tiny_fp32_gpu_vs_cpu", lambda: out.update(tiny_fp32_gpu_vs_cpu=tiny_gpu_vs_cpu(cuda)))
    start = time.perf_counter()
    folder = sdxl_folder(args.tiny, model_dir=args.model_dir)
    out["build_s"] = round(time.perf_counter() - start, 1)

    # ----- stock pipelines: the image, then the base + refiner split --------------------------
    import diffusers
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    out["diffusers"] = diffusers.__version__
    stock_images: dict = {}
    pipes: dict = {}

    def stock_phase() -> None:
        pipe = StableDiffusionXLPipeline.from_pretrained(str(folder), dtype=dtype, local_files_only=True,
                                                         add_watermarker=False).to(device)
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # the graph's "Euler"
        pipes["base"] = pipe

        def stock(seed: int = 0):
            return pipe(prompt, negative_prompt=None, height=size, width=size, num_inference_steps=args.steps,
                        guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(seed),
                        output_type="np").images[0]

        stock()  # warm-up
        peak_reset()
        out["stock"] = {"s": round(median_time(stock, args.repeats, sync), 4)}
        out["stock"]["peak_vram_gib"] = round(peak_gib(), 3)
        out["stock"]["vae_force_upcast"] = bool(getattr(pipe.vae.config, "force_upcast", False))  # fp32 decodes
        stock_images["txt2img"] = (stock(0) * 255).round().astype(int)

    phase("stock", stock_phase)
    refiner_folder = None

    def stock_split_phase() -> None:
        nonlocal refiner_folder
        start = time.perf_counter()
        refiner_folder = sdxl_folder(args.tiny, refiner=True, model_dir=args.refiner_dir)
        out["refiner_build_s"] = round(time.perf_counter() - start, 1)
        base = pipes["base"]
        refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            str(refiner_folder), dtype=dtype, local_files_only=True, add_watermarker=False).to(device)
        refiner.set_progress_bar_config(disable=True)
        refiner.scheduler = EulerDiscreteScheduler.from_config(refiner.scheduler.config)
        fraction = split_fraction(dict(base.scheduler.config), args.steps, split)
        out["stock_split"] = {"base_steps": split, "refiner_steps": args.steps - split,
                              "denoising_end": round(fraction, 4)}

        def stock_split(seed: int = 0):
            latents = base(prompt, negative_prompt=SPLIT_NEGATIVE, height=size, width=size,
                           num_inference_steps=args.steps, denoising_end=fraction, guidance_scale=CFG,
                           generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
            return refiner(prompt, negative_prompt=SPLIT_NEGATIVE, image=latents, num_inference_steps=args.steps,
                           denoising_start=fraction, guidance_scale=CFG,
                           generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images[0]

        stock_split()  # warm-up
        peak_reset()
        out["stock_split"].update(s=round(median_time(stock_split, args.repeats, sync), 4),
                                  peak_vram_gib=round(peak_gib(), 3))
        stock_images["split"] = (stock_split(0) * 255).round().astype(int)

    if not args.no_split and "base" in pipes:
        phase("stock_split", stock_split_phase)
    pipes.clear()  # frees the pipelines' VRAM before the graph loads its own copies
    import gc

    gc.collect()
    peak_reset()

    # ----- the graph -------------------------------------------------------------------------
    from gpu_txt2img import aot_status, make_graph

    def measure(graph: Graph, ids: dict, reference: np.ndarray | None, stock_s: float | None) -> dict:
        """First run, then full runs (text encoders too) and seed re-runs (text from the cache)."""
        executor = Executor()

        def run():
            result = executor.run(graph)
            assert result.status == "finished", result.error and result.error.traceback
            return result

        peak_reset()
        started = time.perf_counter()
        run()
        sync()
        row: dict = {"first_run_s": round(time.perf_counter() - started, 2),  # load + captures / compile
                     "first_run_peak_vram_gib": round(peak_gib(), 3)}
        peak_reset()  # the steady state from here

        def full():
            executor.clear_cache()
            run()

        seeds = iter(range(1, 10**6))

        def seed_rerun():
            graph.set_param(ids["noise"], "seed", next(seeds))
            assert ids["positive"] not in run().executed, "the text encodes should come from the cache"

        row["s"] = round(median_time(full, args.repeats, sync), 4)
        row["seed_rerun_s"] = round(median_time(seed_rerun, args.repeats, sync), 4)
        row["peak_vram_gib"] = round(peak_gib(), 3)
        graph.set_param(ids["noise"], "seed", 0)
        executor.clear_cache()
        image = image_of(run(), ids["preview"])
        if stock_s:
            row["vs_stock"] = round(row["s"] / stock_s, 3)
        if reference is not None:
            row["max_pixel_diff_vs_stock"] = int(np.abs(image - reference).max())
        return row

    def describe(row: dict, source: Path, mode: str) -> None:
        """Which parts were captured or compiled, and the decode dtype (the fp16-safe VAE path)."""
        loaded = MODEL_CACHE.get(str(source), device, "auto", "", mode)
        parts = {"unet": loaded.unet.graphed, **{f"text_encoder_{i + 1}": e.graphed
                                                 for i, e in enumerate(loaded.clip.encoders)}}
        row["cuda_graphs"] = {k: (g.disabled_reason or f"{g.captures} captured") if g else "off"
                              for k, g in parts.items()}
        row["vae_dtype"] = str(loaded.vae.vae.dtype).removeprefix("torch.")
        if mode == AOT.id:
            row["aot_packages"] = aot_status(loaded)

    stock_s = out.get("stock", {}).get("s")

    def mode_phase(label: str) -> None:
        mode = modes[label]
        out[label] = {"mode": mode}
        MODEL_CACHE.clear()
        graph, ids = make_graph(folder, device, size, args.steps, mode, prompt=prompt, cfg=CFG)
        out[label].update(measure(graph, ids, stock_images.get("txt2img"), stock_s))
        describe(out[label], folder, mode)

    def graph_split_phase() -> None:
        graph, ids = split_graph(folder, refiner_folder, prompt, size, args.steps, split, device, CUDA_GRAPHS.id)
        out["graph_split"] = {"mode": CUDA_GRAPHS.id, "base_steps": split, "refiner_steps": args.steps - split}
        out["graph_split"].update(measure(graph, ids, stock_images.get("split"), out["stock_split"].get("s")))

    for label in MODE_LABELS:
        if label not in labels:
            continue
        if label == "compiled" and compile_mode == "off":
            out[label] = {"skipped": "--compile-mode off"}
            continue
        phase(label, lambda label=label: mode_phase(label))
        if label == "graphs" and "s" in out.get("stock_split", {}):
            phase("graph_split", graph_split_phase)
    if "graphs" not in labels and not args.no_split:
        out["graph_split"] = {"skipped": "the split is timed in the default mode: add graphs to --modes"}

    # ----- targets and the table --------------------------------------------------------------
    timed = {label: out[label] for label in MODE_LABELS if "s" in out.get(label, {})}
    compiled = {label: row for label, row in timed.items() if label in COMPILED_LABELS}
    best = min(compiled, key=lambda label: compiled[label]["s"]) if compiled else None
    stock_peak = out.get("stock", {}).get("peak_vram_gib")
    out["targets"] = {
        "graphs_vs_stock_le_0.8": timed["graphs"]["vs_stock"] <= 0.8 if "graphs" in timed and stock_s else None,
        "best_compiled": best,
        "compiled_vs_stock_le_0.5": compiled[best]["vs_stock"] <= 0.5 if best and stock_s else None,
        "peak_vram_le_stock": {label: row["peak_vram_gib"] <= stock_peak for label, row in timed.items()}
        if stock_peak is not None else None,
    }
    out["max_pixel_diff_vs_stock"] = {label: row.get("max_pixel_diff_vs_stock")
                                      for label, row in {**timed, "split": out.get("graph_split", {})}.items()}
    save()
    print(f"{'':36} seconds  seed re-run  vs stock  VRAM GiB  pixel diff  "
          f"({out['device']}, {size}x{size}, {args.steps} steps, CFG {CFG}, Euler)")
    for label in ("stock", "stock_split", "eager", "graphs", "graph_split", *COMPILED_LABELS):
        row = out.get(label)
        if row is None:
            continue
        name = {"stock": "stock StableDiffusionXLPipeline", "stock_split": f"stock base+refiner {split}+"
                f"{args.steps - split}", "graph_split": "graph base+refiner (graphs)"}.get(label, f"graph {label}")
        if "s" not in row:
            print(f"{name:36} " + (f"skipped: {row['skipped']}" if "skipped" in row else f"failed: {row.get('error')}"))
            continue
        print(f"{name:36} {row['s']:7.4f}  {row.get('seed_rerun_s', ''):>11}  {row.get('vs_stock', ''):>8}  "
              f"{row['peak_vram_gib']:8.3f}  {row.get('max_pixel_diff_vs_stock', ''):>10}")
    print("targets:", json.dumps(out["targets"]))
    print("tiny fp32 GPU vs CPU:", json.dumps(out.get("tiny_fp32_gpu_vs_cpu")))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
