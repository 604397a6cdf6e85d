"""Soak: concurrent headless runs saving into one output folder with one prefix lose nothing.

    python bench/soak_output.py [--workers 4] [--runs 25] [--steps 2] [--model bundled]

Each worker is its own process that runs ``latentgraph run`` (``nodeeditor.cli.main``, the
command's whole path: arguments, Executor, Save image, the printed path) of the bundled txt2img
workflow ``--runs`` times in a row, each with its own seed, all into one folder with the default
prefix. One process per worker rather than per run: the model loads once per worker instead of
paying torch's imports a hundred times; ``--fresh`` starts a process per run instead.
Afterwards every reported path must be unique, hold the image of the run that reported it (its
parameters chunk carries that run's seed), and the folder must hold exactly those files: no lost
image, no temp file. The suite runs a smaller version (tests/test_hardening_files.py).
Last line: JSON with runs, failed_runs, images, lost, mismatched, duplicates, leftovers, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"


_WORKER = """
import contextlib, io, json, sys
from nodeeditor import cli
args = json.loads(sys.argv[1])
for run in range(args["runs"]):
    seed = args["index"] * 1000 + run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["run", args["workflow"], "--quiet", "--set", "Load model.source=" + args["model"],
                       "--set", f"Noise.seed={seed}", "--set", f"Scheduler.steps={args['steps']}",
                       "--output-dir", args["out"]])
    print(json.dumps([seed, rc, out.getvalue().split(), ""]), flush=True)
"""


def worker(index: int, args, out: Path) -> list[tuple[int, int, list[str], str]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if not args.fresh:
        config = {"index": index, "runs": args.runs, "workflow": str(TXT2IMG), "model": args.model,
                  "steps": args.steps, "out": str(out)}
        proc = subprocess.run([sys.executable, "-c", _WORKER, json.dumps(config)],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
        done = [tuple(json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("[")]
        missing = args.runs - len(done)
        return done + [(index * 1000 + len(done), proc.returncode, [], proc.stderr[-500:])] * missing
    done = []
    for run in range(args.runs):
        seed = index * 1000 + run
        proc = subprocess.run(
            [sys.executable, "-m", "nodeeditor.cli", "run", str(TXT2IMG), "--quiet",
             "--set", f"Load model.source={args.model}", "--set", f"Noise.seed={seed}",
             "--set", f"Scheduler.steps={args.steps}", "--output-dir", str(out)],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
        done.append((seed, proc.returncode, proc.stdout.split(), proc.stderr[-500:]))
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--fresh", action="store_true", help="a new process for every run")
    args = parser.parse_args()
    from graphs import pngmeta

    out = Path(tempfile.mkdtemp(prefix="latentgraph-soak-"))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        results = [r for rs in pool.map(lambda i: worker(i, args, out), range(args.workers))
                   for r in rs]
    seconds = time.perf_counter() - start
    failed = [(seed, rc, err) for seed, rc, _, err in results if rc != 0]
    reported = [(seed, path) for seed, rc, paths, _ in results if rc == 0 for path in paths]
    paths = [path for _, path in reported]
    mismatched = []
    for seed, path in reported:
        try:
            found = json.loads(pngmeta.read_text_chunks(path)[pngmeta.PARAMETERS_KEY])["seed"]
        except (OSError, ValueError, KeyError) as exc:
            found = f"unreadable: {exc}"
        if found != seed:
            mismatched.append((path, seed, found))
    on_disk = sorted(os.listdir(out))
    summary = {
        "runs": len(results), "failed_runs": len(failed), "images": len(on_disk),
        "lost": len(results) - len(failed) - len(set(paths)),
        "mismatched": len(mismatched), "duplicates": len(paths) - len(set(paths)),
        "leftovers": sorted(set(on_disk) - {Path(p).name for p in paths}),
        "seconds": round(seconds, 1), "workers": args.workers, "steps": args.steps,
        "fresh_processes": args.fresh,
        "folder": str(out),
    }
    for seed, rc, err in failed[:3]:
        print(f"run seed={seed} exit {rc}: {err}", file=sys.stderr)
    for item in mismatched[:3]:
        print(f"mismatch: {item}", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
