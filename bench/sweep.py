"""Sweep benchmark: the same 16-cell 4x4 seed x CFG sweep of the bundled txt2img workflow

* local: one ``latentgraph sweep`` process (one Executor: the model loads once, each prompt is
  encoded once);
* runs: 16 separate ``latentgraph run`` processes, one per cell (every process loads the
  model and encodes both prompts again);
* ray: ``latentgraph sweep --ray local`` (a local Ray cluster, one worker per core).

Each is timed from process start to exit (what a user waits for); the sweeps also report the
time inside the sweep (after startup). Node runs per type come from the sweeps' summaries;
for the separate runs from each process's "N ran, M cached" line (a fresh process caches
nothing, so every node runs). Images of the local and Ray sweeps are compared pixel by pixel.

Usage: OMP_NUM_THREADS=1 python bench/sweep.py [--steps 20] [--skip-ray] [--skip-runs]
Prints a table, then as its LAST line a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "resources" / "workflows" / "txt2img.json"
SEEDS, CFGS = (1, 2, 3, 4), (3, 5, 7, 9)
CELLS = len(SEEDS) * len(CFGS)


def _cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"latentgraph {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return time.perf_counter() - started, proc


def _summary(stderr: str) -> tuple[float, dict[str, int]]:
    match = re.search(r"failed in ([\d.]+)s .*node runs: (.*)$", stderr, re.M)
    runs = {}
    for part in match.group(2).split(", "):
        name, _, count = part.rpartition(" ")
        runs[name] = int(count)
    return float(match.group(1)), runs


def run_sweep_verbose(folder: Path, steps: int, ray: bool) -> dict:
    args = ["sweep", str(WORKFLOW), "--axis", f"Noise.seed={','.join(map(str, SEEDS))}",
            "--axis", f"UNet denoise.cfg={','.join(map(str, CFGS))}", "--set", f"Scheduler.steps={steps}",
            "--output-dir", str(folder), "--grid"]
    wall, proc = _cli(*args, *(["--ray", "local"] if ray else []))
    inside, runs = _summary(proc.stderr)
    return {"wall_s": round(wall, 2), "sweep_s": round(inside, 2), "cells_per_s": round(CELLS / wall, 3),
            "node_runs": runs}


def separate_runs(folder: Path, steps: int) -> dict:
    started = time.perf_counter()
    ran = cached = 0
    for cfg in CFGS:
        for seed in SEEDS:
            _wall, proc = _cli("run", str(WORKFLOW), "--set", f"Noise.seed={seed}", "--set",
                               f"UNet denoise.cfg={cfg}", "--set", f"Scheduler.steps={steps}",
                               "--output-dir", str(folder / f"s{seed}_c{cfg}"))
            match = re.search(r"(\d+) ran, (\d+) cached", proc.stderr)
            ran, cached = ran + int(match.group(1)), cached + int(match.group(2))
    wall = time.perf_counter() - started
    # each fresh process runs every node it needs once: Load model once, Text encode twice
    return {"wall_s": round(wall, 2), "cells_per_s": round(CELLS / wall, 3), "nodes_ran": ran,
            "nodes_cached": cached, "node_runs": {"Load model": CELLS, "Text encode": 2 * CELLS}}


def same_pixels(a: Path, b: Path) -> bool:
    from PIL import Image

    names = sorted(p.name for p in a.glob("latentgraph_c*.png"))
    if len(names) != CELLS:
        return False
    for name in names:
        with Image.open(a / name) as x, Image.open(b / name) as y:
            if x.convert("RGB").tobytes() != y.convert("RGB").tobytes():
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()
    out: dict = {"cells": CELLS, "steps": args.steps, "size": "64x64", "cpus": os.cpu_count(),
                 "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    with tempfile.TemporaryDirectory(prefix="lg-bench-sweep-") as tmp:
        tmp_path = Path(tmp)
        out["local"] = run_sweep_verbose(tmp_path / "local", args.steps, ray=False)
        if not args.skip_runs:
            out["runs"] = separate_runs(tmp_path / "runs", args.steps)
            out["local_speedup_vs_runs"] = round(out["runs"]["wall_s"] / out["local"]["wall_s"], 2)
        if not args.skip_ray:
            try:
                import ray  # noqa: F401
            except ImportError:
                out["ray"] = "not installed (pip install latentgraph[ray])"
            else:
                out["ray"] = run_sweep_verbose(tmp_path / "ray", args.steps, ray=True)
                out["ray_vs_local_wall"] = round(out["local"]["wall_s"] / out["ray"]["wall_s"], 2)
                out["ray_vs_local_inside_sweep"] = round(out["local"]["sweep_s"] / out["ray"]["sweep_s"], 2)
                out["ray_images_identical_to_local"] = same_pixels(tmp_path / "local", tmp_path / "ray")
    print(f"{'mode':8} {'wall s':>8} {'cells/s':>8}  Load model  Text encode")
    for mode in ("local", "runs", "ray"):
        row = out.get(mode)
        if isinstance(row, dict):
            runs = row["node_runs"]
            print(f"{mode:8} {row['wall_s']:8.2f} {row['cells_per_s']:8.3f}  {runs.get('Load model', 0):10}  "
                  f"{runs.get('Text encode', 0):11}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
