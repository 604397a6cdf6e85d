"""Time to first image (issue 33): cold start, checkpoint loading, model switches, VAE decode and
the editor's launch to its first image, each next to its baseline and target.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/first_image.py [--files DIR] [--repeats 3]
        [--only cold,load,sdxl,switch,decode,editor] [--sdxl]

``--files DIR`` builds (once) and keeps the real-size random-weight checkpoints there: two SD 1.5
files (LDM layout, fp16, ~2 GB each, different seeds) and with ``--sdxl`` an SDXL base file
(SGM layout, ~6.9 GB). Without it they are built in a temp folder and deleted at the end.
Every figure is measured in fresh processes, the contenders alternated, medians reported.
Prints JSON last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import PeakAnon, load_average, reset_peak, rss_gib, warm_page_cache  # noqa: E402

TARGETS = {  # figure: (baseline from the issue, target); seconds unless said
    "cold_run_ratio": (1.09, 0.7),
    "sd15_load_s": (7.4, 3.0),
    "sd15_second_load_s": (None, 1.5),
    "sd15_peak_ram_over_file": (None, 1.5),
    "sdxl_load_s": (12.54, 10.0),
    "switch_to_first_step_s": (None, 0.5),
    "vae_decode_ratio": (4.9 / 4.0, 1.0),
    "editor_first_image_s": (None, 4.0),
}
PROMPT = "a red circle and a blue square on a white background"


# ----- the checkpoints -------------------------------------------------------------------
def build_file(out: Path, family_id: str, seed: int) -> Path:
    if out.is_file():
        return out
    from safetensors.torch import save_file
    from sdxl_single_file import random_family_folder

    from nodes.ldm_export import folder_to_ldm, sdxl_folder_to_sgm

    work = out.parent / f"{out.stem}_diffusers"
    convert = sdxl_folder_to_sgm if family_id.startswith("sdxl") else folder_to_ldm
    save_file(convert(random_family_folder(work, family_id, seed)), str(out) + ".part")
    os.replace(str(out) + ".part", out)
    shutil.rmtree(work)
    return out


def build_all(folder: Path, sdxl: bool) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"a": folder / "sd15_random_a.safetensors", "b": folder / "sd15_random_b.safetensors"}
    if sdxl:
        files["xl"] = folder / "sdxl_random_base.safetensors"
    for name, file in files.items():
        if not file.is_file():
            child([sys.executable, __file__, "--build-one", str(file), "sdxl_base" if name == "xl" else "sd1",
                   "1" if name == "b" else "0"])
    return files


# ----- helpers ---------------------------------------------------------------------------
def child(argv: list[str], env: dict | None = None) -> dict:
    """Run a fresh process; its JSON last line."""
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(f"{argv[1:4]} failed:\n{out.stderr[-3000:]}")
    lines = [line for line in out.stdout.strip().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


# ----- 1. cold headless run ----------------------------------------------------------------
DIFFUSERS_SCRIPT = """
import sys, torch
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1], torch_dtype=torch.float32, safety_checker=None,
                                               feature_extractor=None, requires_safety_checker=False)
image = pipe(sys.argv[3], negative_prompt="", height=64, width=64, num_inference_steps=20, guidance_scale=2.5,
             generator=torch.Generator().manual_seed(42)).images[0]
