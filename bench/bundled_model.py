#!/usr/bin/env python
"""Benchmark the bundled "latentgraph-shapes" model: prompt following + CPU speed.

Generates ``--per-template`` prompts for each caption template of the shapes world
(single / size / position / two objects) x ``--seeds`` CPU generator seeds with
``StableDiffusionPipeline.from_pretrained(folder)`` (CPU, fp32), scores each image with
the image-analysis scorer in ``scripts/shapes_world.py`` and prints a JSON line last, with
the text encoder's ``word_contrast`` (how far apart it puts captions that differ in one word).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bundled_model.py            # full (50 x 4 templates x 2 seeds)
    OMP_NUM_THREADS=1 .venv/bin/python bench/bundled_model.py --quick    # 8 x 4 x 1
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import shapes_world as W  # noqa: E402
from train_bundled_model import word_contrast  # noqa: E402

MODEL_DIR = ROOT / "resources/models/latentgraph-shapes"

def load_defaults(model_dir: Path) -> dict:
    """The recommended settings the training script stored with the model (the same ones
    scripts/make_workflows.py puts into the bundled workflows)."""
    from nodes.models import model_settings

    settings = model_settings(model_dir)
    if not settings:
        raise SystemExit(f"{model_dir}: no readable latentgraph.json (recommended settings)")
    return settings


def load_pipeline(model_dir: Path, pipeline_cls=None, scheduler: str | None = None,
                  spacing: str | None = None, scheduler_kwargs: dict | None = None):
    """``pipeline_cls`` (default StableDiffusionPipeline) from the model folder with the scheduler
    its settings recommend (or the one named), progress bars off."""
    import diffusers

    settings = load_defaults(model_dir)
    pipe = (pipeline_cls or diffusers.StableDiffusionPipeline).from_pretrained(str(model_dir))
    sched_cls = getattr(diffusers, scheduler or settings["scheduler"])
    pipe.scheduler = sched_cls.from_config(pipe.scheduler.config,
                                           timestep_spacing=spacing or settings.get("timestep_spacing", "trailing"),
                                           **(scheduler_kwargs or {}))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(MODEL_DIR))
    ap.add_argument("--per-template", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="8 prompts per template x 1 seed")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--cfg", type=float, default=None)
    ap.add_argument("--scheduler", default=None, help="diffusers scheduler class name (default: latentgraph.json)")
    ap.add_argument("--timestep-spacing", default=None)
    ap.add_argument("--scheduler-kwargs", default=None,
                    help='extra scheduler config as JSON, e.g. \'{"use_karras_sigmas": true}\' (default: none)')
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu (the target) or cuda (quick checks of training runs)")
    ap.add_argument("--prompt-seed", type=int, default=2024)
    ap.add_argument("--grid", default=None, help="save an 8x8 grid PNG of samples (16 per template, seed 0)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.per_template, args.seeds = 8, 1

    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    d = load_defaults(model_dir)
    steps = args.steps or d["steps"]
    cfg = args.cfg if args.cfg is not None else d["cfg"]
    sched_name = args.scheduler or d["scheduler"]
    spacing = args.timestep_spacing or d.get("timestep_spacing", "trailing")

    extra = json.loads(args.scheduler_kwargs) if args.scheduler_kwargs else {}
    pipe = load_pipeline(model_dir, scheduler=sched_name, spacing=spacing, scheduler_kwargs=extra)
    pipe.to(args.device)

    scenes = W.eval_scenes(random.Random(args.prompt_seed), args.per_template)
    totals: dict[str, list[bool]] = {}
    per_template: dict[str, dict[str, list[bool]]] = {}
    shape_by_size: dict[str, list[bool]] = {}  # "size" template: small / big asked for
    times = []
    asked_for = {shape: collections.Counter() for shape in W.SHAPES}  # shape asked -> shape seen
    grid_cells = []
    t_all = time.time()
    for i, sc in enumerate(scenes):
        for s in range(args.seeds):
            g = torch.Generator("cpu").manual_seed(10_000 + 100 * i + s)
            t0 = time.perf_counter()
            img = pipe(sc.caption, negative_prompt=d.get("negative_prompt", ""), num_inference_steps=steps,
                       guidance_scale=cfg, height=d["height"], width=d["width"], generator=g).images[0]
            times.append(time.perf_counter() - t0)
            res = W.score_image(sc, img)
            for obj, seen in zip(sc.objects, W.objects_seen(sc, res["analysis"])):
                asked_for[obj.shape][seen["shape"] if seen else "nothing"] += 1
            for k, v in res.items():
                if k == "analysis":
                    continue
                totals.setdefault(k, []).extend(v)
                per_template.setdefault(sc.template, {}).setdefault(k, []).extend(v)
            if sc.template == "size":
                shape_by_size.setdefault(sc.size, []).extend(res["shape"])
            if args.verbose:
                print(sc.caption, "->", json.dumps(res["analysis"], default=str), file=sys.stderr)
            if s == 0 and (i % args.per_template) < 16:
                grid_cells.append(img)
        if (i + 1) % 20 == 0:
            print(f"[{i + 1}/{len(scenes)}] {time.time() - t_all:.0f}s", file=sys.stderr, flush=True)

    if args.grid and grid_cells:
        cells = grid_cells[:64]
        grid = Image.new("RGB", (8 * 66, ((len(cells) + 7) // 8) * 66), (128, 128, 128))
        for j, im in enumerate(cells):
            grid.paste(im, ((j % 8) * 66 + 1, (j // 8) * 66 + 1))
        grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(args.grid)

    def acc(v):
        return round(float(np.mean(v)), 4) if v else None

    out = {
        "colour_accuracy": acc(totals.get("colour", [])),
        "background_accuracy": acc(totals.get("background", [])),
        "shape_accuracy": acc(totals.get("shape", [])),
        "position_accuracy": acc(totals.get("position", [])),
        "binding_accuracy": acc(totals.get("binding", [])),
        "size_accuracy": acc(totals.get("size", [])),
        "shape_accuracy_single": acc([x for t in ("single", "size", "position")
                                      for x in per_template.get(t, {}).get("shape", [])]),
        "shape_accuracy_two": acc(per_template.get("two", {}).get("shape", [])),
        "colour_accuracy_two": acc(per_template.get("two", {}).get("colour", [])),
        "shape_accuracy_by_template": {t: acc(per_template[t].get("shape", [])) for t in per_template},
        "shape_accuracy_by_size": {size: acc(v) for size, v in shape_by_size.items()},
        "shape_accuracy_by_shape": {shape: round(seen[shape] / max(1, sum(seen.values())), 4)
                                    for shape, seen in asked_for.items()},
        "shape_confusion": {shape: dict(seen) for shape, seen in asked_for.items()},
        "word_contrast": word_contrast(pipe.tokenizer, pipe.text_encoder),
        "seconds_per_image": round(statistics.median(times), 4),
        "images": len(times),
        "prompts_per_template": args.per_template,
        "seeds": args.seeds,
        "steps": steps,
        "cfg": cfg,
        "scheduler": sched_name,
        "timestep_spacing": spacing,
        "scheduler_kwargs": extra,
        "width": d["width"],
        "height": d["height"],
        "threads": args.threads,
        "device": args.device,
        "wall_s": round(time.time() - t_all, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
