"""Time per image of the bundled hires-fix workflow (txt2img at 64², Upscale latent 2x, UNet denoise
at 0.5, VAE decode at 128²), in one process after a warm-up run, previews off, a new seed each run.

    OMP_NUM_THREADS=1 python bench/hires_fix.py [--repeats 5]

Last line: JSON (median seconds per image and each run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import nodes  # noqa: E402,F401
from graphs import Executor, workflow  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    graph = workflow.load(ROOT / "resources" / "workflows" / "hires_fix.json")
    noise = next(n for n in graph.nodes.values() if n.type_id == "sd.noise")
    with tempfile.TemporaryDirectory() as out:
        executor = Executor(settings={"output_dir": out, "previews": False})
        executor.run(graph)  # imports and the model load
        times = []
        for seed in range(args.repeats):
            graph.set_param(noise.id, "seed", 100 + seed)
            start = time.perf_counter()
            result = executor.run(graph)
            times.append(time.perf_counter() - start)
            if result.status != "finished":
                raise SystemExit(f"run failed: {result.error and result.error.message}")
    print(json.dumps({"per_image_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