image.save(sys.argv[2])
"""


def cold_runs(repeats: int, out_dir: Path) -> dict:
    """The bundled workflow through the CLI against the plain diffusers script, alternated."""
    from nodes.paths import bundled_model_dir

    workflow = ROOT / "resources" / "workflows" / "txt2img.json"
    ours = [sys.executable, "-m", "nodeeditor.cli", "run", str(workflow), "--output-dir", str(out_dir), "--quiet"]
    plain = [sys.executable, "-c", DIFFUSERS_SCRIPT, str(bundled_model_dir()), str(out_dir / "plain.png"), PROMPT]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    for index in range(repeats + 1):  # the first pair warms the page cache and is dropped
        for name, argv in (("ours", ours), ("plain", plain))[::1 if index % 2 else -1]:
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, cwd=ROOT, env=env)
            if index:
                times[name].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times["ours"], times["plain"])]
    return {"cold_run_s": round(statistics.median(times["ours"]), 2),
            "cold_plain_diffusers_s": round(statistics.median(times["plain"]), 2),
            "cold_run_ratio": round(statistics.median(ratios), 3)}



# ----- 2. single-file loads (a child process each) ------------------------------------------
def measure_load(file_a: str, file_b: str, dtype: str) -> dict:
    """Imports first (the editor does them while its window opens), then: load A from a warm page
    cache, peak memory meanwhile; switch to B with a budget that holds one model, so A is evicted;
    load A again (the second load); then with both in the cache, A once more."""
    import nodes  # noqa: F401
    from nodes import converted_copies, model_cache
    from nodes.models import MODEL_CACHE, import_libraries

    start = time.perf_counter()
    import_libraries()
    imports_s = time.perf_counter() - start
    import torch

    for file in filter(None, (file_a, file_b)):
        warm_page_cache(Path(file))
        copy = converted_copies.find_copy(Path(file), torch.float32, "")
        for part in sorted(copy.rglob("*.safetensors")) if copy else ():  # a load from it maps these
            warm_page_cache(part)
    size = Path(file_a).stat().st_size
    reset_peak()
    rss_before, _ = rss_gib()
    hits = converted_copies.hits
    with PeakAnon() as anon:
        anon_before = anon.peak
        start = time.perf_counter()
        MODEL_CACHE.get(file_a, "cpu", dtype)
        first_s = time.perf_counter() - start
    _, peak = rss_gib()
    model = MODEL_CACHE.bytes
    out = {"imports_s": imports_s, "first_s": first_s, "model_gib": model / 2**30,
           "from_copy": converted_copies.hits > hits,
           "peak_rss_over_file": (peak - rss_before) * 2**30 / size,
           "peak_anon_over_file": (anon.peak - anon_before) / size}
    start = time.perf_counter()
    converted_copies.wait_for_copies()  # written on a thread after the load; 0 s when none is
    out["copy_write_s"] = time.perf_counter() - start
    if file_b:
        os.environ[model_cache.BUDGET_ENV] = str(1.5 * model / 2**30)  # room for one
        start = time.perf_counter()
        MODEL_CACHE.get(file_b, "cpu", dtype)
        out["switch_s"] = time.perf_counter() - start
        converted_copies.wait_for_copies()
        hits = converted_copies.hits
        start = time.perf_counter()
        MODEL_CACHE.get(file_a, "cpu", dtype)
        out["second_s"] = time.perf_counter() - start
        out["second_from_copy"] = converted_copies.hits > hits
        os.environ[model_cache.BUDGET_ENV] = str(3 * model / 2**30)  # room for both
        MODEL_CACHE.get(file_b, "cpu", dtype)
        start = time.perf_counter()
        MODEL_CACHE.get(file_a, "cpu", dtype)
        out["cached_s"] = time.perf_counter() - start
        out["evictions"] = MODEL_CACHE.evictions
    return out


def measure_cold_load(file: str) -> dict:
    """Load model as the first thing a fresh process does (its imports included)."""
    start = time.perf_counter()
    import nodes  # noqa: F401
    from nodes.models import MODEL_CACHE

    MODEL_CACHE.get(file, "cpu", "auto")
    return {"cold_load_s": time.perf_counter() - start}


# ----- 3. switching between two cached checkpoints ------------------------------------------
def measure_switch(file_a: str, file_b: str, repeats: int) -> dict:
    """Both models cached (budget for both); a 256x256 txt2img graph on A, then B, alternated:
    time from Run to the denoise node starting (its first step), and to the end of that step."""
    import nodes  # noqa: F401
    from graphs import Executor
    from graphs import events as ev
    from nodes.recipes import txt2img_graph

    executor = Executor(settings={"previews": False})
    marks: dict[str, float] = {}

    graphs = {}
    for name, file in (("a", file_a), ("b", file_b)):
        graph, ids = txt2img_graph(file, prompt=PROMPT, steps=1, cfg=7.5, size=256)
        graph.set_param(ids["load"], "device", "cpu")
        graphs[name] = (graph, ids)

    def listen(event) -> None:
        if isinstance(event, ev.NodeStarted) and event.node_id == current["unet"]:
            marks.setdefault("started", time.perf_counter())
        if isinstance(event, ev.Progress) and event.node_id == current["unet"]:
            marks.setdefault("step", time.perf_counter())

    executor.events.subscribe(listen)
    starts, steps, seed = [], [], 0
    for index in range(2 * repeats + 2):  # the first pass over both loads them: not counted
        graph, ids = graphs["ab"[index % 2]]
        current = ids
        seed += 1
        graph.set_param(ids["noise"], "seed", seed)  # the sampler really runs
        marks.clear()
        start = time.perf_counter()
        result = executor.run(graph)
        assert result.status == "finished", result.error
        if index >= 2:
            starts.append(marks["started"] - start)
            steps.append(marks["step"] - start)
    from nodes.models import MODEL_CACHE

    fresh = []  # a new executor each time: the models are cached, the text encodes run again
    for index in range(2 * repeats):
        graph, ids = graphs["ab"[index % 2]]
        current = ids
        executor = Executor(settings={"previews": False})
        executor.events.subscribe(listen)
        marks.clear()
        start = time.perf_counter()
        assert executor.run(graph).status == "finished"
        fresh.append(marks["started"] - start)
    return {"to_first_step_s": statistics.median(starts), "to_first_step_done_s": statistics.median(steps),
            "uncached_encodes_to_first_step_s": statistics.median(fresh),
            "models_cached": len(MODEL_CACHE), "loads": MODEL_CACHE.loads}


# ----- 4. VAE decode ------------------------------------------------------------------------
def measure_decode(file: str, repeats: int, size: int) -> dict:
    """Our VAE decode node's work against StableDiffusionPipeline's decode + postprocess on the
    same VAE and latents, alternated; and the variants tried (channels_last, tiled)."""
    import torch
    from diffusers.image_processor import VaeImageProcessor

    import nodes  # noqa: F401
    from nodes.diffusion import decode_latent
    from nodes.models import MODEL_CACHE
    from nodes.values import Latent

    vae = MODEL_CACHE.get(file, "cpu", "auto").vae
    latents = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    processor = VaeImageProcessor(vae_scale_factor=8)

    def timed(fn, before=lambda: None, after=lambda: None) -> float:
        before()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        after()
        return elapsed

    def pipeline():
        with torch.no_grad():
            image = vae.vae.decode(latents / vae.vae.config.scaling_factor, return_dict=False)[0]
            return processor.postprocess(image, output_type="pil", do_denormalize=[True])

    def ours():
        return decode_latent(vae, Latent(latents))

    layout = {"before": lambda: vae.vae.to(memory_format=torch.channels_last),
              "after": lambda: vae.vae.to(memory_format=torch.contiguous_format)}
    # ours and the pipeline alternated; the variants after them, each against ours again (the
    # first decode after a change of memory layout is slow, so a variant must not precede ours)
    times: dict[str, list[float]] = {"ours": [], "pipeline": []}
    pipeline(), ours()  # warm-up
    for index in range(repeats):
        for name, fn in (("ours", ours), ("pipeline", pipeline))[:: 1 if index % 2 else -1]:
            times[name].append(timed(fn))
    threads = torch.get_num_threads()
    variants = {"channels_last": layout,
                "one_thread": {"before": lambda: torch.set_num_threads(1), "after": lambda: torch.set_num_threads(threads)}}
    if size >= 768:
        variants["tiled"] = {"before": vae.vae.enable_tiling, "after": vae.vae.disable_tiling}
    for name, switch in variants.items():
        switch["before"]()
        ours()  # warm-up in the new setting
        times[name] = [timed(ours) for _ in range(repeats)]
        switch["after"]()
        ours()
    out = {f"{name}_s": statistics.median(t) for name, t in times.items()}
    out["ratio"] = statistics.median(a / b for a, b in zip(times["ours"], times["pipeline"]))
    out["threads"] = torch.get_num_threads()
    return out


# ----- 5. editor: launch to the Save node's image ---------------------------------------------
def editor_child(out_dir: str) -> dict:
    """Open the editor on the bundled workflow, press Run as soon as the window shows, exit when
    Save image has written its file. Times from the process's start (the parent's clock)."""
    spawned = float(os.environ["FIRST_IMAGE_SPAWNED"])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QStandardPaths
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    QStandardPaths.setTestModeEnabled(True)
    from PySide6.QtCore import QTimer

    from nodeeditor.app import open_main_window

    window = open_main_window(output_dir=out_dir)
    shown = time.time() - spawned
    window.runs.run()
    marks: dict[str, float] = {}

    def look() -> None:  # from the event loop, as the app runs (a processEvents loop holds the GIL more)
        if any(Path(out_dir).glob("*.png")):
            marks["image"] = time.time() - spawned
            app.quit()

    timer = QTimer()
    timer.timeout.connect(look)
    timer.start(10)
    app.exec()
    first_image = marks["image"]
    window.worker.shutdown()
    return {"window_shown_s": shown, "first_image_s": first_image}


def editor_runs(repeats: int) -> dict:
    shown, first = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            result = child([sys.executable, __file__, "--editor-child", out],
                           env={"FIRST_IMAGE_SPAWNED": repr(time.time()), "QT_QPA_PLATFORM": "offscreen"})
        shown.append(result["window_shown_s"])
        first.append(result["first_image_s"])
    return {"editor_window_shown_s": round(statistics.median(shown), 2),
            "editor_first_image_s": round(statistics.median(first), 2), "editor_first_image_all_s": first}



def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def measure_all(args, files: dict[str, Path]) -> dict:
    only = set(args.only.split(","))
    me, a, b = [sys.executable, __file__], str(files["a"]), str(files["b"])
    figures: dict[str, float] = {}
    extra: dict = {"load_average_start": load_average(), "omp_threads": os.environ.get("OMP_NUM_THREADS", "default")}
    if "cold" in only:
        with tempfile.TemporaryDirectory() as out:
            extra.update(cold_runs(args.repeats, Path(out)))
        figures["cold_run_ratio"] = extra["cold_run_ratio"]
    if "load" in only:
        loads, colds, halves, mapped = [], [], [], []
        for _ in range(args.repeats):  # alternated: fp32 (auto), a cold process, fp16, fp32 from the copy
            with tempfile.TemporaryDirectory() as copies:  # each round converts afresh
                env = {"LATENTGRAPH_CONVERTED_DIR": copies}
                loads.append(child(me + ["--measure-load", a, b, "auto"], env))
                colds.append(child(me + ["--measure-cold-load", a], env))
                halves.append(child(me + ["--measure-load", a, "", "fp16"], env))
                mapped.append(child(me + ["--measure-load", a, "", "auto"], env))
        figures.update(sd15_load_s=median_of(loads, "first_s"), sd15_second_load_s=median_of(loads, "second_s"),
                       sd15_peak_ram_over_file=median_of(halves, "peak_rss_over_file"))
        extra.update(sd15_second_load_from_copy=all(run["second_from_copy"] for run in loads),
                     sd15_copy_write_s=median_of(loads, "copy_write_s"),
                     sd15_fresh_process_load_from_copy_s=median_of(mapped, "first_s"),
                     sd15_load_from_copy_used=all(run["from_copy"] for run in mapped),
                     sd15_load_from_copy_peak_anon_over_file=median_of(mapped, "peak_anon_over_file"))
        extra.update(sd15_file_gib=round(files["a"].stat().st_size / 2**30, 2),
                     sd15_fp32_model_gib=median_of(loads, "model_gib"),
                     sd15_imports_before_load_s=median_of(loads, "imports_s"),
                     sd15_cold_process_load_s=median_of(colds, "cold_load_s"),
                     sd15_switch_load_s=median_of(loads, "switch_s"), sd15_cached_s=median_of(loads, "cached_s"),
                     sd15_fp32_peak_rss_over_file=median_of(loads, "peak_rss_over_file"),
                     sd15_fp32_peak_anon_over_file=median_of(loads, "peak_anon_over_file"),
                     sd15_fp16_load_s=median_of(halves, "first_s"),
                     sd15_fp16_peak_anon_over_file=median_of(halves, "peak_anon_over_file"))
    if "sdxl" in only and "xl" in files:
        available = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemAvailable")))
        dtype = "auto" if available > 20 * 2**20 else "fp16"  # fp32 SDXL needs ~17 GiB
        runs, mapped = [], []
        for _ in range(args.sdxl_repeats):  # converted, then from the copy that load wrote
            with tempfile.TemporaryDirectory() as copies:
                env = {"LATENTGRAPH_CONVERTED_DIR": copies}
                runs.append(child(me + ["--measure-load", str(files["xl"]), "", dtype], env))
                mapped.append(child(me + ["--measure-load", str(files["xl"]), "", dtype], env))
        figures["sdxl_load_s"] = median_of(runs, "first_s")
        extra.update(sdxl_dtype=dtype, sdxl_file_gib=round(files["xl"].stat().st_size / 2**30, 2),
                     sdxl_peak_rss_over_file=median_of(runs, "peak_rss_over_file"),
                     sdxl_peak_anon_over_file=median_of(runs, "peak_anon_over_file"),
                     sdxl_copy_write_s=median_of(runs, "copy_write_s"),
                     sdxl_load_from_copy_s=median_of(mapped, "first_s"),
                     sdxl_load_from_copy_used=all(run["from_copy"] for run in mapped),
                     sdxl_load_from_copy_peak_anon_over_file=median_of(mapped, "peak_anon_over_file"))
    if "switch" in only:
        result = child(me + ["--measure-switch", a, b, str(args.repeats)])
        figures["switch_to_first_step_s"] = round(result["to_first_step_s"], 3)
        extra.update(switch_to_first_step_done_s=round(result["to_first_step_done_s"], 2),
                     switch_encodes_rerun_to_first_step_s=round(result["uncached_encodes_to_first_step_s"], 3),
                     switch_models_cached=result["models_cached"], switch_loads=result["loads"])
    if "decode" in only:
        result = child(me + ["--measure-decode", a, str(args.repeats + 2), str(args.decode_size)])
        figures["vae_decode_ratio"] = round(result["ratio"], 3)
        extra.update({f"decode{args.decode_size}_{k}": round(v, 3) for k, v in result.items() if k != "ratio"})
    if "editor" in only:
        extra.update(editor_runs(args.repeats))
        figures["editor_first_image_s"] = extra["editor_first_image_s"]
    extra["load_average_end"] = load_average()
    table = {name: {"measured": value, "baseline": TARGETS[name][0], "target": TARGETS[name][1],
                    "met": value <= TARGETS[name][1]} for name, value in figures.items()}
    return {"figures": table, **extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, help="build (once) and keep the checkpoints here")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sdxl", action="store_true", help="also build and load a real-size SDXL file")
    parser.add_argument("--sdxl-repeats", type=int, default=1)
    parser.add_argument("--decode-size", type=int, default=256,
                        help="image size of the decode figure (768 and up also time the tiled decode)")
    parser.add_argument("--only", default="cold,load,sdxl,switch,decode,editor")
    parser.add_argument("--build-one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure-load", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure-cold-load", help=argparse.SUPPRESS)
    parser.add_argument("--measure-switch", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure-decode", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--editor-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_one:
        build_file(Path(args.build_one[0]), args.build_one[1], int(args.build_one[2]))
        return 0
    work = {"measure_load": lambda v: measure_load(*v), "measure_cold_load": measure_cold_load,
            "measure_switch": lambda v: measure_switch(v[0], v[1], int(v[2])),
            "measure_decode": lambda v: measure_decode(v[0], int(v[1]), int(v[2])), "editor_child": editor_child}
    for name, fn in work.items():
        if getattr(args, name):
            print(json.dumps(fn(getattr(args, name))))
            return 0
    folder = args.files or Path(tempfile.mkdtemp(prefix="latentgraph_first_image_"))
    copies = tempfile.mkdtemp(prefix="latentgraph_first_image_copies_")
    os.environ.setdefault("LATENTGRAPH_CONVERTED_DIR", copies)  # every child's copies, not the user's cache
    try:
        print(json.dumps(measure_all(args, build_all(folder, args.sdxl))))
        return 0
    finally:
        shutil.rmtree(copies, ignore_errors=True)
        if args.files is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
